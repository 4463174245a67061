// Engine phase 2: how many bytes each server gives or takes (engine.h).
#include <algorithm>
#include <cmath>

#include "planners/engine_state.h"

namespace mailshard::planner::detail {

void Engine::allocate(const ClassLimits& cl) {
  // Activity shed has to land somewhere: cap what donors try to shed at what
  // the other servers can take under their load targets, or the hot spot
  // only moves.
  double room = 0, wanted = 0;
  for (int32_t s : cl.servers) {
    if (!L(s).draining && role_[ix(s)] != Role::kDonor && std::isfinite(L(s).load_target))
      room += std::max(0.0, L(s).load_target - load_[ix(s)]);
    wanted += act_need_[ix(s)];
  }
  if (wanted > room)
    for (int32_t s : cl.servers) act_need_[ix(s)] *= room / wanted;

  // Two rounds: a donor whose byte share cannot shed its activity excess
  // gives more (for free when the receivers need more anyway, else only as
  // much more as its load needs), and the amounts are balanced again.
  for (int round = 0; round < 2; ++round) {
    const bool deficit_case = water_fill(cl);
    if (round == 1) break;
    bool again = false;
    for (int32_t s : cl.servers) {
      if (role_[ix(s)] != Role::kDonor || act_need_[ix(s)] <= 0 || (trig_[ix(s)] & kDrain)) continue;
      const int64_t most = used_[ix(s)] - floor_of(s);
      auto sheds_enough = [&](int64_t bytes) {
        ShedRequest req{bytes, std::min(bytes, out_min_[ix(s)]), used_[ix(s)] - L(s).lower, act_need_[ix(s)]};
        return can_shed(index_.users(s), index_.sizes(s), index_.activities(s), taken_, req);
      };
      if (out_plan_[ix(s)] >= most) continue;
      {
        // The share as planned: choose now and keep the choice, selection
        // will ask the very same question if nothing changes.
        ShedRequest req{out_plan_[ix(s)], out_min_[ix(s)], used_[ix(s)] - L(s).lower, act_need_[ix(s)]};
        Shed sh = choose_shed(index_.users(s), index_.sizes(s), index_.activities(s), taken_, req);
        const bool enough = sh.activity >= act_need_[ix(s)];
        shed_cache_[ix(s)] = {req, std::move(sh)};
        if (enough) continue;
      }
      if (deficit_case) {
        out_min_[ix(s)] = most;
        again = true;
        continue;
      }
      // Bytes cost here: the least that sheds enough activity, if any does.
      if (!sheds_enough(most)) continue;
      int64_t lo = out_plan_[ix(s)], hi = most;
      while (hi - lo > std::max<int64_t>(1, L(s).margin / 4)) {
        int64_t mid = lo + (hi - lo) / 2;
        (sheds_enough(mid) ? hi : lo) = mid;
      }
      out_min_[ix(s)] = hi;
      again = true;
    }
    if (!again) break;
  }
}

bool Engine::water_fill(const ClassLimits& cl) {
  int64_t supply = 0, need = 0;
  for (int32_t s : cl.servers) {
    supply += out_min_[ix(s)];
    need += in_min_[ix(s)];
    out_plan_[ix(s)] = out_min_[ix(s)];
    in_plan_[ix(s)] = in_min_[ix(s)];
  }
  if (need > supply) {
    // More must arrive than must leave: the fullest servers give, down to a
    // common utilisation level tau (never below their floor).
    auto shed_at = [&](int32_t s, double tau) -> int64_t {
      int64_t level = std::max(static_cast<int64_t>(std::ceil(tau * static_cast<double>(L(s).capacity))), floor_of(s));
      return std::max(out_min_[ix(s)], used_[ix(s)] - level);
    };
    auto candidate = [&](int32_t s) { return !L(s).draining && role_[ix(s)] != Role::kReceiver; };
    auto total_at = [&](double tau) {
      int64_t t = 0;
      for (int32_t s : cl.servers) t += candidate(s) ? shed_at(s, tau) : out_min_[ix(s)];
      return t;
    };
    double lo = 0, hi = 1;
    for (int32_t s : cl.servers) hi = std::max(hi, static_cast<double>(used_[ix(s)]) / static_cast<double>(L(s).capacity));
    if (total_at(lo) > need)
      for (int i = 0; i < 64; ++i) {
        double mid = (lo + hi) / 2;
        (total_at(mid) >= need ? lo : hi) = mid;
      }
    for (int32_t s : cl.servers) {
      if (!candidate(s)) continue;
      out_plan_[ix(s)] = shed_at(s, lo);
      if (out_plan_[ix(s)] > 0 && role_[ix(s)] == Role::kNone) role_[ix(s)] = Role::kDonor;
    }
    return true;
  }
  if (supply > need) {
    // More must leave than must arrive: the emptiest servers take, up to a
    // common level (never above their ceiling).
    auto recv_at = [&](int32_t s, double tau) -> int64_t {
      int64_t level = std::min(static_cast<int64_t>(std::floor(tau * static_cast<double>(L(s).capacity))), ceiling(s));
      return std::max(in_min_[ix(s)], level - used_[ix(s)]);
    };
    auto candidate = [&](int32_t s) { return !L(s).draining && role_[ix(s)] != Role::kDonor; };
    auto total_at = [&](double tau) {
      int64_t t = 0;
      for (int32_t s : cl.servers) t += candidate(s) ? recv_at(s, tau) : in_min_[ix(s)];
      return t;
    };
    double lo = 0, hi = 1;
    if (total_at(hi) >= supply)
      for (int i = 0; i < 64; ++i) {
        double mid = (lo + hi) / 2;
        (total_at(mid) >= supply ? hi : lo) = mid;
      }
    for (int32_t s : cl.servers) {
      if (!candidate(s)) continue;
      in_plan_[ix(s)] = recv_at(s, hi);
      if (in_plan_[ix(s)] > 0 && role_[ix(s)] == Role::kNone) role_[ix(s)] = Role::kReceiver;
    }
  }
  return false;
}

}  // namespace mailshard::planner::detail
