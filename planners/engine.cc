#include "planners/engine.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "planners/engine_state.h"
#include "planners/lower_bounds.h"
#include "planners/ordering.h"
#include "planners/outcome.h"
#include "util/strings.h"

namespace mailshard::planner {
namespace detail {

namespace {

// Urgency ranks for night packing (lower first): relieve a hard cap, finish
// drains, then the band, then load, then the rest.
int urgency(uint8_t donor_trig, uint8_t receiver_trig, bool swap) {
  if (donor_trig & kHardCap) return 0;
  if (donor_trig & kDrain) return 1;
  if (donor_trig & kOver) return 2;
  if (receiver_trig & kUnder) return 3;
  if (donor_trig & kLoadHot) return 4;
  return swap ? 5 : 6;
}

MoveReason reason_of(uint8_t donor_trig, uint8_t receiver_trig, bool swap) {
  if (swap) return MoveReason::kSwap;
  if (donor_trig & kDrain) return MoveReason::kDrain;
  if (donor_trig & (kOver | kHardCap)) return MoveReason::kOverBand;
  if (receiver_trig & kUnder) return MoveReason::kUnderBand;
  if (donor_trig & kLoadHot) return MoveReason::kLoad;
  return MoveReason::kSpread;
}

}  // namespace

void Engine::plan_class(const ClassLimits& cl) {
  if (!std::isfinite(cl.mean)) {
    reasons_.push_back(fmt::format("class '{}' has no server that is not draining: nothing can receive its users",
                                   cl.name));
    return;
  }
  const size_t first_item = items_.size();
  class_first_item_ = first_item;
  if (is_storage_group(cl)) {
    plan_storage_group(cl);
    return;
  }
  explain_infeasible(cl);
  find_triggers(cl);
  allocate(cl);
  select_donors(cl);
  assign(cl, first_item);
  top_up(cl);
  push_out(cl);
  if (policy_.load) {
    exchange_destinations(cl);
    swap_load(cl);
  }
}

void Engine::explain_infeasible(const ClassLimits& cl) {
  int64_t room = 0, floor = 0, fixed_on_drains = 0;
  int active = 0;
  for (int32_t s : cl.servers) {
    const ServerLimits& l = L(s);
    if (l.draining) {
      fixed_on_drains += l.used - (policy_.drain ? index_.movable_bytes(s) : 0);
      continue;
    }
    ++active;
    room += std::min(l.upper, l.cap);
    floor += l.lower;
  }
  if (cl.used_total > room)
    reasons_.push_back(fmt::format(
        "class '{}' does not fit its band: it holds {} and its {} active server{} can hold {} below the band's upper "
        "edge and the hard cap",
        cl.name, human_bytes(cl.used_total), active, active == 1 ? "" : "s", human_bytes(room)));
  else if (cl.used_total - fixed_on_drains < floor)
    reasons_.push_back(fmt::format(
        "class '{}' cannot bring every server up to the band's lower edge: that needs {} and only {} is not fixed on "
        "draining servers",
        cl.name, human_bytes(floor), human_bytes(cl.used_total - fixed_on_drains)));
}

void Engine::find_triggers(const ClassLimits& cl) {
  int64_t excess = 0, deficit = 0, src_m = 0, rcv_m = 0;
  for (int32_t s : cl.servers) {
    const ServerLimits& l = L(s);
    if (l.draining) {
      if (policy_.drain && index_.movable_bytes(s) > 0) {
        role_[ix(s)] = Role::kDonor;
        trig_[ix(s)] = kDrain;
        out_min_[ix(s)] = out_plan_[ix(s)] = index_.movable_bytes(s);
        excess += index_.movable_bytes(s);
      }
      continue;
    }
    const int64_t u = used_[ix(s)];
    const bool hard = u > l.cap;
    if (u > l.upper && (policy_.shed_over || hard)) {
      role_[ix(s)] = Role::kDonor;
      trig_[ix(s)] = kOver | (hard ? kHardCap : 0);
      excess += u - l.upper;
      src_m += l.margin;
    } else if (u < l.lower && policy_.fill_under) {
      role_[ix(s)] = Role::kReceiver;
      trig_[ix(s)] = kUnder;
      deficit += l.lower - u;
      rcv_m += l.margin;
    }
    if (policy_.load && load_[ix(s)] > l.load_limit && role_[ix(s)] != Role::kReceiver) {
      trig_[ix(s)] |= kLoadHot;
      role_[ix(s)] = Role::kDonor;
    }
    // A donor sheds enough activity to end at its load target too: load
    // triggers only above the load band, but a server we act on anyway is
    // repaired well inside it, like its bytes.
    if (policy_.load && role_[ix(s)] == Role::kDonor && load_[ix(s)] > l.load_target)
      act_need_[ix(s)] = load_[ix(s)] - l.load_target;
  }
  // Margins: free on the side that does not set LB_bytes, capped on the other.
  const double lb = static_cast<double>(std::max(excess, deficit));
  const double budget = lb * (1 + kMarginAllowance);
  auto factor = [&](int64_t side, int64_t margins) {
    if (margins <= 0) return 0.0;
    return std::clamp((budget - static_cast<double>(side)) / static_cast<double>(margins), 0.0, 1.0);
  };
  const double fs = factor(excess, src_m), fr = factor(deficit, rcv_m);
  for (int32_t s : cl.servers) {
    const ServerLimits& l = L(s);
    src_margin_[ix(s)] = static_cast<int64_t>(fs * static_cast<double>(l.margin));
    rcv_margin_[ix(s)] = static_cast<int64_t>(fr * static_cast<double>(l.margin));
    if (trig_[ix(s)] & kOver) out_min_[ix(s)] = used_[ix(s)] - (l.upper - src_margin_[ix(s)]);
    if (trig_[ix(s)] & kUnder)
      in_min_[ix(s)] = std::max<int64_t>(0, std::min(l.lower + rcv_margin_[ix(s)], ceiling(s)) - used_[ix(s)]);
    out_plan_[ix(s)] = std::max(out_plan_[ix(s)], out_min_[ix(s)]);
    in_plan_[ix(s)] = in_min_[ix(s)];
  }
}

Plan Engine::finish() {
  Plan plan;
  plan.constraints = c_;
  plan.strategy = c_.strategy;
  plan.snapshot_users = static_cast<int64_t>(snap_.user_count());
  plan.snapshot_servers = static_cast<int32_t>(snap_.servers.size());
  plan.snapshot_taken_at_ms = snap_.taken_at_ms;
  plan.snapshot_source = snap_.source;

  std::vector<PlannedMove> moves;
  std::vector<int> rank;
  moves.reserve(items_.size());
  rank.reserve(items_.size());
  for (const Item& it : items_) {
    if (it.from < 0 || it.to < 0) continue;
    PlannedMove m;
    m.user = it.user;
    if (!snap_.user_names.empty()) m.user_name = snap_.user_names[static_cast<size_t>(it.user)];
    m.from = it.from;
    m.to = it.to;
    m.bytes = it.zero_copy ? 0 : size_of(it.user);
    m.activity = act_of(it.user);
    m.reason = reason_of(trig_[ix(it.from)], trig_[ix(it.to)], it.swap);
    rank.push_back(urgency(trig_[ix(it.from)], trig_[ix(it.to)], it.swap));
    moves.push_back(std::move(m));
  }
  Schedule sched = schedule_moves(std::move(moves), rank, c_, snap_.servers.size());
  plan.moves = std::move(sched.moves);
  if (!sched.dropped.empty()) {
    int64_t bytes = 0;
    for (const auto& m : sched.dropped) bytes += m.bytes;
    std::vector<std::string> limits;
    if (c_.max_bytes > 0) limits.push_back(fmt::format("--max-bytes {}", human_bytes(c_.max_bytes)));
    if (c_.max_moves > 0) limits.push_back(fmt::format("--max-moves {}", c_.max_moves));
    if (c_.max_moves_per_server > 0) limits.push_back(fmt::format("--max-moves-per-server {}", c_.max_moves_per_server));
    if (c_.nights > 1) limits.push_back(fmt::format("a {:g} h window", c_.execution.night_hours));
    reasons_.push_back(fmt::format(
        "budget too small to reach the band: {} per night over {} night{} leaves {} move{} ({}) unplanned",
        limits.empty() ? std::string("the limits") : join(limits, ", "), c_.nights, c_.nights == 1 ? "" : "s",
        sched.dropped.size(), sched.dropped.size() == 1 ? "" : "s", human_bytes(bytes)));
  }
  for (const auto& n : snap_.notes) plan.warnings.push_back("snapshot: " + n);
  if (!snap_.notes.empty())
    reasons_.push_back(fmt::format("the snapshot has {} problem{} (see the warnings); the users concerned stay where they are",
                                   snap_.notes.size(), snap_.notes.size() == 1 ? "" : "s"));
  plan.partial_reasons = reasons_;
  plan.bounds = lower_bounds(snap_, lim_, index_, c_);
  fill_outcome(plan, snap_, lim_, index_, c_, sched.night_makespan_s);
  return plan;
}

}  // namespace detail

Plan run_engine(const Snapshot& snapshot, const Constraints& constraints, const Policy& policy) {
  return detail::Engine(snapshot, constraints, policy).run();
}

}  // namespace mailshard::planner
