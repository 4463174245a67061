// Planners: pure functions from (Snapshot, Constraints) to a Plan.
//
// No I/O, no clock, no randomness, no threads: the same input gives a
// byte-identical plan (plan_to_json). Strategies are chosen by name from ONE
// explicit table (strategies()); each lives in its own strategy_<name>.cc and
// runs the shared engine (engine.h) with its own policy.
//
// Thread-safety: every function is pure; concurrent calls are safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/plan.h"
#include "core/snapshot.h"
#include "util/result.h"

namespace mailshard::planner {

using StrategyFn = Plan (*)(const Snapshot&, const Constraints&);

struct Strategy {
  std::string_view name;
  std::string_view summary;  // one line for --help and the report
  StrategyFn run;
};

// The name -> implementation table, in the order --help lists them.
const std::vector<Strategy>& strategies();

// Checks the constraints against the snapshot and runs constraints.strategy.
// kInvalidInput when a constraint is out of range or names an unknown
// strategy or server ("--drain 17: no such server (the snapshot has 0..9)").
// A plan that cannot reach every goal is still returned, with partial = true
// and the reasons; it never breaks a hard constraint.
Result<Plan> plan(const Snapshot& snapshot, const Constraints& constraints);

// The fleet after every move of `plan` (all nights): re-planning it is the
// stability check (hysteresis: a complete plan leaves nothing to do).
Snapshot apply_plan(const Snapshot& snapshot, const Plan& plan);

// Storage groups (director backends over one mail root) must each be a class
// of their own: kInvalidInput naming the class and two servers that differ.
Status check_storage_groups(const Snapshot& snapshot);

// Resolves a server given by name or id ("store3", "17") to its id.
Result<int32_t> find_server(const Snapshot& snapshot, std::string_view name_or_id);

// The strategy functions (strategy_<name>.cc).
Plan plan_balance(const Snapshot& snapshot, const Constraints& constraints);
Plan plan_drain(const Snapshot& snapshot, const Constraints& constraints);
Plan plan_fill(const Snapshot& snapshot, const Constraints& constraints);

}  // namespace mailshard::planner
