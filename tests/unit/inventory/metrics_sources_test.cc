#include "inventory/metrics_sources.h"

#include <atomic>

#include <gtest/gtest.h>

#include "tests/support/fakes.h"
#include "tests/unit/doveadm/tiny_http_server.h"

namespace mailshard {
namespace {

using testing::FakeClock;
using testing::TinyHttpServer;
using testing::TinyRequest;
using testing::TinyResponse;

const char* kPage =
    "# HELP node_filesystem_size_bytes Filesystem size in bytes.\n"
    "# TYPE node_filesystem_size_bytes gauge\n"
    "node_filesystem_size_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 2.70553174016e+11\n"
    "node_filesystem_avail_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 8.0542736384e+10\n"
    "node_load1 1.25\n";

ServerConfig server_with(const std::string& url) {
  ServerConfig s;
  s.name = "store1";
  s.mail_root = "/srv/mail";
  s.metrics_url = url;
  return s;
}

TEST(PrometheusMetricsSource, ReadsTheMailRootsFilesystem) {
  TinyHttpServer srv([](const TinyRequest&) { return TinyResponse{200, kPage}; });
  FakeClock clock;
  PrometheusMetricsSource source(2000, 2, clock);
  auto m = source.fetch(server_with(srv.url("/metrics")));
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->fs_size_bytes, 270553174016);
  EXPECT_EQ(m->fs_avail_bytes, 80542736384);
  EXPECT_DOUBLE_EQ(m->load1, 1.25);
  EXPECT_EQ(m->mountpoint, "/");
  EXPECT_EQ(m->source, srv.url("/metrics"));
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(PrometheusMetricsSource, GarbageIsCorruptAndNotRetried) {
  TinyHttpServer srv([](const TinyRequest&) { return TinyResponse{200, "<html>Please log in</html>", "text/html"}; });
  FakeClock clock;
  PrometheusMetricsSource source(2000, 2, clock);
  auto m = source.fetch(server_with(srv.url("/metrics")));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(m.error().message(), "metrics " + srv.url("/metrics") +
                                     ": not Prometheus text: line 1: invalid metric name '<html>Please'");
  EXPECT_EQ(srv.requests().size(), 1u);
}

TEST(PrometheusMetricsSource, UnreachableIsRetriedThenFails) {
  FakeClock clock;
  PrometheusMetricsSource source(500, 2, clock);
  std::string url = "http://127.0.0.1:" + std::to_string(TinyHttpServer::closed_port()) + "/metrics";
  auto m = source.fetch(server_with(url));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(m.error().message(), "metrics " + url + ": GET " + url + ": Couldn't connect to server (3 attempts)");
  EXPECT_EQ(clock.sleeps(), (std::vector<int64_t>{250, 500}));
}

TEST(PrometheusMetricsSource, AServerErrorIsRetriedAndMayRecover) {
  std::atomic<int> calls{0};
  TinyHttpServer srv([&](const TinyRequest&) {
    return ++calls == 1 ? TinyResponse{503, "busy"} : TinyResponse{200, kPage};
  });
  FakeClock clock;
  PrometheusMetricsSource source(2000, 2, clock);
  auto m = source.fetch(server_with(srv.url("/metrics")));
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(clock.sleeps(), std::vector<int64_t>{250});
}

TEST(PrometheusMetricsSource, NotFoundIsNotRetried) {
  TinyHttpServer srv([](const TinyRequest&) { return TinyResponse{404, "no"}; });
  FakeClock clock;
  PrometheusMetricsSource source(2000, 2, clock);
  auto m = source.fetch(server_with(srv.url("/metric")));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(m.error().message(), "metrics " + srv.url("/metric") + ": GET " + srv.url("/metric") + ": HTTP 404 Not Found");
  EXPECT_EQ(srv.requests().size(), 1u);
}

TEST(StatvfsMetricsSource, LocalMailRoot) {
  ServerConfig s = server_with("");
  s.mail_root = "/tmp";
  StatvfsMetricsSource source;
  auto m = source.fetch(s);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_GT(m->fs_size_bytes, 0);
  EXPECT_LE(m->fs_avail_bytes, m->fs_size_bytes);
  EXPECT_GE(m->fs_free_bytes, m->fs_avail_bytes);
  EXPECT_GT(m->cpus, 0);
  EXPECT_EQ(m->source, "statvfs");
  EXPECT_FALSE(m->mountpoint.empty());
}

TEST(StatvfsMetricsSource, MissingMailRoot) {
  ServerConfig s = server_with("");
  s.mail_root = "/nonexistent/mail";
  StatvfsMetricsSource source;
  auto m = source.fetch(s);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(m.error().message(), "statvfs: mail_root '/nonexistent/mail': No such file or directory");
}

// A server behind the agent without metrics_url: statvfs here would describe
// this machine, so the server is refused with what to set.
TEST(ServerMetricsSource, AgentServerWithoutMetricsUrlIsRefused) {
  FakeClock clock;
  ServerMetricsSource source(1000, 0, clock);
  ServerConfig s = server_with("");
  s.name = "store2";
  s.mail_root = "/";  // exists here: the old fallback would have "worked"
  s.transport = TransportKind::kAgent;
  s.agent_command = "ssh -T store2 mailshard agent --stdio --root /";
  auto m = source.fetch(s);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(m.error().message(),
            "server store2 (transport = \"agent\") has no metrics_url: its disk and load would be read on this "
            "machine, not on store2; set metrics_url to store2's node_exporter (http://HOST:9100/metrics)");
  s.transport = TransportKind::kLocal;  // a local root is read here, as before
  EXPECT_TRUE(source.fetch(s).ok());
}

}  // namespace
}  // namespace mailshard
