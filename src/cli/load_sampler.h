// The nightly run's load readings: each server's metrics (node_exporter or
// statvfs + /proc/loadavg) turned into the executor's LoadSample.
//  - load_per_cpu = node_load1 / CPUs (the CPUs the metrics report, else the
//    server's load_capacity; unknown when neither is known);
//  - disk_busy = the rate of node_disk_io_time_seconds_total of the mail
//    root's device between this sample and the previous one of the same
//    server (unknown on the first sample, without node_disk_* metrics, or
//    when the counter went backwards: node_exporter restarted).
// Errors are the metrics source's (unreachable, garbage), with the server's name.
// Thread-safety: sample() may be called from several threads.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "core/clock.h"
#include "core/config.h"
#include "core/metrics_source.h"
#include "movers/plan_executor.h"

namespace mailshard::cli {

class FleetLoadSampler {
 public:
  FleetLoadSampler(const Config& config, MetricsSource& source, Clock& clock)
      : config_(config), source_(source), clock_(clock) {}
  Result<LoadSample> sample(const std::string& server);

 private:
  const Config& config_;
  MetricsSource& source_;
  Clock& clock_;
  std::mutex mu_;
  std::map<std::string, std::pair<int64_t, double>> last_io_;  // server -> (monotonic ms, io seconds)
};

}  // namespace mailshard::cli
