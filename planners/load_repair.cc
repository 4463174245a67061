// Engine phase 6: load repairs that move (almost) no extra bytes (engine.h).
#include <algorithm>
#include <cmath>

#include "planners/engine_state.h"

namespace mailshard::planner::detail {

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

}  // namespace mailshard::planner::detail
