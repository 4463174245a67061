#include "planners/capacity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

namespace mailshard::planner {

std::vector<int64_t> used_bytes(const Snapshot& snap) {
  std::vector<int64_t> used(snap.servers.size());
  for (size_t s = 0; s < snap.servers.size(); ++s) used[s] = snap.servers[s].other_used_bytes;
  const size_t n = snap.user_count();
  for (size_t u = 0; u < n; ++u) used[static_cast<size_t>(snap.user_server[u])] += snap.user_size[u];
  return used;
}

std::vector<double> server_load(const Snapshot& snap) {
  std::vector<double> load(snap.servers.size(), 0.0);
  const size_t n = snap.user_count();
  for (size_t u = 0; u < n; ++u) load[static_cast<size_t>(snap.user_server[u])] += snap.user_activity[u];
  return load;
}

FleetLimits compute_limits(const Snapshot& snap, const std::vector<uint8_t>& draining, const std::vector<int64_t>& used,
                           const std::vector<double>& load, const Constraints& c) {
  FleetLimits f;
  f.servers.resize(snap.servers.size());
  std::map<std::string, int32_t> index;
  for (size_t s = 0; s < snap.servers.size(); ++s) {
    const auto& srv = snap.servers[s];
    auto [it, fresh] = index.emplace(srv.server_class, static_cast<int32_t>(f.classes.size()));
    if (fresh) f.classes.push_back(ClassLimits{srv.server_class, {}, 0, 0, 0, 0, 0, 0});
    ClassLimits& cl = f.classes[static_cast<size_t>(it->second)];
    cl.servers.push_back(static_cast<int32_t>(s));
    cl.used_total += used[s];
    cl.load_total += load[s];
    if (!draining[s]) {
      cl.capacity_active += srv.capacity_bytes;
      cl.load_capacity_active += srv.load_capacity;
    }
    ServerLimits& l = f.servers[s];
    l.cls = it->second;
    l.draining = draining[s] != 0;
    l.capacity = srv.capacity_bytes;
    l.other = srv.other_used_bytes;
    l.used = used[s];
    l.load = load[s];
    l.load_capacity = srv.load_capacity;
  }
  for (auto& cl : f.classes) {
    // As metrics.py: a ratio of two sums, in double.
    cl.mean = cl.capacity_active > 0
                  ? static_cast<double>(cl.used_total) / static_cast<double>(cl.capacity_active)
                  : std::numeric_limits<double>::infinity();
    cl.load_mean = cl.load_capacity_active > 0 ? cl.load_total / cl.load_capacity_active : 0.0;
  }
  for (auto& l : f.servers) {
    const ClassLimits& cl = f.classes[static_cast<size_t>(l.cls)];
    const double cap = static_cast<double>(l.capacity);
    double hard = std::floor(c.hard_cap * cap - static_cast<double>(c.min_free_bytes));
    l.cap = std::min(static_cast<int64_t>(std::max(0.0, hard)), l.capacity - c.headroom_bytes);
    l.margin = static_cast<int64_t>(kRepairFraction * c.band * cap);
    if (!snap.servers[static_cast<size_t>(&l - f.servers.data())].storage_group.empty()) {
      // One disk shared by the whole group (engine.h): no byte band inside it.
      l.upper = l.capacity;
      l.lower = 0;
      l.mid = l.used;
    } else if (l.draining) {
      l.upper = l.other;
      l.lower = 0;
      l.mid = l.other;
    } else if (!std::isfinite(cl.mean)) {
      l.upper = l.cap;
      l.lower = 0;
      l.mid = 0;
    } else {
      double u = std::min(cl.mean + c.band, c.hard_cap) * cap - static_cast<double>(c.min_free_bytes);
      double lo = std::max(0.0, cl.mean - c.band) * cap;
      l.upper = static_cast<int64_t>(std::floor(u));
      l.lower = static_cast<int64_t>(std::ceil(lo));
      l.mid = static_cast<int64_t>(std::llround(cl.mean * cap));
    }
    if (l.load_capacity > 0 && cl.load_mean > 0 && !l.draining) {
      l.load_limit = (1.0 + c.load_band) * cl.load_mean * l.load_capacity;
      l.load_target = (1.0 + kLoadRepairFraction * c.load_band) * cl.load_mean * l.load_capacity;
    } else {
      // No load goal: nothing is ever "above the load band".
      l.load_limit = l.load_target = std::numeric_limits<double>::infinity();
    }
  }
  return f;
}

BandState band_state(const ServerLimits& s, int64_t used) {
  if (used > s.upper) return BandState::kAbove;
  if (used < s.lower) return BandState::kBelow;
  return BandState::kInside;
}

}  // namespace mailshard::planner
