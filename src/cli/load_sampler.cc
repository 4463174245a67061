#include "cli/load_sampler.h"

#include <fmt/format.h>

namespace mailshard::cli {

Result<LoadSample> FleetLoadSampler::sample(const std::string& server) {
  const ServerConfig* s = config_.find_server(server);
  if (!s) return Error::invalid(fmt::format("unknown server '{}'", server));
  ServerMetrics m = MS_TRY_CTX(source_.fetch(*s), server);
  const int64_t now = clock_.monotonic_ms();
  LoadSample out;
  double cpus = m.cpus > 0 ? m.cpus : s->load_capacity;
  if (cpus > 0) out.load_per_cpu = m.load1 / cpus;
  if (m.disk_io_seconds >= 0) {
    std::lock_guard lock(mu_);
    auto it = last_io_.find(server);
    if (it != last_io_.end() && now > it->second.first && m.disk_io_seconds >= it->second.second)
      out.disk_busy = (m.disk_io_seconds - it->second.second) / (static_cast<double>(now - it->second.first) / 1000.0);
    last_io_[server] = {now, m.disk_io_seconds};
  }
  return out;
}

}  // namespace mailshard::cli
