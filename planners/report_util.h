// Helpers shared by the markdown and HTML reports (internal to planners/).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/plan.h"
#include "util/strings.h"

namespace mailshard::planner::report {

inline std::string server_name(const Plan& p, int32_t id) {
  if (id >= 0 && static_cast<size_t>(id) < p.servers.size() && !p.servers[static_cast<size_t>(id)].name.empty())
    return p.servers[static_cast<size_t>(id)].name;
  return std::to_string(id);
}

inline std::string user_name(const PlannedMove& m) { return m.user_name.empty() ? std::to_string(m.user) : m.user_name; }

// "13.8 h", "42 min", "12 s".
inline std::string duration(double seconds) {
  if (seconds >= 3600) return fmt::format("{:.1f} h", seconds / 3600);
  if (seconds >= 60) return fmt::format("{:.0f} min", seconds / 60);
  return fmt::format("{:.0f} s", seconds);
}

inline std::string ratio(double a, double b) { return b > 0 ? fmt::format("{:.3f}", a / b) : std::string("-"); }

inline double util(int64_t used, int64_t cap) { return cap > 0 ? static_cast<double>(used) / static_cast<double>(cap) : 0; }

// The largest moves, largest first (ties: plan order).
inline std::vector<const PlannedMove*> top_movers(const Plan& p, size_t n) {
  std::vector<const PlannedMove*> v;
  for (const auto& m : p.moves) v.push_back(&m);
  std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->bytes > b->bytes; });
  if (v.size() > n) v.resize(n);
  return v;
}

// Bytes and moves against the lower bounds, as rows of (what, plan, bound, ratio).
struct BoundRow {
  std::string what, plan, bound, ratio;
};
inline std::vector<BoundRow> bound_rows(const Plan& p) {
  double cost = static_cast<double>(p.estimate.bytes) +
                static_cast<double>(p.constraints.cost_alpha_bytes) * static_cast<double>(p.estimate.moves);
  return {
      {"bytes moved", human_bytes(p.estimate.bytes), human_bytes(p.bounds.lb_bytes),
       ratio(static_cast<double>(p.estimate.bytes), static_cast<double>(p.bounds.lb_bytes))},
      {"moves", std::to_string(p.estimate.moves), std::to_string(p.bounds.lb_moves),
       ratio(static_cast<double>(p.estimate.moves), static_cast<double>(p.bounds.lb_moves))},
      {fmt::format("cost (bytes + {} per move)", human_bytes(p.constraints.cost_alpha_bytes)),
       human_bytes(static_cast<int64_t>(cost)), human_bytes(static_cast<int64_t>(p.bounds.lb_cost)),
       ratio(cost, p.bounds.lb_cost)},
      {"duration (plan order)", duration(p.estimate.makespan_s), duration(p.bounds.t_lb_s),
       ratio(p.estimate.makespan_s, p.bounds.t_lb_s)},
      {"nights", std::to_string(p.estimate.nights), std::to_string(p.bounds.nights_lb),
       fmt::format("{:+d}", p.estimate.nights - p.bounds.nights_lb)},
  };
}

inline std::string constraints_line(const Constraints& c) {
  std::string s = fmt::format("band ±{}, hard cap {}, load band {:.2f}", fmt::format("{:.1f} pp", 100 * c.band),
                              fmt::format("{:.0f} %", 100 * c.hard_cap), 1 + c.load_band);
  if (c.min_free_bytes > 0) s += ", min free " + human_bytes(c.min_free_bytes);
  if (c.max_bytes > 0) s += ", max " + human_bytes(c.max_bytes) + " per night";
  if (c.max_moves > 0) s += fmt::format(", max {} moves per night", c.max_moves);
  if (c.max_moves_per_server > 0) s += fmt::format(", max {} moves per server per night", c.max_moves_per_server);
  if (c.max_move_bytes > 0) s += ", no mailbox above " + human_bytes(c.max_move_bytes);
  if (c.nights > 1) s += fmt::format(", up to {} nights", c.nights);
  s += fmt::format("; {} slots per server, {}/s per move + {:g} s, {:g} h nights", c.execution.slots_per_server,
                   human_bytes(static_cast<int64_t>(c.execution.rate_bytes_per_s)), c.execution.overhead_s,
                   c.execution.night_hours);
  return s;
}

}  // namespace mailshard::planner::report
