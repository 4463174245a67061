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

}  // namespace mailshard::cli
