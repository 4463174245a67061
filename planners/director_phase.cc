// Engine phase for a class that is one storage group behind a Dovecot
// director (engine.h): its servers share one disk, so a user changes server
// with `doveadm director move` and no byte is copied. The byte band means
// nothing inside the group; what a move buys is load (and an empty server to
// take out of the ring).
//
//  1. Draining servers give every movable user, most active first, each to
//     the server of the group whose load ratio is lowest with it.
//  2. Servers above the load band give their most active users that fit, each
//     to the coolest server, while the move lowers the larger of the two
//     ratios and keeps the receiver under its load target; few, active users
//     rather than many cold ones, because every move ends the user's sessions.
#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "planners/engine_state.h"
#include "util/strings.h"

namespace mailshard::planner::detail {

namespace {

// A server with no load figure counts as one unit (its ratio is its activity).
double load_units(const ServerLimits& l) { return l.load_capacity > 0 ? l.load_capacity : 1.0; }

}  // namespace

void Engine::move_in_group(int32_t u, int32_t from, int32_t to) {
  taken_[static_cast<size_t>(u)] = 1;
  load_[ix(from)] -= act_of(u);
  load_[ix(to)] += act_of(u);
  items_.push_back({u, from, to, false, true});
  role_[ix(from)] = Role::kDonor;
  if (role_[ix(to)] == Role::kNone) role_[ix(to)] = Role::kReceiver;
}

void Engine::plan_storage_group(const ClassLimits& cl) {
  const std::string& group = snap_.servers[ix(cl.servers.front())].storage_group;
  std::vector<int32_t> members;
  for (int32_t s : cl.servers)
    if (!L(s).draining) members.push_back(s);

  // The movable users of each server of the group, most active first (ties:
  // lower id). Sizes do not matter for a move that copies nothing, but
  // max_move_bytes is a promise of the plan (core/plan.h) and is kept.
  std::vector<std::vector<int32_t>> users(cl.servers.size());
  std::vector<int32_t> slot(snap_.servers.size(), -1);
  for (size_t i = 0; i < cl.servers.size(); ++i) slot[ix(cl.servers[i])] = static_cast<int32_t>(i);
  for (size_t u = 0; u < snap_.user_count(); ++u) {
    const int32_t k = slot[ix(snap_.user_server[u])];
    if (k < 0 || snap_.user_pinned[u] || taken_[u]) continue;
    if (c_.max_move_bytes > 0 && snap_.user_size[u] > c_.max_move_bytes) continue;
    users[static_cast<size_t>(k)].push_back(static_cast<int32_t>(u));
  }
  for (auto& list : users)
    std::stable_sort(list.begin(), list.end(), [&](int32_t a, int32_t b) { return act_of(a) > act_of(b); });
  auto users_of = [&](int32_t s) -> const std::vector<int32_t>& { return users[static_cast<size_t>(slot[ix(s)])]; };
  auto ratio = [&](int32_t s, double extra) { return (load_[ix(s)] + extra) / load_units(L(s)); };
  // The member that would have the lowest ratio after taking `a` (ties: lower id).
  auto coolest = [&](double a, int32_t except) {
    int32_t best = -1;
    for (int32_t r : members)
      if (r != except && (best < 0 || ratio(r, a) < ratio(best, a))) best = r;
    return best;
  };

  if (policy_.drain) {
    for (int32_t s : cl.servers) {
      if (!L(s).draining || users_of(s).empty()) continue;
      trig_[ix(s)] = kDrain;
      if (members.empty()) {
        reasons_.push_back(fmt::format("storage group '{}' has no server that is not draining: {} cannot be emptied",
                                       printable(group, 40), snap_.server_label(s)));
        continue;
      }
      for (int32_t u : users_of(s)) move_in_group(u, s, coolest(act_of(u), -1));
    }
  }

  if (!policy_.load || members.size() < 2) return;
  std::vector<int32_t> hot;
  for (int32_t s : members)
    if (load_[ix(s)] > L(s).load_limit) hot.push_back(s);
  std::sort(hot.begin(), hot.end(), [&](int32_t a, int32_t b) {
    return ratio(a, 0) != ratio(b, 0) ? ratio(a, 0) > ratio(b, 0) : a < b;
  });
  for (int32_t h : hot) {
    trig_[ix(h)] |= kLoadHot;
    for (int32_t u : users_of(h)) {
      if (load_[ix(h)] <= L(h).load_target) break;
      const double a = act_of(u);
      if (!(a > 0)) break;  // the rest are idle: moving them changes nothing
      if (taken_[static_cast<size_t>(u)]) continue;
      const int32_t r = coolest(a, h);
      if (r < 0) break;
      if (load_[ix(r)] + a > L(r).load_target) continue;   // too active for the coolest: try a smaller one
      if (!(ratio(r, a) < ratio(h, 0))) continue;         // would only move the peak
      move_in_group(u, h, r);
    }
    if (load_[ix(h)] > L(h).load_limit)
      reasons_.push_back(fmt::format(
          "storage group '{}': {} stays above the load band ({:.2f} of {:.2f}): no user of it fits under another "
          "server's load target",
          printable(group, 40), snap_.server_label(h), load_[ix(h)] / load_units(L(h)),
          L(h).load_limit / load_units(L(h))));
  }
}

}  // namespace mailshard::planner::detail
