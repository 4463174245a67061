#include "planners/outcome.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "planners/ordering.h"
#include "util/strings.h"

namespace mailshard::planner {

std::string percent(double fraction) { return fmt::format("{:.1f} %", 100.0 * fraction); }

namespace {

// At most this many servers are named in one partial reason; the rest are counted.
constexpr size_t kNamedServers = 5;

std::string name_list(const Snapshot& snap, const std::vector<int32_t>& ids) {
  std::vector<std::string> names;
  for (size_t i = 0; i < ids.size() && i < kNamedServers; ++i) names.push_back(snap.server_label(ids[i]));
  std::string out = join(names, ", ");
  if (ids.size() > kNamedServers) out += fmt::format(" and {} more", ids.size() - kNamedServers);
  return out;
}

struct Stats {
  double max_minus_mean = 0, std = 0, load_max_over_mean = 0;
  int32_t out_of_band = 0, above_load_band = 0;
};

Stats class_stats(const ClassLimits& cl, const FleetLimits& f, const std::vector<int64_t>& used,
                  const std::vector<double>& load) {
  Stats st;
  double sq = 0, max_u = -1e300, max_l = 0;
  int n = 0;
  for (int32_t s : cl.servers) {
    const ServerLimits& l = f.servers[static_cast<size_t>(s)];
    if (l.draining) continue;
    double u = static_cast<double>(used[static_cast<size_t>(s)]) / static_cast<double>(l.capacity);
    max_u = std::max(max_u, u);
    sq += (u - cl.mean) * (u - cl.mean);
    ++n;
    if (band_state(l, used[static_cast<size_t>(s)]) != BandState::kInside) ++st.out_of_band;
    if (l.load_capacity > 0 && cl.load_mean > 0) {
      max_l = std::max(max_l, load[static_cast<size_t>(s)] / l.load_capacity);
      if (load[static_cast<size_t>(s)] > l.load_limit) ++st.above_load_band;
    }
  }
  if (n == 0) return st;
  st.max_minus_mean = max_u - cl.mean;
  st.std = std::sqrt(sq / n);
  st.load_max_over_mean = cl.load_mean > 0 ? max_l / cl.load_mean : 0;
  return st;
}

}  // namespace

void fill_outcome(Plan& plan, const Snapshot& snap, const FleetLimits& f, const UserIndex& index,
                  const Constraints& c, const std::vector<double>& night_makespan_s) {
  const size_t S = snap.servers.size();
  std::vector<int64_t> used(S);
  std::vector<double> load(S);
  for (size_t s = 0; s < S; ++s) {
    used[s] = f.servers[s].used;
    load[s] = f.servers[s].load;
  }
  std::vector<int64_t> used0 = used;
  std::vector<double> load0 = load;
  plan.servers.assign(S, ServerOutcome{});
  for (const auto& m : plan.moves) {
    auto a = static_cast<size_t>(m.from), b = static_cast<size_t>(m.to);
    used[a] -= m.bytes;
    used[b] += m.bytes;
    load[a] -= m.activity;
    load[b] += m.activity;
    plan.servers[a].moves_out++;
    plan.servers[a].bytes_out += m.bytes;
    plan.servers[b].moves_in++;
    plan.servers[b].bytes_in += m.bytes;
  }
  for (size_t s = 0; s < S; ++s) {
    const ServerLimits& l = f.servers[s];
    ServerOutcome& o = plan.servers[s];
    o.id = static_cast<int32_t>(s);
    o.name = snap.servers[s].name;
    o.server_class = snap.servers[s].server_class;
    o.draining = l.draining;
    o.capacity_bytes = l.capacity;
    o.other_bytes = l.other;
    o.lower_bytes = l.lower;
    o.upper_bytes = l.upper;
    o.cap_bytes = l.cap;
    o.used_before = used0[s];
    o.used_after = used[s];
    o.load_capacity = l.load_capacity;
    o.load_before = load0[s];
    o.load_after = load[s];
    o.before = band_state(l, used0[s]);
    o.after = band_state(l, used[s]);
  }

  plan.classes.clear();
  for (const auto& cl : f.classes) {
    ClassOutcome co;
    co.name = cl.name;
    for (int32_t s : cl.servers)
      if (!f.servers[static_cast<size_t>(s)].draining) ++co.servers;
    co.mean_util = cl.mean;
    co.load_mean = cl.load_mean;
    Stats b = class_stats(cl, f, used0, load0), a = class_stats(cl, f, used, load);
    co.max_minus_mean_before = b.max_minus_mean;
    co.max_minus_mean_after = a.max_minus_mean;
    co.std_before = b.std;
    co.std_after = a.std;
    co.load_max_over_mean_before = b.load_max_over_mean;
    co.load_max_over_mean_after = a.load_max_over_mean;
    co.out_of_band_before = b.out_of_band;
    co.out_of_band_after = a.out_of_band;
    co.above_load_band_after = a.above_load_band;
    plan.classes.push_back(std::move(co));
  }

  // Execution estimate, night by night (the scheduler simulated each night).
  PlanEstimate& e = plan.estimate;
  e = PlanEstimate{};
  std::vector<double> work(S, 0.0);
  for (size_t i = 0; i < plan.moves.size();) {
    size_t j = i;
    NightEstimate n;
    n.night = plan.moves[i].night;
    while (j < plan.moves.size() && plan.moves[j].night == n.night) {
      n.bytes += plan.moves[j].bytes;
      ++n.moves;
      double d = move_seconds(plan.moves[j].bytes, c.execution);
      work[static_cast<size_t>(plan.moves[j].from)] += d;
      work[static_cast<size_t>(plan.moves[j].to)] += d;
      e.plan_lb_s = std::max(e.plan_lb_s, d);
      ++j;
    }
    const auto k = static_cast<size_t>(n.night - 1);
    n.makespan_s = k < night_makespan_s.size() ? night_makespan_s[k] : 0.0;
    e.bytes += n.bytes;
    e.moves += n.moves;
    e.makespan_s += n.makespan_s;
    e.per_night.push_back(n);
    i = j;
  }
  for (double w : work) e.plan_lb_s = std::max(e.plan_lb_s, w / c.execution.slots_per_server);
  // As metrics.py: a one-night plan needs ceil(makespan / window) nights.
  if (e.per_night.size() > 1)
    e.nights = static_cast<int32_t>(e.per_night.size());
  else
    e.nights = static_cast<int32_t>(std::ceil(e.makespan_s / 3600.0 / c.execution.night_hours - 1e-9));

  // What the final state says about the goals.
  std::vector<int32_t> above, below, load_hot;
  for (size_t s = 0; s < S; ++s) {
    const ServerLimits& l = f.servers[s];
    auto id = static_cast<int32_t>(s);
    if (l.draining) {
      // Movable bytes still there = what is left minus the users that may not move.
      const int64_t left_movable = used[s] - l.other - index.fixed_bytes(id);
      if (index.fixed_count(id) > 0) {
        int64_t pinned = index.pinned_count(id), big = index.fixed_count(id) - pinned;
        std::string why;
        if (pinned > 0) why = fmt::format("{} pinned user{}", pinned, pinned == 1 ? "" : "s");
        if (big > 0)
          why += fmt::format("{}{} mailbox{} larger than the max move size ({})", why.empty() ? "" : " and ", big,
                             big == 1 ? "" : "es", human_bytes(c.max_move_bytes));
        plan.partial_reasons.push_back(fmt::format("drain of server {} cannot finish: {} ({}) may not move",
                                                   snap.server_label(id), why, human_bytes(index.fixed_bytes(id))));
      }
      if (left_movable > 0)
        plan.partial_reasons.push_back(fmt::format("drain of server {} is incomplete: {} of movable mail stay on it",
                                                   snap.server_label(id), human_bytes(left_movable)));
      continue;
    }
    BandState st = band_state(l, used[s]);
    if (st == BandState::kAbove && l.other + index.fixed_bytes(id) > l.upper)
      plan.partial_reasons.push_back(fmt::format(
          "server {} cannot get inside its band: its pinned or too-large mailboxes and other bytes alone take {} "
          "(upper edge {})",
          snap.server_label(id), human_bytes(l.other + index.fixed_bytes(id)), human_bytes(l.upper)));
    if (st == BandState::kAbove) above.push_back(id);
    if (st == BandState::kBelow) below.push_back(id);
    if (load[s] > l.load_limit) load_hot.push_back(id);
    if (used0[s] > l.cap && used[s] > l.cap)
      plan.warnings.push_back(fmt::format("server {} stays above its hard cap: {} used of {} allowed",
                                          snap.server_label(id), percent(static_cast<double>(used[s]) / l.capacity),
                                          percent(static_cast<double>(l.cap) / l.capacity)));
  }
  if (!above.empty())
    plan.partial_reasons.push_back(fmt::format("{} {} above the band: {}", above.size(),
                                               above.size() == 1 ? "server stays" : "servers stay", name_list(snap, above)));
  if (!below.empty())
    plan.partial_reasons.push_back(fmt::format("{} {} below the band: {}", below.size(),
                                               below.size() == 1 ? "server stays" : "servers stay", name_list(snap, below)));
  for (int32_t s : load_hot) {
    const ServerLimits& l = f.servers[static_cast<size_t>(s)];
    const ClassLimits& cl = f.classes[static_cast<size_t>(l.cls)];
    plan.warnings.push_back(fmt::format("server {} load stays at {:.2f} x the class mean (load band {:.2f})",
                                        snap.server_label(s), load[static_cast<size_t>(s)] / l.load_capacity / cl.load_mean,
                                        1.0 + c.load_band));
  }
  plan.partial = !plan.partial_reasons.empty();
}

}  // namespace mailshard::planner
