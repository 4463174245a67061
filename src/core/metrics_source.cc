#include "core/metrics_source.h"

#include <fmt/format.h>

namespace mailshard {

std::string missing_metrics_source(const ServerConfig& server) {
  if (server.transport != TransportKind::kAgent || !server.metrics_url.empty()) return "";
  return fmt::format(
      "server {0} (transport = \"agent\") has no metrics_url: its disk and load would be read on this machine, "
      "not on {0}; set metrics_url to {0}'s node_exporter (http://HOST:9100/metrics)",
      server.name);
}

}  // namespace mailshard
