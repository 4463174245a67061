// PlanExecutor: runs the moves of a Plan (one night of it) with the move
// lifecycle, keeping every server busy without overloading it.
//
//  - Slots: each server has out slots (moves it is the source of) and in
//    slots (moves it receives). A move starts as soon as its source has a
//    free out slot and its destination a free in slot, taking moves in plan
//    order, but a move whose servers are busy never holds back the moves
//    behind it.
//  - Back-off (AIMD): every sample_interval the executor reads each involved
//    server's load. Above a limit, that server's slots halve (down to 0: it
//    pauses); below, one comes back per interval, up to its maximum.
//  - Failures: a server whose moves fail max_server_failures times is skipped
//    for the rest of the run. A move failure never stops the run.
//  - Shared nights (options.shared): several controllers run the same plan's
//    night on one journal. A move is claimed in the journal within its
//    servers' slots counted over every controller's active moves
//    (Journal::claim_move_in_slots, this run's slots as the limits). Slots
//    full: the move waits and is tried again when a move through that server
//    ends (in this process, or in any with options.move_ends), at the latest
//    after shared_retry_ms. Its user moved by another process's move N: the
//    move watches N (tried again when N ends, seen through move_ends, at the
//    latest every shared_retry_ms) through MoveWorker::resume, which fails with kConflict
//    while a live process holds N, and finishes or rolls back N once nobody
//    does (its controller died). N done by another controller: reported as
//    run elsewhere; N rolled back by this run (or N not of this plan): the
//    move is claimed again and run here. A move refused before its claim
//    (the user is on the destination already) whose user has a done move of
//    this plan in the journal is reported as run elsewhere too.
//  - Stops: after the deadline (or a soft stop: the first SIGTERM, --stop) no
//    move starts; running moves finish. After the hard deadline (or a hard
//    stop) the executor calls on_hard_stop once, which makes running moves
//    that have not flipped roll back; moves past their flip finish.
//
// Threads: the caller's thread samples load, watches the clock and the stop
// probe, and reports progress; worker threads run the moves. Each worker gets
// its own MoveWorker (its own journal and LDAP handles), made by the factory.
// By default there is one worker per move that may run at once; with
// ExecutionOptions::threads, a few workers each carry many moves, running
// each a stretch at a time (MoveTask: one protocol step, or the whole frozen
// stretch from freeze to thaw) in turn. A move between two stretches holds
// its claim, lease and staging copy but no thread, so a thousand moves in
// flight need neither a thousand threads nor a thousand move setups. A long
// stretch (a big mailbox's precopy) keeps its worker's other moves waiting.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/journal.h"
#include "core/plan.h"
#include "movers/move_runner.h"

namespace mailshard {

using MoveFn = std::function<Result<MoveRecord>(const std::string& user, const std::string& to, const MoveOptions&)>;
using MoveFnFactory = std::function<Result<MoveFn>()>;

// What a shared night's worker learns from MoveWorker::resume.
struct TakeOver {
  MoveRecord move;       // the move as it ended (or as it was found, when terminal already)
  bool resumed = false;  // this process ran its recovery (its controller had died)
};

// One worker's handles: the move, and for shared nights the recovery of
// another controller's move.
struct MoveWorker {
  MoveFn move;
  // The same move a stretch at a time (MoveRunner::start), so that one
  // thread carries several moves (ExecutionOptions::threads). Empty: `move`,
  // run as one stretch.
  std::function<std::unique_ptr<MoveTask>(const std::string& user, const std::string& to, const MoveOptions&)> start;
  // Finishes (after the flip) or rolls back (before it) move `move_id`, as
  // `mailshard resume` does, if no live process holds it: kConflict while one
  // does. A terminal move is returned as is (resumed = false).
  std::function<Result<TakeOver>(int64_t move_id)> resume;
  // Shared nights: the journal's moves (Journal::list_moves), to tell a move
  // another controller did from one refused for another reason.
  std::function<Result<std::vector<MoveRecord>>(const MoveFilter&)> list_moves;
};
using MoveWorkerFactory = std::function<Result<MoveWorker>()>;

struct ServerSlots {
  int out = 2;  // moves with this server as the source, at once
  int in = 2;   // moves with this server as the destination, at once
};

// One server's measured load. A negative figure is unknown (not checked).
struct LoadSample {
  double load_per_cpu = -1;  // node_load1 / CPUs
  double disk_busy = -1;     // fraction of time the mail root's disk was busy since the last sample
};
// Reads a server's load now. An error (unreachable, garbage) leaves the
// server's slots as they are; it is logged and counted.
using LoadSampler = std::function<Result<LoadSample>(const std::string& server)>;

enum class StopLevel { kNone, kSoft, kHard };
struct StopRequest {
  StopLevel level = StopLevel::kNone;
  std::string why;  // for the report: "SIGTERM", "'rebalance --stop'"; "" = "a stop was requested"
};

struct ExecutionOptions {
  int night = 1;                  // the plan's night to run; 0 = every move of the plan
  int64_t deadline_ms = 0;        // epoch ms after which no move starts; 0 = none
  int64_t hard_deadline_ms = 0;   // epoch ms after which running moves roll back if they can; 0 = none
  int max_parallel = 0;           // fleet-wide cap on moves at once; 0 = what the slots allow
  // Worker threads. 0: one per move that may run at once, each carrying one
  // move. N: at most N threads (each with its own MoveWorker), each carrying
  // its share of the moves that may run at once and running them a stretch
  // at a time, in turn (MoveWorker::start; a worker without it runs its
  // moves one after another).
  int threads = 0;
  std::map<std::string, ServerSlots> slots;  // per server name; a server not listed gets the defaults
  int64_t plan_id = 0;
  MoveOptions move;               // passed to every move (plan_id, bytes_planned and expected_from are set per move)

  LoadSampler sampler;            // empty: no back-off
  int64_t sample_interval_ms = 30'000;
  double max_load_per_cpu = 1.5;
  double max_disk_busy = 0.8;
  int max_server_failures = 3;    // 0 = never skip a server

  // Called (on a worker thread) after a move failed: is what every move
  // needs (the directory) still there? An error stops the run from starting
  // moves, with that reason, and the failure is not held against the servers.
  std::function<Status()> health;
  std::function<StopRequest()> stop;      // polled; empty = never
  std::function<void()> on_hard_stop;     // called once at the hard deadline or a hard stop
  std::function<void(const struct ExecutionReport&)> on_progress;  // from the caller's thread
  int64_t progress_interval_ms = 1000;    // on_progress at most this often (and at the end)
  int64_t poll_interval_ms = 200;         // the stop probe and the clock are looked at this often (real ms)

  // A shared night (see the top of this file): claims counted in the journal.
  bool shared = false;
  // A move whose slots were full, or a watched move, is tried again at the
  // latest after this long (sooner when a move it waits for is seen ending).
  int64_t shared_retry_ms = 1000;
  // Shared nights: the journal's watcher of moves ending in any process
  // (Journal::watch_move_ends), waited on by a thread of the executor; null:
  // only this process's own moves ending, and the interval.
  std::shared_ptr<MoveEndWatcher> move_ends;
};

enum class MoveResult { kDone, kFailed, kSkipped, kNotStarted };
std::string_view move_result_name(MoveResult r);

struct MoveOutcome {
  std::string user, from, to;
  int64_t bytes_planned = 0;
  MoveResult result = MoveResult::kNotStarted;
  std::string reason;    // why it failed, was skipped or did not start; "" when done
  int64_t move_id = 0;   // the journal's move, 0 when none was claimed
  std::string state;     // final move state, "" when it never started
  int64_t bytes_transferred = 0;
  int64_t lockout_ms = -1;
  int64_t started_at_ms = 0, finished_at_ms = 0;  // 0 when it never started
  // Shared nights: another controller ran this move (result kSkipped; the
  // reason names its move and how it ended); move_id and state are its.
  bool elsewhere = false;
  int slot_waits = 0;  // claims refused because the slots were full (shared nights)
  int lost_claims = 0;  // claims another controller recovered before this run leased them (shared nights)
};

struct ServerRun {
  std::string name;
  ServerSlots max;              // configured slots
  ServerSlots slots;            // slots now (after back-off)
  int busy_out = 0, busy_in = 0;
  int failures = 0;
  int done = 0;                 // moves done with it as either end
  bool skipped = false;         // failed too often: no more moves this run
  int backoff_events = 0;       // halvings
  int samples = 0, sample_errors = 0;
  LoadSample last;              // last good sample
  int64_t bytes_in = 0, bytes_out = 0;  // of done moves
  int64_t out_ms = 0, in_ms = 0;  // sum of its moves' durations as source / as destination
};

struct ExecutionReport {
  int night = 1;
  int64_t started_at_ms = 0, finished_at_ms = 0;
  std::vector<MoveOutcome> moves;      // plan order
  std::map<std::string, ServerRun> servers;
  int64_t done = 0, failed = 0, skipped = 0, not_started = 0, running = 0;
  int64_t elsewhere = 0, elsewhere_done = 0;  // of skipped: run by another controller (shared nights), done there
  int64_t taken_over = 0;                     // moves of a dead controller this run finished or rolled back
  int64_t peak_running = 0;                   // most moves in flight at once
  int64_t bytes_transferred = 0;
  int64_t lockout_p50_ms = -1, lockout_p95_ms = -1, lockout_max_ms = -1;
  int64_t backoff_events = 0;
  bool deadline_reached = false;       // the deadline or a soft stop ended it early
  bool hard_stopped = false;           // the hard deadline or a hard stop
  std::string stop_reason;             // "the deadline ... passed", "SIGTERM or SIGINT", ...; "" = none
  bool finished = false;               // false in progress reports
};

// Runs the moves of `options.night`. kInvalidInput when the plan cannot be
// executed at all (no user names: a plan from a generated fleet). Individual
// move failures are in the report.
Result<ExecutionReport> execute_plan(const Plan& plan, const ExecutionOptions& options, const MoveWorkerFactory& factory,
                                     Clock& clock);
// The same with workers that only move (no shared night: nothing to resume).
Result<ExecutionReport> execute_plan(const Plan& plan, const ExecutionOptions& options, const MoveFnFactory& factory,
                                     Clock& clock);

// The schedule bound of a finished run: no schedule with these slots could
// have been shorter. The largest of: each server's sum of move durations as
// a source divided by its out slots, the same as a destination with its in
// slots, and the longest single move.
double schedule_bound_ms(const ExecutionReport& report);

}  // namespace mailshard
