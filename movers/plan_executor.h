// PlanExecutor: runs the moves of a Plan (one night of it) with the move
// lifecycle, keeping every server busy without overloading it: a move starts
// when both its servers have a free slot, taking moves in plan order (the
// planner already ordered them round-robin across servers), and no move starts
// after the deadline or after Ctrl-C. Running moves always finish their
// protocol (a move interrupted before its flip rolls back).
//
// Each worker thread gets its own MoveFn (its own journal and LDAP handles),
// made by the factory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/journal.h"
#include "core/plan.h"
#include "movers/move_runner.h"

namespace mailshard {

using MoveFn = std::function<Result<MoveRecord>(const std::string& user, const std::string& to, const MoveOptions&)>;
using MoveFnFactory = std::function<Result<MoveFn>()>;

struct ExecutionOptions {
  int night = 1;               // the plan's night to run; 0 = every move of the plan
  int64_t deadline_ms = 0;     // epoch ms after which no move starts; 0 = none
  int max_parallel = 4;        // moves at once, fleet-wide (worker threads)
  std::map<std::string, int> slots;  // moves at once per server name (default 4)
  int64_t plan_id = 0;
};

struct MoveOutcome {
  std::string user, from, to;
  int64_t bytes_planned = 0;
  enum class Result { kDone, kFailed, kSkipped } result = Result::kSkipped;
  int64_t move_id = 0;
  int64_t bytes_transferred = 0;
  int64_t lockout_ms = -1;
  std::string state;   // final move state, "" when it never started
  std::string error;   // why it failed or was skipped
};

struct ExecutionReport {
  int night = 1;
  int64_t started_at_ms = 0, finished_at_ms = 0;
  std::vector<MoveOutcome> moves;  // plan order
  int64_t done = 0, failed = 0, skipped = 0;
  int64_t bytes_transferred = 0;
  int64_t lockout_median_ms = -1, lockout_p95_ms = -1, lockout_max_ms = -1;
  bool interrupted = false, deadline_reached = false;
};

// Runs the moves of `options.night`. kInvalidInput when the plan cannot be
// executed at all (no user names: a plan from a generated fleet; a server
// the config does not know). Individual move failures are in the report.
Result<ExecutionReport> execute_plan(const Plan& plan, const ExecutionOptions& options, const MoveFnFactory& factory,
                                     Clock& clock);

}  // namespace mailshard
