#include "planners/engine.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <queue>

#include <fmt/format.h>

#include "planners/capacity.h"
#include "planners/lower_bounds.h"
#include "planners/ordering.h"
#include "planners/outcome.h"
#include "planners/selection.h"
#include "planners/user_index.h"
#include "util/strings.h"

namespace mailshard::planner {

namespace {

// Repair margins cost bytes on the side of the class that sets LB_bytes (the
// other side is free: its bytes move anyway). They get at most this share of
// LB_bytes, half of the 2 % the issue allows over the bound; the other half
// absorbs mailbox granularity.
constexpr double kMarginAllowance = 0.01;
// Receivers tried from the top of the need heap before a wider search.
constexpr int kHeapTries = 8;
// Load swaps: a partner's user may differ in size by this fraction from the
// user it replaces (bytes stay nearly put, both servers stay in band)...
constexpr double kSwapSizeTolerance = 0.10;
// ...and the search is bounded: the hot server's most active users, the
// coolest partners, the users of a partner in the size window.
constexpr size_t kSwapCandidates = 256;
constexpr size_t kSwapPartners = 8;
constexpr size_t kSwapWindow = 64;

enum class Role : uint8_t { kNone, kDonor, kReceiver };
enum Trigger : uint8_t { kDrain = 1, kOver = 2, kUnder = 4, kLoadHot = 8, kHardCap = 16 };

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

struct Item {
  int32_t user;
  int32_t from;
  int32_t to;  // -1 while unplaced
  bool swap;
};

class Engine {
 public:
  Engine(const Snapshot& snap, const Constraints& c, const Policy& p)
      : snap_(snap), c_(c), policy_(p), index_(snap, c.max_move_bytes) {
    const size_t S = snap.servers.size();
    draining_.assign(S, 0);
    for (size_t s = 0; s < S; ++s) draining_[s] = snap.servers[s].draining ? 1 : 0;
    for (int32_t s : c.drain) draining_[static_cast<size_t>(s)] = 1;
    used_ = used_bytes(snap);
    load_ = server_load(snap);
    lim_ = compute_limits(snap, draining_, used_, load_, c);
    incoming_.assign(S, 0);
    role_.assign(S, Role::kNone);
    trig_.assign(S, 0);
    out_min_.assign(S, 0);
    out_plan_.assign(S, 0);
    in_min_.assign(S, 0);
    in_plan_.assign(S, 0);
    act_need_.assign(S, 0);
    src_margin_.assign(S, 0);
    rcv_margin_.assign(S, 0);
    taken_.assign(snap.user_count(), 0);
    shed_cache_.resize(S);
  }

  Plan run() {
    for (const auto& cl : lim_.classes) plan_class(cl);
    return finish();
  }

 private:
  const ServerLimits& L(int32_t s) const { return lim_.servers[static_cast<size_t>(s)]; }
  size_t ix(int32_t s) const { return static_cast<size_t>(s); }
  int64_t size_of(int32_t u) const { return snap_.user_size[static_cast<size_t>(u)]; }
  double act_of(int32_t u) const { return snap_.user_activity[static_cast<size_t>(u)]; }
  // The most a receiver may hold: inside the band by its margin, under the hard ceiling.
  int64_t ceiling(int32_t s) const { return std::min(L(s).upper - L(s).margin, L(s).cap); }
  // The least a water-filled donor keeps: inside the band by its margin.
  int64_t floor_of(int32_t s) const { return std::min(L(s).lower + L(s).margin, L(s).mid); }

  // Can `s` take `w` more bytes while staying under `limit` and keeping
  // start + all incoming under the hard ceiling?
  bool fits(int32_t s, int64_t w, int64_t limit) const {
    return used_[ix(s)] + w <= limit && L(s).used + incoming_[ix(s)] + w <= L(s).cap;
  }
  bool load_ok(int32_t s, double a) const { return load_[ix(s)] + a <= L(s).load_target; }

  void take(int32_t u, int32_t from, bool swap = false) {
    taken_[static_cast<size_t>(u)] = 1;
    used_[ix(from)] -= size_of(u);
    load_[ix(from)] -= act_of(u);
    items_.push_back({u, from, -1, swap});
  }
  void untake(Item& it) {
    taken_[static_cast<size_t>(it.user)] = 0;
    used_[ix(it.from)] += size_of(it.user);
    load_[ix(it.from)] += act_of(it.user);
    it.from = -1;  // marks a dead item
  }
  void place(Item& it, int32_t to) {
    it.to = to;
    used_[ix(to)] += size_of(it.user);
    load_[ix(to)] += act_of(it.user);
    incoming_[ix(to)] += size_of(it.user);
    if (role_[ix(to)] == Role::kNone) role_[ix(to)] = Role::kReceiver;
  }

  void plan_class(const ClassLimits& cl);
  // Adds a partial reason when the class cannot reach its band whatever moves.
  void explain_infeasible(const ClassLimits& cl);
  void find_triggers(const ClassLimits& cl);
  void allocate(const ClassLimits& cl);
  // Completes the smaller side by water-filling; true when receivers need
  // more than donors must give (the deficit sets LB_bytes).
  bool water_fill(const ClassLimits& cl);
  void select_donors(const ClassLimits& cl);
  void assign(const ClassLimits& cl, size_t first_item);
  void top_up(const ClassLimits& cl);
  // Moves the destination of one planned user of this class from another
  // receiver (which stays at or above its own target) to r. The smallest such
  // user that closes `gap`, else the largest. False if none fits.
  bool reroute_into(int32_t r, int64_t gap);
  void push_out(const ClassLimits& cl);
  // A receiver pushed above its load band by active users planned into it
  // trades destinations with a receiver that got a colder user of about the
  // same size: no byte more moves.
  void exchange_destinations(const ClassLimits& cl);
  void swap_load(const ClassLimits& cl);
  bool try_swap(const ClassLimits& cl, int32_t hot, int32_t u, const std::vector<int32_t>& partners);
  void undo_last_item();
  // The emptiest non-donor that fits w (inside its margin, or just inside the
  // band), and, when activity >= 0 is given, stays under its load target.
  int32_t best_overflow(const ClassLimits& cl, int64_t w, bool margin, double activity = -1) const;
  Plan finish();

  const Snapshot& snap_;
  const Constraints& c_;
  Policy policy_;
  UserIndex index_;
  std::vector<uint8_t> draining_;
  FleetLimits lim_;
  std::vector<int64_t> used_;      // bytes per server as planned so far
  std::vector<double> load_;
  std::vector<int64_t> incoming_;  // bytes planned into each server
  std::vector<Role> role_;
  std::vector<uint8_t> trig_;
  std::vector<int64_t> out_min_, out_plan_, in_min_, in_plan_;
  std::vector<double> act_need_;
  std::vector<int64_t> src_margin_, rcv_margin_;  // margins after the allowance
  std::vector<uint8_t> taken_;     // per user
  // The last selection allocate() made for a donor, reused by
  // select_donors() when it asks the same question (same free users).
  std::vector<std::optional<std::pair<ShedRequest, Shed>>> shed_cache_;
  std::vector<Item> items_;
  size_t class_first_item_ = 0;  // items_ of the class being planned start here
  std::vector<std::string> reasons_;  // partial reasons found while planning
};

void Engine::plan_class(const ClassLimits& cl) {
  if (!std::isfinite(cl.mean)) {
    reasons_.push_back(fmt::format("class '{}' has no server that is not draining: nothing can receive its users",
                                   cl.name));
    return;
  }
  const size_t first_item = items_.size();
  class_first_item_ = first_item;
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

void Engine::select_donors(const ClassLimits& cl) {
  for (int32_t s : cl.servers) {
    if (role_[ix(s)] != Role::kDonor) continue;
    auto users = index_.users(s);
    if (trig_[ix(s)] & kDrain) {
      for (int32_t u : users) take(u, s);
      continue;
    }
    if (out_plan_[ix(s)] <= 0 && act_need_[ix(s)] <= 0) continue;
    ShedRequest req{out_plan_[ix(s)], out_min_[ix(s)], std::max<int64_t>(0, used_[ix(s)] - L(s).lower),
                    act_need_[ix(s)]};
    req.target = std::min(req.target, req.max);
    req.min = std::min(req.min, req.target);
    auto& cached = shed_cache_[ix(s)];
    Shed sh = cached && cached->first == req ? std::move(cached->second)
                                              : choose_shed(users, index_.sizes(s), index_.activities(s), taken_, req);
    cached.reset();
    for (int32_t u : sh.users) take(u, s);
  }
}

void Engine::assign(const ClassLimits& cl, size_t first_item) {
  std::vector<size_t> order;
  for (size_t i = first_item; i < items_.size(); ++i)
    if (items_[i].to < 0) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    int64_t wa = size_of(items_[a].user), wb = size_of(items_[b].user);
    return wa != wb ? wa > wb : items_[a].user < items_[b].user;
  });
  std::vector<int32_t> receivers;
  std::vector<int64_t> remaining(snap_.servers.size(), 0);
  for (int32_t s : cl.servers)
    if (role_[ix(s)] == Role::kReceiver && in_plan_[ix(s)] > 0) {
      receivers.push_back(s);
      remaining[ix(s)] = in_plan_[ix(s)];
    }
  // Max-heap of (remaining need, -id); an entry whose need is no longer the
  // receiver's current need is stale and skipped.
  using Entry = std::pair<int64_t, int32_t>;
  std::priority_queue<Entry> heap;
  for (int32_t r : receivers) heap.emplace(remaining[ix(r)], -r);

  std::vector<Entry> popped;
  for (size_t i : order) {
    Item& it = items_[i];
    const int64_t w = size_of(it.user);
    const double a = act_of(it.user);
    int32_t chosen = -1;
    popped.clear();
    int tries = 0;
    while (!heap.empty() && chosen < 0 && tries < kHeapTries) {
      Entry e = heap.top();
      heap.pop();
      int32_t r = -e.second;
      if (e.first != remaining[ix(r)]) continue;  // stale
      ++tries;
      if (fits(r, w, ceiling(r)) && load_ok(r, a))
        chosen = r;
      else
        popped.push_back(e);
    }
    for (const auto& e : popped) heap.push(e);
    if (chosen < 0 && a > 0) chosen = best_overflow(cl, w, true, a);
    if (chosen < 0) {
      // Any receiver with room, the most need first, load aside.
      for (int32_t r : receivers)
        if (fits(r, w, ceiling(r)) && (chosen < 0 || remaining[ix(r)] > remaining[ix(chosen)])) chosen = r;
    }
    if (chosen < 0) chosen = best_overflow(cl, w, true);
    if (chosen < 0) chosen = best_overflow(cl, w, false);
    if (chosen < 0) {
      untake(it);
      continue;
    }
    place(it, chosen);
    if (in_plan_[ix(chosen)] > 0) {  // one of `receivers`: update its heap entry
      remaining[ix(chosen)] -= w;
      heap.emplace(remaining[ix(chosen)], -chosen);
    }
  }
}

int32_t Engine::best_overflow(const ClassLimits& cl, int64_t w, bool margin, double activity) const {
  int32_t best = -1;
  double best_util = 0;
  for (int32_t s : cl.servers) {
    if (L(s).draining || role_[ix(s)] == Role::kDonor) continue;
    int64_t limit = margin ? ceiling(s) : std::min(L(s).upper, L(s).cap);
    if (!fits(s, w, limit)) continue;
    if (activity >= 0 && !load_ok(s, activity)) continue;
    double util = static_cast<double>(used_[ix(s)]) / static_cast<double>(L(s).capacity);
    if (best < 0 || util < best_util) {
      best = s;
      best_util = util;
    }
  }
  return best;
}

bool Engine::reroute_into(int32_t r, int64_t gap) {
  ptrdiff_t above = -1, below = -1;  // smallest >= gap, largest < gap
  for (size_t i = class_first_item_; i < items_.size(); ++i) {
    const Item& it = items_[i];
    if (it.from < 0 || it.to < 0 || it.to == r || it.swap || role_[ix(it.to)] != Role::kReceiver) continue;
    const int64_t w = size_of(it.user);
    if (w <= 0 || used_[ix(it.to)] - w < L(it.to).lower + rcv_margin_[ix(it.to)] || !fits(r, w, ceiling(r))) continue;
    auto better = [&](ptrdiff_t cur, bool want_small) {
      if (cur < 0) return true;
      int64_t wc = size_of(items_[static_cast<size_t>(cur)].user);
      return want_small ? w < wc : w > wc;
    };
    if (w >= gap) {
      if (better(above, true)) above = static_cast<ptrdiff_t>(i);
    } else if (better(below, false)) {
      below = static_cast<ptrdiff_t>(i);
    }
  }
  ptrdiff_t pick = above >= 0 ? above : below;
  if (pick < 0) return false;
  Item& it = items_[static_cast<size_t>(pick)];
  const int64_t w = size_of(it.user);
  const double a = act_of(it.user);
  used_[ix(it.to)] -= w;
  load_[ix(it.to)] -= a;
  incoming_[ix(it.to)] -= w;
  place(it, r);
  return true;
}

void Engine::top_up(const ClassLimits& cl) {
  for (int32_t r : cl.servers) {
    if (L(r).draining || role_[ix(r)] == Role::kDonor) continue;
    if (used_[ix(r)] >= L(r).lower || !policy_.fill_under) continue;
    while (used_[ix(r)] < L(r).lower) {
      const int64_t gap = L(r).lower + rcv_margin_[ix(r)] - used_[ix(r)];
      // First re-route a user already planned into a receiver that can spare
      // it: the band is reached without moving one byte more.
      if (reroute_into(r, gap)) continue;
      // Donors with the most room above their floor first.
      std::vector<int32_t> donors;
      for (int32_t d : cl.servers)
        if (!L(d).draining && role_[ix(d)] != Role::kReceiver && used_[ix(d)] > floor_of(d)) donors.push_back(d);
      std::sort(donors.begin(), donors.end(), [&](int32_t a, int32_t b) {
        double sa = static_cast<double>(used_[ix(a)] - floor_of(a)) / static_cast<double>(L(a).capacity);
        double sb = static_cast<double>(used_[ix(b)] - floor_of(b)) / static_cast<double>(L(b).capacity);
        return sa != sb ? sa > sb : a < b;
      });
      int32_t pick_u = -1, pick_d = -1;
      // The smallest single user that closes the gap...
      for (int32_t d : donors) {
        const int64_t limit = std::min(used_[ix(d)] - floor_of(d), ceiling(r) - used_[ix(r)]);
        auto sizes = index_.sizes(d);
        auto users = index_.users(d);
        auto k = static_cast<ptrdiff_t>(std::upper_bound(sizes.begin(), sizes.end(), gap, std::greater<>()) - sizes.begin());
        for (ptrdiff_t i = k - 1; i >= 0; --i) {
          auto iu = static_cast<size_t>(i);
          if (sizes[iu] > limit) break;
          if (!taken_[static_cast<size_t>(users[iu])] && fits(r, sizes[iu], ceiling(r))) {
            pick_u = users[iu];
            break;
          }
        }
        if (pick_u >= 0) {
          pick_d = d;
          break;
        }
      }
      // ...else the largest that fits, and loop.
      if (pick_u < 0)
        for (int32_t d : donors) {
          const int64_t limit = std::min({used_[ix(d)] - floor_of(d), ceiling(r) - used_[ix(r)], gap});
          auto sizes = index_.sizes(d);
          auto users = index_.users(d);
          for (size_t i = 0; i < sizes.size(); ++i)
            if (sizes[i] <= limit && sizes[i] > 0 && !taken_[static_cast<size_t>(users[i])] && fits(r, sizes[i], ceiling(r))) {
              pick_u = users[i];
              break;
            }
          if (pick_u >= 0) {
            pick_d = d;
            break;
          }
        }
      if (pick_u < 0) break;
      if (role_[ix(pick_d)] == Role::kNone) role_[ix(pick_d)] = Role::kDonor;
      take(pick_u, pick_d);
      place(items_.back(), r);
      if (role_[ix(r)] == Role::kNone) role_[ix(r)] = Role::kReceiver;
    }
  }
}

void Engine::push_out(const ClassLimits& cl) {
  for (int32_t s : cl.servers) {
    if (role_[ix(s)] != Role::kDonor) continue;
    std::vector<int32_t> out;
    if (trig_[ix(s)] & kDrain) {
      for (int32_t u : index_.users(s))
        if (!taken_[static_cast<size_t>(u)]) out.push_back(u);
    } else if (used_[ix(s)] > L(s).upper) {
      ShedRequest req{used_[ix(s)] - (L(s).upper - src_margin_[ix(s)]), used_[ix(s)] - L(s).upper,
                      std::max<int64_t>(0, used_[ix(s)] - L(s).lower), 0};
      out = choose_shed(index_.users(s), index_.sizes(s), index_.activities(s), taken_, req).users;
    }
    for (int32_t u : out) {
      const int64_t w = size_of(u);
      int32_t to = best_overflow(cl, w, true);
      if (to < 0) to = best_overflow(cl, w, false);
      if (to < 0) continue;
      take(u, s);
      place(items_.back(), to);
    }
  }
}

void Engine::undo_last_item() {
  Item it = items_.back();
  items_.pop_back();
  const int64_t w = size_of(it.user);
  const double a = act_of(it.user);
  if (it.to >= 0) {
    used_[ix(it.to)] -= w;
    load_[ix(it.to)] -= a;
    incoming_[ix(it.to)] -= w;
  }
  taken_[static_cast<size_t>(it.user)] = 0;
  used_[ix(it.from)] += w;
  load_[ix(it.from)] += a;
}

bool Engine::try_swap(const ClassLimits& cl, int32_t hot, int32_t u, const std::vector<int32_t>& partners) {
  const int64_t wu = size_of(u);
  const double au = act_of(u);
  for (int32_t c : partners) {
    auto sizes = index_.sizes(c);
    auto users = index_.users(c);
    const auto hi_w = static_cast<int64_t>(static_cast<double>(wu) * (1 + kSwapSizeTolerance));
    const auto lo_w = static_cast<int64_t>(static_cast<double>(wu) * (1 - kSwapSizeTolerance));
    // sizes descending: the window [lo_w, hi_w] starts at the first size <= hi_w.
    auto first = static_cast<size_t>(std::lower_bound(sizes.begin(), sizes.end(), hi_w, std::greater<>()) - sizes.begin());
    int32_t best = -1;
    double best_a = au;
    for (size_t i = first, seen = 0; i < sizes.size() && sizes[i] >= lo_w && seen < kSwapWindow; ++i) {
      int32_t v = users[i];
      if (taken_[static_cast<size_t>(v)]) continue;
      ++seen;
      if (act_of(v) < best_a) {
        best = v;
        best_a = act_of(v);
      }
    }
    if (best < 0) continue;
    const int64_t wv = size_of(best);
    // Both ends stay inside their band and under their ceilings, and the
    // partner stays under its load target.
    auto band_ok = [&](int32_t s, int64_t after) { return after >= L(s).lower && after <= std::min(L(s).upper, L(s).cap); };
    if (!band_ok(hot, used_[ix(hot)] - wu + wv) || !band_ok(c, used_[ix(c)] - wv + wu)) continue;
    if (L(hot).used + incoming_[ix(hot)] + wv > L(hot).cap || L(c).used + incoming_[ix(c)] + wu > L(c).cap) continue;
    if (load_[ix(c)] + au - best_a > L(c).load_target) continue;
    take(u, hot, true);
    place(items_.back(), c);
    take(best, c, true);
    place(items_.back(), hot);
    return true;
  }
  return false;
}

void Engine::exchange_destinations(const ClassLimits& cl) {
  std::vector<int32_t> hot;
  for (int32_t s : cl.servers)
    if (!L(s).draining && load_[ix(s)] > L(s).load_limit && incoming_[ix(s)] > 0) hot.push_back(s);
  if (hot.empty()) return;
  // Planned items of this class by size, for the size-window search.
  std::vector<size_t> by_size;
  for (size_t i = class_first_item_; i < items_.size(); ++i)
    if (items_[i].from >= 0 && items_[i].to >= 0 && !items_[i].swap) by_size.push_back(i);
  std::sort(by_size.begin(), by_size.end(), [&](size_t a, size_t b) {
    int64_t wa = size_of(items_[a].user), wb = size_of(items_[b].user);
    return wa != wb ? wa < wb : a < b;
  });
  std::vector<int64_t> sizes;
  for (size_t i : by_size) sizes.push_back(size_of(items_[i].user));
  auto band_ok = [&](int32_t s, int64_t after) { return after >= L(s).lower && after <= std::min(L(s).upper, L(s).cap); };
  for (int32_t h : hot) {
    std::vector<size_t> in;
    for (size_t i : by_size)
      if (items_[i].to == h) in.push_back(i);
    std::stable_sort(in.begin(), in.end(), [&](size_t a, size_t b) { return act_of(items_[a].user) > act_of(items_[b].user); });
    for (size_t x : in) {
      if (load_[ix(h)] <= L(h).load_target) break;
      const int64_t wx = size_of(items_[x].user);
      const double ax = act_of(items_[x].user);
      auto lo = static_cast<int64_t>(static_cast<double>(wx) * (1 - kSwapSizeTolerance));
      auto hi = static_cast<int64_t>(static_cast<double>(wx) * (1 + kSwapSizeTolerance));
      size_t k = static_cast<size_t>(std::lower_bound(sizes.begin(), sizes.end(), lo) - sizes.begin());
      ptrdiff_t best = -1;
      double best_a = ax;
      for (size_t seen = 0; k < sizes.size() && sizes[k] <= hi && seen < kSwapWindow; ++k, ++seen) {
        const Item& y = items_[by_size[k]];
        const int32_t r = y.to;
        if (r == h || y.from < 0 || act_of(y.user) >= best_a) continue;
        const int64_t wy = size_of(y.user);
        const double ay = act_of(y.user);
        if (!band_ok(h, used_[ix(h)] - wx + wy) || !band_ok(r, used_[ix(r)] - wy + wx)) continue;
        if (L(h).used + incoming_[ix(h)] - wx + wy > L(h).cap || L(r).used + incoming_[ix(r)] - wy + wx > L(r).cap) continue;
        if (load_[ix(r)] - ay + ax > L(r).load_target) continue;
        best = static_cast<ptrdiff_t>(by_size[k]);
        best_a = ay;
      }
      if (best < 0) continue;
      Item& y = items_[static_cast<size_t>(best)];
      Item& xi = items_[x];
      const int32_t r = y.to;
      for (Item* it : {&xi, &y}) {  // take both out of their destinations...
        used_[ix(it->to)] -= size_of(it->user);
        load_[ix(it->to)] -= act_of(it->user);
        incoming_[ix(it->to)] -= size_of(it->user);
      }
      place(xi, r);  // ...and put them back crossed
      place(y, h);
    }
  }
}

void Engine::swap_load(const ClassLimits& cl) {
  std::vector<int32_t> hot;
  for (int32_t s : cl.servers)
    if (!L(s).draining && load_[ix(s)] > L(s).load_limit) hot.push_back(s);
  auto ratio = [&](int32_t s) { return load_[ix(s)] / L(s).load_capacity; };
  std::sort(hot.begin(), hot.end(), [&](int32_t a, int32_t b) { return ratio(a) != ratio(b) ? ratio(a) > ratio(b) : a < b; });
  for (int32_t h : hot) {
    // Partners: the coolest servers with load room, re-ranked per swap.
    std::vector<int32_t> cool;
    for (int32_t s : cl.servers)
      if (s != h && !L(s).draining && L(s).load_capacity > 0 && load_[ix(s)] < L(s).load_target) cool.push_back(s);
    std::vector<int32_t> cand;
    for (int32_t u : index_.users(h))
      if (!taken_[static_cast<size_t>(u)]) cand.push_back(u);
    std::stable_sort(cand.begin(), cand.end(), [&](int32_t a, int32_t b) { return act_of(a) > act_of(b); });
    if (cand.size() > kSwapCandidates) cand.resize(kSwapCandidates);
    const size_t checkpoint = items_.size();
    for (int32_t u : cand) {
      if (load_[ix(h)] <= L(h).load_target) break;
      std::sort(cool.begin(), cool.end(), [&](int32_t a, int32_t b) { return ratio(a) != ratio(b) ? ratio(a) < ratio(b) : a < b; });
      std::vector<int32_t> partners(cool.begin(), cool.begin() + static_cast<ptrdiff_t>(std::min(kSwapPartners, cool.size())));
      try_swap(cl, h, u, partners);
    }
    // Half a repair would be redone by the next run (and undone by the one
    // after): keep the swaps only if they bring the server inside its band.
    if (load_[ix(h)] > L(h).load_limit)
      while (items_.size() > checkpoint) undo_last_item();
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
  for (const Item& it : items_) {
    if (it.from < 0 || it.to < 0) continue;
    PlannedMove m;
    m.user = it.user;
    if (!snap_.user_names.empty()) m.user_name = snap_.user_names[static_cast<size_t>(it.user)];
    m.from = it.from;
    m.to = it.to;
    m.bytes = size_of(it.user);
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

}  // namespace

Plan run_engine(const Snapshot& snapshot, const Constraints& constraints, const Policy& policy) {
  return Engine(snapshot, constraints, policy).run();
}

}  // namespace mailshard::planner
