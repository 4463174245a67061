// MetricsSource: how full and how busy one storage server is right now.
//
// Implementations: node_exporter's Prometheus text format over HTTP
// (src/inventory/http_metrics_source.h) and, for mail roots mounted on this
// machine, statvfs + /proc/loadavg (src/inventory/local_metrics_source.h).
// The figures are the raw filesystem ones; a configured capacity_bytes
// override is applied by the inventory, not here.
//
// Thread-safety: fetch() may be called from several threads at once.
// Blocking: network or filesystem I/O, bounded by the configured timeout.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"
#include "util/result.h"

namespace mailshard {

struct ServerMetrics {
  int64_t fs_size_bytes = 0;   // size of the filesystem holding mail_root
  int64_t fs_avail_bytes = 0;  // what an unprivileged writer may still use
  int64_t fs_free_bytes = -1;  // including root-reserved blocks; -1 = unknown
  double load1 = 0;            // 1-minute load average
  int cpus = 0;                // CPUs seen by the source; 0 = unknown
  std::string mountpoint;      // the mount that holds mail_root ("/srv/mail")
  std::string device;          // its device ("/dev/vdb"); "" if unknown
  std::string fstype;          // "ext4", ...; "" if unknown
  double disk_io_seconds = -1; // node_disk_io_time_seconds_total of that device; -1 = unknown
  std::string source;          // "http://host:9100/metrics" or "statvfs"
};

class MetricsSource {
 public:
  virtual ~MetricsSource() = default;

  // Success: the filesystem that holds server.mail_root and the load.
  // Errors: kUnavailable (endpoint unreachable or HTTP error after the
  // configured retries), kTimeout, kCorrupt (not Prometheus text, or no
  // node_filesystem_* sample covers mail_root), kNotFound (mail_root does not
  // exist, local source), kPermission. Never retried by the caller: a server
  // whose fetch fails is marked failed for the run.
  virtual Result<ServerMetrics> fetch(const ServerConfig& server) = 0;
};

// Why `server` has no source for its disk and load figures that describes
// that server, or "" when it has one. A server behind the agent needs
// metrics_url: without it statvfs(mail_root) and /proc/loadavg would be read
// on this machine and describe the controller, not the server. `config
// check`, the inventory and the rebalance load sampler refuse such a server
// with this one line (it names the server and what to set).
std::string missing_metrics_source(const ServerConfig& server);

}  // namespace mailshard
