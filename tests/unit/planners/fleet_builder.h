// Test support for the planner tests: small fleets built in memory, random
// fleets from a seed, and an independent checker of every hard constraint
// (it re-derives the rules from core/plan.h's contract; it shares no code
// with the planner beyond the Snapshot and Plan types).
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/plan.h"
#include "core/snapshot.h"

namespace mailshard::testing {

constexpr int64_t kGiB = 1ll << 30;

struct FleetBuilder {
  Snapshot snap;
  // Adds a server; returns its id.
  int32_t server(const std::string& cls, int64_t capacity, int64_t other = 0, double load_capacity = 16,
                 bool draining = false, const std::string& name = {}) {
    snap.servers.push_back({name, cls, capacity, other, load_capacity, draining, {}});
    return static_cast<int32_t>(snap.servers.size() - 1);
  }
  // Puts servers into one storage group (director backends over one mail root).
  void group(const std::vector<int32_t>& servers, const std::string& name) {
    for (int32_t s : servers) snap.servers[static_cast<size_t>(s)].storage_group = name;
  }
  // Adds a user; returns its id.
  int64_t user(int32_t server, int64_t size, double activity = 1.0, bool pinned = false) {
    snap.add_user(server, size, activity, pinned);
    return static_cast<int64_t>(snap.user_count() - 1);
  }
};

// A random fleet: 1-3 classes, 3-24 servers, skewed fills (some new, some
// hot), heavy-tailed mailbox sizes, activity loosely tied to size, pins and
// sometimes draining servers.
inline Snapshot random_fleet(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uni = [&](double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); };
  auto pick = [&](int a, int b) { return std::uniform_int_distribution<int>(a, b)(rng); };
  FleetBuilder f;
  const int classes = pick(1, 3);
  const int servers = pick(3, 24);
  const int64_t unit = (1ll << pick(30, 40));  // 1 GiB .. 1 TiB per capacity unit
  std::vector<double> target_fill;
  for (int s = 0; s < servers; ++s) {
    std::string cls = s < classes ? fmt::format("c{}", s) : fmt::format("c{}", pick(0, classes - 1));
    int64_t cap = unit * (1ll << pick(0, 2));
    bool draining = uni(0, 1) < 0.08;
    f.server(cls, cap, static_cast<int64_t>(cap * uni(0, 0.03)), pick(0, 9) == 0 ? 0.0 : 16.0 * static_cast<double>(cap / unit),
             draining);
    double r = uni(0, 1);
    target_fill.push_back(r < 0.15 ? uni(0, 0.1) : r < 0.3 ? uni(0.75, 0.95) : uni(0.4, 0.75));
  }
  // Users dealt until each server reaches its target fill.
  const double mean_user = static_cast<double>(unit) / 200.0;
  for (int s = 0; s < servers; ++s) {
    const auto& srv = f.snap.servers[static_cast<size_t>(s)];
    double want = target_fill[static_cast<size_t>(s)] * static_cast<double>(srv.capacity_bytes) - static_cast<double>(srv.other_used_bytes);
    double have = 0;
    while (have < want) {
      double z = std::normal_distribution<double>(0, 1)(rng);
      auto size = static_cast<int64_t>(std::min(mean_user * std::exp(1.2 * z), static_cast<double>(srv.capacity_bytes) / 20));
      if (pick(0, 20) == 0) size = 0;  // empty mailboxes exist
      double act = pick(0, 6) == 0 ? 0.0 : std::exp(0.5 * z + 0.8 * std::normal_distribution<double>(0, 1)(rng));
      // As gen_fleet.py, pins are mostly cleared on draining servers.
      bool pinned = uni(0, 1) < 0.03 && !(srv.draining && uni(0, 1) < 0.8);
      f.user(s, size, act, pinned);
      have += static_cast<double>(size) + 1;
    }
  }
  return f.snap;
}

// Every hard constraint of core/plan.h, checked independently. Returns the
// violations, one line each ("" when none).
inline std::vector<std::string> hard_violations(const Snapshot& snap, const Constraints& c, const Plan& plan) {
  std::vector<std::string> v;
  const size_t S = snap.servers.size();
  std::vector<int64_t> used(S), start(S), incoming(S, 0), ceiling(S);
  std::vector<uint8_t> draining(S, 0);
  for (size_t s = 0; s < S; ++s) {
    used[s] = snap.servers[s].other_used_bytes;
    draining[s] = snap.servers[s].draining;
    const double cap = static_cast<double>(snap.servers[s].capacity_bytes);
    ceiling[s] = std::min(static_cast<int64_t>(std::floor(c.hard_cap * cap - static_cast<double>(c.min_free_bytes))),
                          snap.servers[s].capacity_bytes - c.headroom_bytes);
  }
  for (int32_t s : c.drain) draining[static_cast<size_t>(s)] = 1;
  for (size_t u = 0; u < snap.user_count(); ++u) used[static_cast<size_t>(snap.user_server[u])] += snap.user_size[u];
  start = used;
  std::vector<int32_t> where(snap.user_server.begin(), snap.user_server.end());
  std::vector<uint8_t> moved(snap.user_count(), 0);
  int32_t night = 1;
  int64_t night_bytes = 0, night_moves = 0;
  std::vector<int64_t> night_server(S, 0);
  auto close_night = [&] {
    if (c.max_bytes > 0 && night_bytes > c.max_bytes) v.push_back(fmt::format("night {}: {} bytes over budget", night, night_bytes));
    if (c.max_moves > 0 && night_moves > c.max_moves) v.push_back(fmt::format("night {}: {} moves over budget", night, night_moves));
    for (size_t s = 0; s < S; ++s)
      if (c.max_moves_per_server > 0 && night_server[s] > c.max_moves_per_server)
        v.push_back(fmt::format("night {}: server {} has {} moves", night, s, night_server[s]));
  };
  for (size_t i = 0; i < plan.moves.size(); ++i) {
    const PlannedMove& m = plan.moves[i];
    if (m.user < 0 || static_cast<size_t>(m.user) >= snap.user_count()) {
      v.push_back(fmt::format("move {}: unknown user {}", i, m.user));
      continue;
    }
    auto u = static_cast<size_t>(m.user);
    if (m.night < night) v.push_back(fmt::format("move {}: night {} after night {}", i, m.night, night));
    if (m.night > night) {
      close_night();
      night = m.night;
      night_bytes = night_moves = 0;
      std::fill(night_server.begin(), night_server.end(), 0);
    }
    if (m.night > c.nights) v.push_back(fmt::format("move {}: night {} beyond {} nights", i, m.night, c.nights));
    if (where[u] != m.from) v.push_back(fmt::format("move {}: user {} is on {}, not {}", i, u, where[u], m.from));
    if (m.from == m.to) v.push_back(fmt::format("move {}: to itself", i));
    auto a = static_cast<size_t>(m.from), b = static_cast<size_t>(m.to);
    if (snap.servers[a].server_class != snap.servers[b].server_class) v.push_back(fmt::format("move {}: crosses classes", i));
    if (snap.user_pinned[u]) v.push_back(fmt::format("move {}: user {} is pinned", i, u));
    if (draining[b]) v.push_back(fmt::format("move {}: to draining server {}", i, b));
    // Inside a storage group a move copies nothing (bytes 0); nothing leaves or enters a group.
    const std::string& ga = snap.servers[a].storage_group;
    if (ga != snap.servers[b].storage_group) v.push_back(fmt::format("move {}: crosses storage groups", i));
    const int64_t copied = ga.empty() ? snap.user_size[u] : 0;
    if (m.bytes != copied) v.push_back(fmt::format("move {}: bytes {} != {}", i, m.bytes, copied));
    if (c.max_move_bytes > 0 && snap.user_size[u] > c.max_move_bytes)
      v.push_back(fmt::format("move {}: mailbox above max move size", i));
    if (moved[u]) v.push_back(fmt::format("move {}: user {} moved twice", i, u));
    moved[u] = 1;
    where[u] = m.to;
    used[a] -= m.bytes;
    used[b] += m.bytes;
    incoming[b] += m.bytes;
    // In plan order, and under any concurrency (the source copy lives until the
    // end). A move inside a storage group brings no byte: nothing to check.
    if (!ga.empty()) {
    } else if (used[b] > ceiling[b]) v.push_back(fmt::format("move {}: server {} over its hard cap in plan order", i, b));
    if (ga.empty() && start[b] + incoming[b] > ceiling[b])
      v.push_back(fmt::format("move {}: server {} start + incoming over its hard cap", i, b));
    night_bytes += m.bytes;
    ++night_moves;
    ++night_server[a];
    ++night_server[b];
  }
  close_night();
  if (!plan.partial && plan.partial_reasons.size()) v.push_back("reasons on a complete plan");
  if (plan.partial && plan.partial_reasons.empty()) v.push_back("partial plan without a reason");
  return v;
}

// Band check of the final state, with the judge's real-valued limits.
inline std::vector<std::string> out_of_band(const Snapshot& snap, const Constraints& c, const Plan& plan) {
  std::vector<std::string> v;
  const size_t S = snap.servers.size();
  std::vector<int64_t> used(S, 0);
  std::vector<uint8_t> draining(S, 0);
  for (size_t s = 0; s < S; ++s) {
    used[s] = snap.servers[s].other_used_bytes;
    draining[s] = snap.servers[s].draining;
  }
  for (int32_t s : c.drain) draining[static_cast<size_t>(s)] = 1;
  std::vector<int32_t> where(snap.user_server.begin(), snap.user_server.end());
  for (const auto& m : plan.moves) where[static_cast<size_t>(m.user)] = m.to;
  for (size_t u = 0; u < snap.user_count(); ++u) used[static_cast<size_t>(where[u])] += snap.user_size[u];
  std::map<std::string, std::pair<double, double>> cls;  // used, active capacity
  for (size_t s = 0; s < S; ++s) {
    auto& e = cls[snap.servers[s].server_class];
    e.first += static_cast<double>(used[s]);
    if (!draining[s]) e.second += static_cast<double>(snap.servers[s].capacity_bytes);
  }
  for (size_t s = 0; s < S; ++s) {
    const auto& e = cls[snap.servers[s].server_class];
    const double cap = static_cast<double>(snap.servers[s].capacity_bytes);
    if (draining[s]) {
      int64_t fixed = snap.servers[s].other_used_bytes;
      for (size_t u = 0; u < snap.user_count(); ++u)
        if (where[u] == static_cast<int32_t>(s) && (snap.user_pinned[u] || (c.max_move_bytes > 0 && snap.user_size[u] > c.max_move_bytes)))
          fixed += snap.user_size[u];
      if (used[s] > fixed) v.push_back(fmt::format("draining server {} keeps movable mail", s));
      continue;
    }
    double mean = e.first / e.second;
    double up = std::min(mean + c.band, c.hard_cap) * cap - static_cast<double>(c.min_free_bytes);
    double lo = std::max(0.0, mean - c.band) * cap;
    if (static_cast<double>(used[s]) > up + 0.5) v.push_back(fmt::format("server {} above band", s));
    if (static_cast<double>(used[s]) < lo - 0.5) v.push_back(fmt::format("server {} below band", s));
  }
  return v;
}

}  // namespace mailshard::testing
