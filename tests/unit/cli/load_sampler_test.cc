// The nightly run's load readings from server metrics.
#include "cli/load_sampler.h"

#include <gtest/gtest.h>

#include "tests/support/fakes.h"

namespace mailshard::cli {
namespace {

class ScriptedMetrics : public MetricsSource {
 public:
  ServerMetrics next;
  std::optional<Error> fail;
  Result<ServerMetrics> fetch(const ServerConfig&) override {
    if (fail) return *fail;
    return next;
  }
};

Config two_servers() {
  Config c;
  ServerConfig a;
  a.name = "a";
  a.mail_root = "/srv/a";
  ServerConfig b = a;
  b.name = "b";
  b.load_capacity = 8;
  c.servers = {a, b};
  return c;
}

TEST(FleetLoadSampler, LoadIsPerCpuAndDiskBusyIsARateBetweenSamples) {
  Config cfg = two_servers();
  ScriptedMetrics metrics;
  testing::FakeClock clock;
  FleetLoadSampler s(cfg, metrics, clock);
  metrics.next.load1 = 6;
  metrics.next.cpus = 4;
  metrics.next.disk_io_seconds = 100;
  auto first = s.sample("a");
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_DOUBLE_EQ(first->load_per_cpu, 1.5);
  EXPECT_LT(first->disk_busy, 0) << "one reading is not a rate";
  clock.advance(30'000);
  metrics.next.disk_io_seconds = 124;  // 24 s busy in 30 s
  auto second = s.sample("a");
  ASSERT_TRUE(second.ok());
  EXPECT_DOUBLE_EQ(second->disk_busy, 0.8);
  clock.advance(30'000);
  metrics.next.disk_io_seconds = 3;  // node_exporter restarted
  EXPECT_LT(s.sample("a")->disk_busy, 0);
}

TEST(FleetLoadSampler, WithoutCpuCountsTheLoadCapacityIsUsedOrTheLoadIsUnknown) {
  Config cfg = two_servers();
  ScriptedMetrics metrics;
  testing::FakeClock clock;
  FleetLoadSampler s(cfg, metrics, clock);
  metrics.next.load1 = 4;
  metrics.next.cpus = 0;
  EXPECT_DOUBLE_EQ(s.sample("b")->load_per_cpu, 0.5);
  EXPECT_LT(s.sample("a")->load_per_cpu, 0);
}

TEST(FleetLoadSampler, ErrorsNameTheServer) {
  Config cfg = two_servers();
  ScriptedMetrics metrics;
  testing::FakeClock clock;
  FleetLoadSampler s(cfg, metrics, clock);
  metrics.fail = Error::corrupt("metrics http://a:9100/metrics: not Prometheus text");
  auto r = s.sample("a");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("a: metrics"), std::string::npos) << r.error().message();
  EXPECT_FALSE(s.sample("nope").ok());
}

}  // namespace
}  // namespace mailshard::cli
