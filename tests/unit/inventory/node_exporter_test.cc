#include "inventory/node_exporter.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

std::vector<PromSample> parse(const std::string& text) {
  auto r = parse_prometheus_text(text);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? *r : std::vector<PromSample>{};
}

const char* kTwoDisks =
    "node_filesystem_size_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 1000\n"
    "node_filesystem_avail_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 400\n"
    "node_filesystem_free_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 450\n"
    "node_filesystem_size_bytes{device=\"/dev/vdb\",fstype=\"xfs\",mountpoint=\"/srv/mail\"} 5000\n"
    "node_filesystem_avail_bytes{device=\"/dev/vdb\",fstype=\"xfs\",mountpoint=\"/srv/mail\"} 3000\n"
    "node_filesystem_size_bytes{device=\"tmpfs\",fstype=\"tmpfs\",mountpoint=\"/srv/mailtmp\"} 77\n"
    "node_filesystem_avail_bytes{device=\"tmpfs\",fstype=\"tmpfs\",mountpoint=\"/srv/mailtmp\"} 77\n"
    "node_load1 0.75\n"
    "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1\n"
    "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 1\n"
    "node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 1\n";

TEST(NodeExporter, LongestMountpointHoldingTheMailRootWins) {
  auto m = node_metrics_for(parse(kTwoDisks), "/srv/mail/store1");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->mountpoint, "/srv/mail");
  EXPECT_EQ(m->device, "/dev/vdb");
  EXPECT_EQ(m->fstype, "xfs");
  EXPECT_EQ(m->fs_size_bytes, 5000);
  EXPECT_EQ(m->fs_avail_bytes, 3000);
  EXPECT_EQ(m->fs_free_bytes, -1);
  EXPECT_DOUBLE_EQ(m->load1, 0.75);
  EXPECT_EQ(m->cpus, 2);
}

TEST(NodeExporter, DiskBusyTimeIsTheMailRootsDevice) {
  std::string text = std::string(kTwoDisks) +
                     "node_disk_io_time_seconds_total{device=\"vda\"} 11.5\n"
                     "node_disk_io_time_seconds_total{device=\"vdb\"} 42.25\n";
  auto m = node_metrics_for(parse(text), "/srv/mail/store1");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_DOUBLE_EQ(m->disk_io_seconds, 42.25);
  auto none = node_metrics_for(parse(kTwoDisks), "/srv/mail/store1");
  ASSERT_TRUE(none.ok());
  EXPECT_LT(none->disk_io_seconds, 0) << "no node_disk_* sample: unknown";
}

TEST(NodeExporter, APrefixThatIsNotAPathComponentDoesNotCount) {
  auto m = node_metrics_for(parse(kTwoDisks), "/srv/mailx");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->mountpoint, "/");
  EXPECT_EQ(m->fs_size_bytes, 1000);
  EXPECT_EQ(m->fs_free_bytes, 450);
}

TEST(NodeExporter, RootfsDuplicateAndDeviceErrorsAreSkipped) {
  auto m = node_metrics_for(
      parse("node_filesystem_size_bytes{device=\"rootfs\",fstype=\"rootfs\",mountpoint=\"/\"} 1\n"
            "node_filesystem_avail_bytes{device=\"rootfs\",fstype=\"rootfs\",mountpoint=\"/\"} 1\n"
            "node_filesystem_size_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 1000\n"
            "node_filesystem_avail_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 400\n"
            "node_filesystem_size_bytes{device=\"nfs:/mail\",fstype=\"nfs4\",mountpoint=\"/srv\"} 9000\n"
            "node_filesystem_avail_bytes{device=\"nfs:/mail\",fstype=\"nfs4\",mountpoint=\"/srv\"} 9000\n"
            "node_filesystem_device_error{device=\"nfs:/mail\",fstype=\"nfs4\",mountpoint=\"/srv\"} 1\n"),
      "/srv/mail");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->device, "/dev/vda");
  EXPECT_EQ(m->fs_size_bytes, 1000);
}

TEST(NodeExporter, NothingCoversTheMailRoot) {
  auto m = node_metrics_for(
      parse("node_filesystem_size_bytes{device=\"/dev/vdb\",fstype=\"ext4\",mountpoint=\"/boot\"} 10\n"
            "node_filesystem_size_bytes{device=\"/dev/vdc\",fstype=\"ext4\",mountpoint=\"/data\"} 10\n"
            "node_load1 1\n"),
      "/srv/mail");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(m.error().message(),
            "no node_filesystem_size_bytes sample covers '/srv/mail' (mountpoints: /boot, /data)");

  auto none = node_metrics_for(parse("go_goroutines 7\n"), "/srv/mail");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message(), "no node_filesystem_size_bytes sample covers '/srv/mail' (mountpoints: none)");
}

TEST(NodeExporter, NonFiniteSizesAreRejected) {
  auto m = node_metrics_for(parse("node_filesystem_size_bytes{mountpoint=\"/\"} +Inf\n"
                                  "node_filesystem_avail_bytes{mountpoint=\"/\"} NaN\n"),
                            "/srv/mail");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message(),
            "mountpoint '/': node_filesystem_size_bytes inf / node_filesystem_avail_bytes nan are not usable byte counts");
}

TEST(NodeExporter, MountHolds) {
  EXPECT_TRUE(mount_holds("/", "/srv"));
  EXPECT_TRUE(mount_holds("/srv/mail", "/srv/mail"));
  EXPECT_TRUE(mount_holds("/srv/mail/", "/srv/mail/x"));
  EXPECT_FALSE(mount_holds("/srv/mail", "/srv/mailx"));
  EXPECT_FALSE(mount_holds("/srv/mail/x", "/srv/mail"));
}

// 1e30 bytes used to wrap to a negative int64 and print as "-8192.0 PiB".
TEST(NodeExporter, SizesPastInt64AreRejected) {
  auto m = node_metrics_for(parse("node_filesystem_size_bytes{mountpoint=\"/\"} 1e30\n"
                                  "node_filesystem_avail_bytes{mountpoint=\"/\"} 100\n"),
                            "/srv/mail");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(m.error().message(),
            "mountpoint '/': node_filesystem_size_bytes 1e+30 / node_filesystem_avail_bytes 100 are not usable byte counts");
}

TEST(NodeExporter, AvailLargerThanSizeIsRejected) {
  auto m = node_metrics_for(parse("node_filesystem_size_bytes{mountpoint=\"/\"} 1000\n"
                                  "node_filesystem_avail_bytes{mountpoint=\"/\"} 5000\n"),
                            "/srv/mail");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message(),
            "mountpoint '/': node_filesystem_avail_bytes 5000 is larger than node_filesystem_size_bytes 1000");
}

TEST(NodeExporter, NegativeLoadIsRejected) {
  auto m = node_metrics_for(parse(std::string(kTwoDisks) + "node_load1 -3\n"), "/srv/mail");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message(), "node_load1 -3 is not a load average (a finite number >= 0)");
}

}  // namespace
}  // namespace mailshard
