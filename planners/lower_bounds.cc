#include "planners/lower_bounds.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace mailshard::planner {

namespace {

// ceil(x - 1e-9) as metrics.py writes it (the epsilon forgives float noise).
int64_t ceil_loose(double x) { return static_cast<int64_t>(std::ceil(x - 1e-9)); }

}  // namespace

LowerBounds lower_bounds(const Snapshot& snap, const FleetLimits& f, const UserIndex& index, const Constraints& c) {
  const size_t S = snap.servers.size();
  const int64_t max_move = c.max_move_bytes;
  LowerBounds lb;

  // Real-valued limits, operation for operation as metrics.limits().
  auto upper = [&](size_t s) {
    const ServerLimits& l = f.servers[s];
    if (l.draining) return static_cast<double>(l.other);
    const ClassLimits& cl = f.classes[static_cast<size_t>(l.cls)];
    return std::min(cl.mean + c.band, c.hard_cap) * static_cast<double>(l.capacity) - static_cast<double>(c.min_free_bytes);
  };
  auto lower = [&](size_t s) {
    const ServerLimits& l = f.servers[s];
    if (l.draining) return 0.0;
    const ClassLimits& cl = f.classes[static_cast<size_t>(l.cls)];
    return std::max(0.0, cl.mean - c.band) * static_cast<double>(l.capacity);
  };

  // One pass over the users collects what the bounds need: the movable bytes
  // and count of draining servers and each class's largest sizes (for k'_s).
  // The own sizes of a server above its upper limit (for k_s) come sorted
  // from the index.
  std::vector<double> max_d(f.classes.size(), 0.0);
  for (size_t s = 0; s < S; ++s) {
    const ServerLimits& l = f.servers[s];
    if (l.draining) continue;
    max_d[static_cast<size_t>(l.cls)] = std::max(max_d[static_cast<size_t>(l.cls)], lower(s) - static_cast<double>(l.used));
  }
  std::vector<int64_t> drain_sum(S, 0), drain_count(S, 0), class_movable(f.classes.size(), 0);
  // The k largest sizes of each class (a min-heap each), k doubling until
  // the largest deficit is covered.
  size_t k = 1024;
  std::vector<std::vector<int64_t>> top(f.classes.size());
  auto movable = [&](size_t u, size_t s) {
    return !snap.user_pinned[u] && !(max_move > 0 && snap.user_size[u] > max_move && !f.servers[s].draining);
  };
  for (size_t u = 0; u < snap.user_count(); ++u) {
    auto s = static_cast<size_t>(snap.user_server[u]);
    if (snap.user_pinned[u] && f.servers[s].draining) ++lb.pinned_on_draining;
    if (!movable(u, s)) continue;
    const int64_t w = snap.user_size[u];
    if (f.servers[s].draining) {
      drain_sum[s] += w;
      ++drain_count[s];
    }
    auto ci = static_cast<size_t>(f.servers[s].cls);
    ++class_movable[ci];
    auto& h = top[ci];
    if (h.size() < k) {
      h.push_back(w);
      std::push_heap(h.begin(), h.end(), std::greater<>());
    } else if (w > h.front()) {
      std::pop_heap(h.begin(), h.end(), std::greater<>());
      h.back() = w;
      std::push_heap(h.begin(), h.end(), std::greater<>());
    }
  }
  std::vector<std::vector<int64_t>> prefix(f.classes.size());
  for (size_t ci = 0; ci < f.classes.size(); ++ci) {
    while (true) {
      std::vector<int64_t> v = top[ci];
      std::sort(v.begin(), v.end(), std::greater<>());
      prefix[ci].assign(v.size(), 0);
      int64_t acc = 0;
      for (size_t i = 0; i < v.size(); ++i) prefix[ci][i] = acc += v[i];
      const bool complete = static_cast<int64_t>(v.size()) == class_movable[ci];
      if (complete || (!v.empty() && static_cast<double>(acc) >= max_d[ci])) break;
      // Rare: a deficit larger than the k largest mailboxes. Collect more.
      const size_t want = v.size() * 4;
      top[ci].clear();
      for (size_t u = 0; u < snap.user_count(); ++u) {
        auto s = static_cast<size_t>(snap.user_server[u]);
        if (static_cast<size_t>(f.servers[s].cls) != ci || !movable(u, s)) continue;
        auto& h = top[ci];
        const int64_t w = snap.user_size[u];
        if (h.size() < want) {
          h.push_back(w);
          std::push_heap(h.begin(), h.end(), std::greater<>());
        } else if (w > h.front()) {
          std::pop_heap(h.begin(), h.end(), std::greater<>());
          h.back() = w;
          std::push_heap(h.begin(), h.end(), std::greater<>());
        }
      }
    }
  }

  // metrics.py walks the classes in name order.
  std::vector<size_t> order(f.classes.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return f.classes[a].name < f.classes[b].name; });

  const double rate = c.execution.rate_bytes_per_s, overhead = c.execution.overhead_s;
  const double slots = c.execution.slots_per_server, alpha = static_cast<double>(c.cost_alpha_bytes);
  double t_lb = 0;
  for (size_t ci : order) {
    const ClassLimits& cl = f.classes[ci];
    const std::vector<int64_t>& pre = prefix[ci];
    ClassBounds cb;
    cb.name = cl.name;
    double E = 0, D = 0, CE = 0, CD = 0;
    for (int32_t s32 : cl.servers) {
      auto s = static_cast<size_t>(s32);
      const ServerLimits& l = f.servers[s];
      double e;
      int64_t k_s = 0;
      if (l.draining) {
        e = static_cast<double>(drain_sum[s]);
        k_s = drain_count[s];
      } else {
        e = std::max(0.0, static_cast<double>(l.used) - upper(s));
        if (e > 0) {
          int64_t acc = 0;
          for (int64_t w : index.sizes(s32)) {
            acc += w;
            ++k_s;
            if (static_cast<double>(acc) >= e) break;
          }
          if (static_cast<double>(acc) < e) ++lb.infeasible_servers;
        }
      }
      double d = l.draining ? 0.0 : std::max(0.0, lower(s) - static_cast<double>(l.used));
      int64_t kd = 0;
      if (d > 0) {
        // bisect_left(pre, d) + 1 over the prefix sums.
        auto it = std::lower_bound(pre.begin(), pre.end(), d,
                                   [](int64_t p, double v) { return static_cast<double>(p) < v; });
        kd = (it - pre.begin()) + 1;
        if (kd > static_cast<int64_t>(pre.size())) {
          ++lb.infeasible_servers;
          kd = static_cast<int64_t>(pre.size());
        }
      }
      E += e;
      D += d;
      cb.k_src += k_s;
      cb.k_recv += kd;
      CE += e + alpha * static_cast<double>(k_s);
      CD += d + alpha * static_cast<double>(kd);
      double ts = std::max(e / rate + static_cast<double>(k_s) * overhead, d / rate + static_cast<double>(kd) * overhead) /
                  slots;
      t_lb = std::max(t_lb, ts);
      lb.max_server_moves_lb = std::max({lb.max_server_moves_lb, k_s, kd});
    }
    cb.excess_bytes = static_cast<int64_t>(E);
    cb.deficit_bytes = static_cast<int64_t>(D);
    cb.lb_bytes = static_cast<int64_t>(std::max(E, D));
    cb.lb_moves = std::max(cb.k_src, cb.k_recv);
    cb.lb_cost = std::max(CE, CD);
    lb.lb_bytes += cb.lb_bytes;
    lb.lb_moves += cb.lb_moves;
    lb.lb_cost += cb.lb_cost;
    lb.classes.push_back(std::move(cb));
  }
  lb.t_lb_s = t_lb;

  int64_t n = 1;
  if (c.max_bytes > 0)
    n = std::max(n, ceil_loose(static_cast<double>(lb.lb_bytes) / static_cast<double>(c.max_bytes)));
  if (c.max_moves > 0)
    n = std::max(n, ceil_loose(static_cast<double>(lb.lb_moves) / static_cast<double>(c.max_moves)));
  if (c.max_moves_per_server > 0)
    n = std::max(n, ceil_loose(static_cast<double>(lb.max_server_moves_lb) /
                               static_cast<double>(c.max_moves_per_server)));
  n = std::max(n, ceil_loose(t_lb / 3600.0 / c.execution.night_hours));
  lb.nights_lb = static_cast<int32_t>(n);
  return lb;
}

}  // namespace mailshard::planner
