// Shared by the executor's tests (one controller and shared nights): a plan
// written as "user:from>to" strings, and a move's outcome by user.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/plan.h"
#include "movers/plan_executor.h"

namespace mailshard::testing {

// A plan over servers named in `servers`; each move is "user:from>to".
inline Plan make_plan(const std::vector<std::string>& servers, const std::vector<std::string>& moves) {
  Plan p;
  for (size_t i = 0; i < servers.size(); ++i) {
    ServerOutcome s;
    s.id = static_cast<int32_t>(i);
    s.name = servers[i];
    p.servers.push_back(s);
  }
  auto id = [&](const std::string& name) {
    for (size_t i = 0; i < servers.size(); ++i)
      if (servers[i] == name) return static_cast<int32_t>(i);
    ADD_FAILURE() << "no server " << name;
    return int32_t{0};
  };
  for (const auto& m : moves) {
    auto colon = m.find(':'), gt = m.find('>');
    PlannedMove pm;
    pm.user_name = m.substr(0, colon);
    pm.user = static_cast<int64_t>(p.moves.size());
    pm.from = id(m.substr(colon + 1, gt - colon - 1));
    pm.to = id(m.substr(gt + 1));
    pm.bytes = 1000;
    p.moves.push_back(pm);
  }
  return p;
}

inline const MoveOutcome& outcome_of(const ExecutionReport& r, const std::string& user) {
  for (const auto& m : r.moves)
    if (m.user == user) return m;
  static MoveOutcome none;
  ADD_FAILURE() << "no move of " << user;
  return none;
}

}  // namespace mailshard::testing
