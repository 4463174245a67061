#include "planners/lower_bounds.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace mailshard::planner {

namespace {

// ceil(x - 1e-9) as metrics.py writes it (the epsilon forgives float noise).
int64_t ceil_loose(double x) { return static_cast<int64_t>(std::ceil(x - 1e-9)); }

// Prefix sums of the class's largest movable sizes, long enough to answer
// "fewest mailboxes reaching d" for every d up to `need` (or all of them).
std::vector<int64_t> largest_prefix(std::vector<int64_t> sizes, double need) {
  size_t k = std::min<size_t>(sizes.size(), 1024);
  while (true) {
    std::partial_sort(sizes.begin(), sizes.begin() + static_cast<std::ptrdiff_t>(k), sizes.end(), std::greater<>());
    std::vector<int64_t> pre(k);
    int64_t acc = 0;
    for (size_t i = 0; i < k; ++i) pre[i] = acc += sizes[i];
    if (k == sizes.size() || (k > 0 && static_cast<double>(pre[k - 1]) >= need)) return pre;
    k = std::min(sizes.size(), k * 4);
  }
}

}  // namespace

LowerBounds lower_bounds(const Snapshot& snap, const FleetLimits& f, const Constraints& c) {
  const size_t S = snap.servers.size();
  const int64_t max_move = c.max_move_bytes;
  std::vector<std::vector<int64_t>> per_server(S);
  LowerBounds lb;
  for (size_t u = 0; u < snap.user_count(); ++u) {
    auto s = static_cast<size_t>(snap.user_server[u]);
    if (snap.user_pinned[u]) {
      if (f.servers[s].draining) ++lb.pinned_on_draining;
      continue;
    }
    if (max_move > 0 && snap.user_size[u] > max_move && !f.servers[s].draining) continue;
    per_server[s].push_back(snap.user_size[u]);
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
    // Real-valued limits, operation for operation as metrics.limits().
    auto upper = [&](size_t s) {
      const ServerLimits& l = f.servers[s];
      if (l.draining) return static_cast<double>(l.other);
      return std::min(cl.mean + c.band, c.hard_cap) * static_cast<double>(l.capacity) -
             static_cast<double>(c.min_free_bytes);
    };
    auto lower = [&](size_t s) {
      const ServerLimits& l = f.servers[s];
      if (l.draining) return 0.0;
      return std::max(0.0, cl.mean - c.band) * static_cast<double>(l.capacity);
    };
    double max_d = 0;
    std::vector<int64_t> class_sizes;
    for (int32_t s32 : cl.servers) {
      auto s = static_cast<size_t>(s32);
      class_sizes.insert(class_sizes.end(), per_server[s].begin(), per_server[s].end());
      if (!f.servers[s].draining) max_d = std::max(max_d, lower(s) - static_cast<double>(f.servers[s].used));
    }
    std::vector<int64_t> pre = largest_prefix(std::move(class_sizes), max_d);

    ClassBounds cb;
    cb.name = cl.name;
    double E = 0, D = 0, CE = 0, CD = 0;
    for (int32_t s32 : cl.servers) {
      auto s = static_cast<size_t>(s32);
      const ServerLimits& l = f.servers[s];
      double e;
      int64_t k = 0;
      if (l.draining) {
        int64_t sum = 0;
        for (int64_t w : per_server[s]) sum += w;
        e = static_cast<double>(sum);
        k = static_cast<int64_t>(per_server[s].size());
      } else {
        e = std::max(0.0, static_cast<double>(l.used) - upper(s));
        if (e > 0) {
          std::vector<int64_t> ws = per_server[s];
          std::sort(ws.begin(), ws.end(), std::greater<>());
          int64_t acc = 0;
          for (int64_t w : ws) {
            acc += w;
            ++k;
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
      cb.k_src += k;
      cb.k_recv += kd;
      CE += e + alpha * static_cast<double>(k);
      CD += d + alpha * static_cast<double>(kd);
      double ts = std::max(e / rate + static_cast<double>(k) * overhead, d / rate + static_cast<double>(kd) * overhead) /
                  slots;
      t_lb = std::max(t_lb, ts);
      lb.max_server_moves_lb = std::max({lb.max_server_moves_lb, k, kd});
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
