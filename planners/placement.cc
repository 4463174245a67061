// Engine phases 3-5: which users leave, where they go, and the repairs (engine.h).
#include <algorithm>
#include <cmath>
#include <queue>

#include "planners/engine_state.h"

namespace mailshard::planner::detail {

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
  // What each receiver can give up and stay at its target (lower edge plus
  // margin); -1 for the other servers. Most receivers have nothing to spare,
  // so only the moves into the few that do are looked at.
  spare_.assign(snap_.servers.size(), -1);
  for (size_t s = 0; s < spare_.size(); ++s)
    if (role_[s] == Role::kReceiver) spare_[s] = used_[s] - (lim_.servers[s].lower + rcv_margin_[s]);
  // The smallest user >= gap and the largest < gap; among equal sizes the
  // earliest planned.
  ptrdiff_t above = -1, below = -1;
  int64_t above_w = 0, below_w = 0;
  // fits(r, w, ceiling(r)), which does not change during the search, as one
  // bound on w.
  const int64_t room = std::min(ceiling(r) - used_[ix(r)], L(r).cap - L(r).used - incoming_[ix(r)]);
  for (size_t t = 0; t < spare_.size(); ++t) {
    if (spare_[t] <= 0 || static_cast<int32_t>(t) == r) continue;
    const int64_t most = std::min(spare_[t], room);
    for (size_t i : into_[t]) {
      const int64_t w = size_of(items_[i].user);
      if (w <= 0 || w > most) continue;
      const auto at = static_cast<ptrdiff_t>(i);
      if (w >= gap) {
        if (above < 0 || w < above_w || (w == above_w && at < above)) {
          above = at;
          above_w = w;
        }
      } else if (below < 0 || w > below_w || (w == below_w && at < below)) {
        below = at;
        below_w = w;
      }
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
  auto& from_list = into_[ix(it.to)];
  from_list.erase(std::find(from_list.begin(), from_list.end(), static_cast<size_t>(pick)));
  into_[ix(r)].push_back(static_cast<size_t>(pick));
  place(it, r);
  return true;
}

void Engine::top_up(const ClassLimits& cl) {
  // The class's planned moves by destination, for reroute_into; kept up to
  // date below (the only changes: a move re-routed, a move added).
  into_.assign(snap_.servers.size(), {});
  for (size_t i = class_first_item_; i < items_.size(); ++i)
    if (items_[i].from >= 0 && items_[i].to >= 0 && !items_[i].swap) into_[ix(items_[i].to)].push_back(i);
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
      into_[ix(r)].push_back(items_.size() - 1);
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

}  // namespace mailshard::planner::detail
