// The MetricsSource implementations:
//  - PrometheusMetricsSource scrapes server.metrics_url (node_exporter) over
//    HTTP with a per-attempt timeout and a bounded number of retries;
//  - StatvfsMetricsSource reads statvfs(mail_root) and /proc/loadavg on this
//    machine (servers without metrics_url, whose mail root is mounted here);
//  - ServerMetricsSource picks one of the two per server (metrics_url set or
//    not) and refuses a server behind the agent without metrics_url.
// Thread-safety: fetch() may be called from several threads at once.
#pragma once

#include <cstdint>
#include <string>

#include "core/clock.h"
#include "core/metrics_source.h"

namespace mailshard {

class PrometheusMetricsSource final : public MetricsSource {
 public:
  // timeout_ms per attempt; retries extra attempts after a kUnavailable or
  // kTimeout failure, waiting 250 ms x attempt on `clock` in between.
  PrometheusMetricsSource(int64_t timeout_ms, int retries, Clock& clock);
  // Errors carry "metrics <url>: ..." and, after retries, "(N attempts)".
  Result<ServerMetrics> fetch(const ServerConfig& server) override;

 private:
  int64_t timeout_ms_;
  int retries_;
  Clock& clock_;
};

class StatvfsMetricsSource final : public MetricsSource {
 public:
  // Errors: kNotFound ("mail_root '/x': No such file or directory"), kPermission.
  Result<ServerMetrics> fetch(const ServerConfig& server) override;
};

class ServerMetricsSource final : public MetricsSource {
 public:
  ServerMetricsSource(int64_t timeout_ms, int retries, Clock& clock) : http_(timeout_ms, retries, clock) {}
  // A server behind the agent without metrics_url is kInvalidInput
  // (missing_metrics_source): statvfs here would describe this machine.
  Result<ServerMetrics> fetch(const ServerConfig& server) override {
    if (std::string why = missing_metrics_source(server); !why.empty()) return Error::invalid(std::move(why));
    return server.metrics_url.empty() ? local_.fetch(server) : http_.fetch(server);
  }

 private:
  PrometheusMetricsSource http_;
  StatvfsMetricsSource local_;
};

}  // namespace mailshard
