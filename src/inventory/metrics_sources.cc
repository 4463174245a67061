#include "inventory/metrics_sources.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "doveadm/http_client.h"
#include "inventory/node_exporter.h"
#include "inventory/prometheus_parser.h"
#include "util/strings.h"

namespace mailshard {
namespace {

// Pause before retry n (1-based): short, because a scrape that failed twice
// in a row rarely recovers within a second, and the run must not stall.
constexpr int64_t kRetryBackoffMs = 250;

// node_exporter pages are ~100-300 KB; 16 MiB means something else answered.
constexpr size_t kMaxMetricsBytes = 16u << 20;

// /proc files report size 0, so they are read to EOF rather than by size.
std::string read_proc(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

PrometheusMetricsSource::PrometheusMetricsSource(int64_t timeout_ms, int retries, Clock& clock)
    : timeout_ms_(timeout_ms), retries_(retries), clock_(clock) {}

Result<ServerMetrics> PrometheusMetricsSource::fetch(const ServerConfig& server) {
  const std::string ctx = fmt::format("metrics {}", redact_url(server.metrics_url));
  HttpRequest req;
  req.url = server.metrics_url;
  req.ca_file = server.ca_file;
  req.timeout_ms = timeout_ms_;
  req.max_response_bytes = kMaxMetricsBytes;
  req.headers = {"Accept: text/plain;version=0.0.4"};
  int attempts = 0;
  while (true) {
    ++attempts;
    Status st;
    auto resp = http_request(req);
    if (resp.ok()) st = check_http_status(req, *resp);
    else st = std::move(resp).error();
    if (st.ok()) {
      auto samples = parse_prometheus_text(resp->body);
      if (!samples.ok()) return std::move(samples).error().context(ctx + ": not Prometheus text");
      auto m = node_metrics_for(*samples, server.mail_root);
      if (!m.ok()) return std::move(m).error().context(ctx);
      m->source = redact_url(server.metrics_url);
      return m;
    }
    bool transient = st.error().code() == ErrorCode::kUnavailable || st.error().code() == ErrorCode::kTimeout;
    if (!transient || attempts > retries_) {
      Error e = std::move(st).error();
      if (attempts > 1) e = Error(e.code(), fmt::format("{} ({} attempts)", e.message(), attempts));
      return std::move(e.context(ctx));
    }
    clock_.sleep_ms(kRetryBackoffMs * attempts);
  }
}

Result<ServerMetrics> StatvfsMetricsSource::fetch(const ServerConfig& server) {
  struct statvfs vfs;
  if (::statvfs(server.mail_root.c_str(), &vfs) != 0)
    return Error::from_errno(errno, fmt::format("statvfs: mail_root '{}'", printable(server.mail_root)));
  ServerMetrics m;
  m.fs_size_bytes = static_cast<int64_t>(vfs.f_blocks) * static_cast<int64_t>(vfs.f_frsize);
  m.fs_avail_bytes = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
  m.fs_free_bytes = static_cast<int64_t>(vfs.f_bfree) * static_cast<int64_t>(vfs.f_frsize);
  m.source = "statvfs";
  m.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  if (std::string load = read_proc("/proc/loadavg"); !load.empty()) {
    auto first = split(trim(load), ' ');
    if (!first.empty())
      if (auto v = parse_double(first[0]); v.ok()) m.load1 = *v;
  }
  // The mount holding mail_root, for the report (longest mountpoint prefix).
  if (std::string mounts = read_proc("/proc/self/mounts"); !mounts.empty()) {
    for (const auto& line : split(mounts, '\n')) {
      auto f = split(line, ' ');
      if (f.size() < 3) continue;
      // /proc/mounts writes spaces in paths as \040.
      std::string mp;
      for (size_t i = 0; i < f[1].size(); ++i) {
        if (f[1][i] == '\\' && i + 3 < f[1].size()) {
          int v = (f[1][i + 1] - '0') * 64 + (f[1][i + 2] - '0') * 8 + (f[1][i + 3] - '0');
          mp += static_cast<char>(v);
          i += 3;
        } else {
          mp += f[1][i];
        }
      }
      if (mount_holds(mp, server.mail_root) && mp.size() >= m.mountpoint.size()) {
        m.mountpoint = mp;
        m.device = f[0];
        m.fstype = f[2];
      }
    }
  }
  return m;
}

}  // namespace mailshard
