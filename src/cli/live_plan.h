// Planning the live fleet: the inventory's snapshot, the [plan] settings, the
// journal copy. Shared by `plan` (without --snapshot) and `rebalance`, so the
// nightly run computes its plan exactly as the dry-run report does.
#pragma once

#include <string>

#include "cli/cli.h"
#include "core/plan.h"
#include "core/snapshot.h"

namespace mailshard::cli {

// The fleet now (mailshard inventory without output). Servers that failed are
// left out, with a warning each.
Result<Snapshot> live_snapshot(Context& ctx);

// Constraints from the config's [plan] and [move] sections.
Constraints constraints_from_config(const Config& config);

// Stores `plan` in the journal under its hash (idempotent); returns its id.
Result<int64_t> journal_plan(Journal& journal, const Plan& plan, const std::string& hash);

struct LivePlan {
  Plan plan;
  std::string hash;
  int64_t plan_id = 0;
};
// Inventory, plan with `strategy` and the configured constraints, store it in
// the journal.
Result<LivePlan> plan_live_fleet(Context& ctx, const std::string& strategy);

}  // namespace mailshard::cli
