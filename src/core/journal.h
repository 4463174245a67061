// Journal: the durable record of runs, snapshots, plans, moves and every step
// of every move. A move step is journaled before it runs ("begin") and after
// ("end" or "error"), so `mailshard resume` knows where a crashed move was.
//
// Contracts:
//  - Every write is durable when the call returns (SQLite WAL, synchronous=FULL).
//  - claim_move is the fleet-wide "one move per user" lock: it fails with
//    kConflict while another move of the same user is active (not terminal).
//  - lease_run is the "one rebalance at a time" lock on this journal: it
//    fails with kConflict, naming the holder, while another process holds it.
//    lease_run_shared is its shared side: any number of shared holders
//    (controllers of one shared night) at once, never together with an
//    exclusive holder.
//  - claim_move_in_slots is claim_move plus the night's slots, counted over
//    the active moves of every controller on this journal.
//  - Times are epoch ms from the injected Clock.
// Thread-safety: one Journal per thread (SQLite handles cross-process locking).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace mailshard {

// Move states, in protocol order (design.md §4). Terminal: done, purged,
// rolled_back, failed, dry_run.
enum class MoveState {
  kPlanned,
  kPrecopy,
  kFrozen,
  kFinalSync,
  kVerified,
  kFlipped,
  kThawed,
  kSwept,
  kQuotaRecalc,  // the destination's quota recalculated (or nothing to do there)
  kDone,
  kPurged,
  kRollingBack,
  kRolledBack,
  kFailed,
  kDryRun,
};
std::string_view move_state_name(MoveState s);
Result<MoveState> parse_move_state(std::string_view name);
bool is_terminal(MoveState s);

struct MoveRecord {
  int64_t id = 0;
  int64_t plan_id = 0;        // 0 = an on-demand move
  std::string user;           // user_attribute value
  std::string dn;
  std::string from_server, to_server;
  std::string from_home, to_home;  // home attribute before / after the flip
  MoveState state = MoveState::kPlanned;
  std::string step;           // the step in progress or last finished
  int64_t bytes_planned = 0;
  int64_t bytes_transferred = 0;
  int64_t lockout_ms = -1;    // freeze -> thaw; -1 while unknown
  int64_t frozen_at_ms = 0, thawed_at_ms = 0, flipped_at_ms = 0;
  int64_t freeze_expires_at_ms = 0;
  int64_t started_at_ms = 0, finished_at_ms = 0, updated_at_ms = 0;
  std::string error;          // last error message, "" if none
  std::string detail_json;    // step-specific state (pass stats, manifest summary, ...)
};

enum class StepPhase { kBegin, kEnd, kError };
std::string_view step_phase_name(StepPhase p);

struct StepRecord {
  int64_t id = 0;
  int64_t move_id = 0;
  std::string step;
  StepPhase phase = StepPhase::kBegin;
  int64_t at_ms = 0;
  std::string detail;  // JSON or free text
};

struct PlanRecord {
  int64_t id = 0;
  std::string hash;          // hex digest of plan_json; identifies the plan
  int64_t created_at_ms = 0;
  std::string strategy;
  std::string plan_json;
  std::string status;        // "planned", "executing", "done", "partial"
  // Length of plan_json's top-level "moves" array, counted by the journal when
  // the plan is stored (what the caller sets here is ignored).
  int64_t moves = 0;
  // Who approved the plan for an unattended run, and when; 0 / "" = not approved.
  int64_t approved_at_ms = 0;
  std::string approved_by;
};

struct RunRecord {
  int64_t id = 0;
  std::string kind;          // "inventory", "plan", "move", "rebalance", ...
  int64_t started_at_ms = 0, finished_at_ms = 0;
  std::string status;        // "running", "ok", "failed", "interrupted"
  std::string args_json, summary_json;
  int64_t stop_requested_at_ms = 0;  // 0 = nobody asked this run to stop
};

struct MoveFilter {
  std::optional<std::string> user;
  std::optional<int64_t> id;
  bool active_only = false;  // non-terminal states only
  int limit = 0;             // 0 = no limit; newest first
};

// Exclusive ownership of one move by one process (a mover, resume, abort or
// the freeze guard). Released when destroyed or when the process dies, even
// by kill -9, so a crashed mover never blocks its own recovery.
class MoveLease {
 public:
  virtual ~MoveLease() = default;
};

// Exclusive ownership of one kind of run (e.g. "rebalance") on this journal:
// at most one process runs it at a time. Released like MoveLease: when
// destroyed or when the process dies, kill -9 included.
class RunLease {
 public:
  virtual ~RunLease() = default;
};

// The slots a shared night claims a move within (claim_move_in_slots).
struct SlotLimits {
  int out = 0;  // active moves with the move's source as from_server, at most (this one included)
  int in = 0;   // active moves with the move's destination as to_server, at most (this one included)
};

enum class ClaimOutcome {
  kClaimed,    // the move is in the journal and the user is claimed (move_id)
  kSlotsFull,  // a server has no free slot now: nothing was written; try again later
  kUserBusy,   // the user has an active move (move_id): nothing was written
  kDoneAlready,  // a move of the same plan moved the user already (move_id): nothing was written
};
std::string_view claim_outcome_name(ClaimOutcome o);

struct SlotClaim {
  ClaimOutcome outcome = ClaimOutcome::kClaimed;
  int64_t move_id = 0;  // the new move (claimed) or the user's active move (user busy); else 0
  // Why not claimed, one line: "slots full: store1 is the source of 2 active
  // moves (out slots 2)", "user alice is already being moved (move 7, state precopy)".
  std::string message;
  // kSlotsFull: the source's out slots are full (else the destination's in slots).
  bool source_full = false;
};

// A move that ended (reached a terminal state), as a MoveEndWatcher saw it.
struct EndedMove {
  int64_t id = 0;
  std::string from_server, to_server;  // the slots it held
};

// Tells when moves of the journal end, in any process: what a shared night's
// waiting moves wait for (a slot another controller's move held, another
// controller's move of their user), rather than only a fixed interval.
// Thread-safety: wait() on one thread at a time; wake() from any thread.
class MoveEndWatcher {
 public:
  virtual ~MoveEndWatcher() = default;
  // Blocks until moves ended since the last call (returns each once), wake()
  // was called, or `timeout_ms` passed (both: none). Moves that end while
  // nobody waits are returned by the next call. kUnavailable when the journal
  // cannot be watched any more (the connection is lost); the caller goes on
  // without it.
  virtual Result<std::vector<EndedMove>> wait(int64_t timeout_ms) = 0;
  // Makes the wait in progress (or else the next one) return at once.
  virtual void wake() = 0;
};

// For the backends: a kSlotsFull claim with its message, and the checks every
// claim_move_in_slots makes before it looks at the journal.
SlotClaim slots_full(const MoveRecord& m, const SlotLimits& limits, int64_t active_out, int64_t active_in);
Status check_slot_claim(const MoveRecord& m);

class Journal {
 public:
  virtual ~Journal() = default;

  virtual Result<int64_t> begin_run(const std::string& kind, const std::string& args_json) = 0;
  virtual Status finish_run(int64_t run_id, const std::string& status, const std::string& summary_json) = 0;
  virtual Result<std::vector<RunRecord>> list_runs(int limit) = 0;
  // The runs of this kind whose status is still "running", newest first. (A
  // process that died leaves its run "running": pair this with lease_run to
  // know whether one is really alive.)
  virtual Result<std::vector<RunRecord>> running_runs(const std::string& kind) = 0;
  // Asks run `run_id` to stop; the run polls stop_requested between steps.
  // Idempotent (the first request's time is kept). kNotFound for an unknown
  // run, kConflict if it has already finished.
  virtual Status request_stop(int64_t run_id) = 0;
  // Whether a stop was requested for run `run_id`. kNotFound for an unknown run.
  virtual Result<bool> stop_requested(int64_t run_id) = 0;

  // Takes the lease of the `kind` runs without waiting and records this
  // process as the holder (pid, host, start time). kConflict while another
  // process holds it, with the holder in the message: "another rebalance is
  // running: pid 1234 on host db1 since 2026-12-05T01:00:03.000Z".
  // kInvalidInput for a kind that is not [a-z0-9_-]+.
  virtual Result<std::unique_ptr<RunLease>> lease_run(const std::string& kind) = 0;
  // The shared side of the same lease: succeeds while nobody holds it
  // exclusively, whatever the number of shared holders (the controllers of one
  // shared night). kConflict, naming a holder, while an exclusive holder has
  // it; lease_run fails while any shared holder has it.
  virtual Result<std::unique_ptr<RunLease>> lease_run_shared(const std::string& kind) = 0;

  // Records a snapshot summary (not the CSVs): where it was saved and counts.
  virtual Result<int64_t> record_snapshot(int64_t run_id, int64_t taken_at_ms, const std::string& path,
                                          const std::string& summary_json) = 0;

  // Stores a plan under its hash; storing the same hash again returns the
  // existing id (idempotent).
  virtual Result<int64_t> store_plan(const PlanRecord& plan) = 0;
  // kNotFound if no plan has this hash (a unique hex prefix of >= 8 digits also matches).
  virtual Result<PlanRecord> find_plan(const std::string& hash) = 0;
  virtual Status set_plan_status(int64_t plan_id, const std::string& status) = 0;
  // Records that `by` (a person's name, not empty) approved the plan for an
  // unattended run. Idempotent: approving again keeps the first approval.
  // kNotFound for an unknown id, kInvalidInput for an empty `by`.
  virtual Status approve_plan(int64_t plan_id, const std::string& by) = 0;
  // At most `limit` plans (0 = all), newest first (created_at, then id); the
  // records leave plan_json empty to keep the listing small.
  virtual Result<std::vector<PlanRecord>> list_plans(int limit) = 0;
  // The newest plan (created_at, then id), or with approved_only the newest
  // approved one; the full record. nullopt when there is none.
  virtual Result<std::optional<PlanRecord>> latest_plan(bool approved_only) = 0;

  // Inserts a move and claims the user. kConflict ("user X is already being
  // moved by move N") if the user has a non-terminal move. Returns the id.
  virtual Result<int64_t> claim_move(const MoveRecord& move) = 0;
  // claim_move within a shared night's slots, atomically across every
  // controller on this journal: inserts the move (state from `move`, which
  // must not be terminal) only if the user has no active move, fewer than
  // limits.out active moves have move.from_server as their source and fewer
  // than limits.in have move.to_server as their destination (active moves of
  // any controller, on-demand moves included). A refused claim is not an
  // error: kSlotsFull (retry later), kUserBusy (with that move's id), or for
  // a move of a plan (plan_id > 0) kDoneAlready when a move of that plan
  // ended done (or purged) for the user: a plan's move of a user is done once,
  // whichever controller gets to it.
  // Errors: the journal's own (kUnavailable when its server is down), and
  // kInvalidInput for a terminal state or an empty server name.
  virtual Result<SlotClaim> claim_move_in_slots(const MoveRecord& move, const SlotLimits& limits) = 0;
  // Overwrites the mutable fields of move `move.id` (state, step, times, bytes,
  // error, detail). kNotFound if it does not exist.
  virtual Status update_move(const MoveRecord& move) = 0;
  virtual Result<MoveRecord> get_move(int64_t id) = 0;
  virtual Result<std::vector<MoveRecord>> list_moves(const MoveFilter& filter) = 0;

  // Takes the move's lease without waiting. kConflict ("move N is being run
  // by another process") while another process holds it.
  virtual Result<std::unique_ptr<MoveLease>> lease_move(int64_t move_id) = 0;

  virtual Status log_step(int64_t move_id, const std::string& step, StepPhase phase, const std::string& detail) = 0;
  virtual Result<std::vector<StepRecord>> list_steps(int64_t move_id) = 0;

  // Small key/value blobs per move (e.g. the last pass's listing, the
  // verification manifest). put overwrites.
  virtual Status put_blob(int64_t move_id, const std::string& key, const std::string& value) = 0;
  virtual Result<std::optional<std::string>> get_blob(int64_t move_id, const std::string& key) = 0;

  // A watcher of the moves that end on this journal, from now on, usable on
  // any one thread (it has a connection of its own). kUnsupported where the
  // backend cannot tell other processes' moves ending (SQLite).
  virtual Result<std::unique_ptr<MoveEndWatcher>> watch_move_ends() {
    return Error::unsupported("this journal cannot report moves ending in other processes");
  }
};

}  // namespace mailshard
