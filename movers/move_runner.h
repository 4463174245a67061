// MoveRunner: moves one user's mailbox from the server LDAP names to another,
// following the protocol of design.md §4 (docs/ARCHITECTURE.md, "the life of
// a move"): preflight, precopy, freeze, kick, final_sync, convert, verify, flip, thaw,
// sweep, quota_recalc, done. It also recovers interrupted moves (resume), rolls back on
// request (abort) and deletes old source copies (purge).
//
// Every step is journaled before it runs and after it ends, and every step is
// idempotent, so a move killed at any point is finished (after the flip) or
// rolled back (before it) by resume(), which reads LDAP to learn which side of
// the commit point the crash fell on.
//
// Everything outside this process goes through core interfaces: Directory,
// FreezeBackend, SessionKicker, MailboxStatusSource, Journal, Transport (via
// MoveEnvironment) and Clock, so each step is tested with fakes and with
// injected faults.
//
// Thread-safety: one runner per thread; a move is owned by the process that
// holds its journal lease.
#pragma once

#include "movers/move_protocol.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/config.h"
#include "core/directory.h"
#include "core/freeze_backend.h"
#include "core/journal.h"
#include "core/mailbox_status.h"
#include "core/quota_service.h"
#include "core/transport.h"
#include "movers/courier_to_dovecot.h"
#include "movers/sync_engine.h"

namespace mailshard {

// What the runner needs from the process around it.
class MoveEnvironment {
 public:
  virtual ~MoveEnvironment() = default;
  // The transport of a configured server (opened once, owned by the environment).
  virtual Result<Transport*> transport(const std::string& server) = 0;
  // Called right after a freeze: arranges for the freeze to be lifted at
  // until_ms even if this process dies (the CLI starts a guard process).
  virtual void arm_freeze_guard(int64_t move_id, int64_t until_ms) {}
  // One line of progress ("precopy pass 2: 1,204 files, 35.2 MiB").
  virtual void progress(const std::string& user, const std::string& line) {}
  // Test hook: called after each journaled step boundary ("flip.begin",
  // "flip.end"); the CLI uses it for MAILSHARD_TEST_CRASH_AT.
  virtual void step_boundary(const std::string& step, StepPhase phase) {}
};

struct MoveDeps {
  const Config& config;
  Directory& directory;
  FreezeBackend& freeze;
  SessionKicker& kicker;
  MailboxStatusSource* mailbox_status = nullptr;  // optional doveadm cross-check
  Journal& journal;
  Clock& clock;
  MoveEnvironment& env;
  SyncOptions sync_options;
  // Optional: the servers' quota (doveadm). Preflight refuses a mailbox over
  // the destination's limits; quota_recalc recounts it there after the sweep.
  QuotaService* quota = nullptr;
};

struct MoveOptions {
  bool dry_run = false;
  bool no_freeze = false;  // the operator accepts moving without a freeze backend
  int64_t plan_id = 0;
  int64_t bytes_planned = 0;
  // A planned move expects the user on this server; if LDAP says otherwise
  // (the user moved since the plan) the move does not start (kConflict).
  std::string expected_from;
  // Re-checks of a planned move against the fleet as it is now (the nightly
  // run; each failing check is kConflict: the move is skipped, not failed):
  //  - the user is not frozen (the freeze attribute holds the frozen value);
  bool refuse_frozen = false;
  //  - the mailbox is within this fraction of bytes_planned (< 0: unchecked);
  double max_size_drift = -1;
  //  - the destination's filesystem stays at or under this used fraction
  //    with the mailbox on it (0: unchecked; never for a server whose
  //    capacity_bytes overrides the filesystem's size).
  double max_dest_util = 0;
  // How the move claims its user in the journal; empty = Journal::claim_move.
  // A shared night (movers/plan_executor.h) claims within the night's slots
  // counted in the journal. The hook returns the new move's id, or an error
  // that ends the move before anything was written (the hook keeps its own
  // record of why, e.g. "slots full", for its caller).
  std::function<Result<int64_t>(Journal&, const MoveRecord&)> claim;
};

// A move run a stretch at a time, so that one thread can carry many moves
// (movers/plan_executor.h). advance() runs the next stretch and returns true
// once the move has ended; result() is then what MoveRunner::move returns.
// A stretch is one step of the protocol (preflight and the claim are the
// first), except that a frozen move keeps its thread from the freeze to the
// thaw: its lockout never waits for another move. Between two stretches the
// move holds its claim, its lease and its staging copy, and no thread.
class MoveTask {
 public:
  virtual ~MoveTask() = default;
  virtual bool advance() = 0;
  virtual Result<MoveRecord> result() = 0;
  // The next stretch has nothing to do before this time (the clock's epoch
  // ms; the sweep's settle pause). 0: now.
  virtual int64_t not_before_ms() const { return 0; }
};

class MoveRunner {
 public:
  explicit MoveRunner(MoveDeps deps) : d_(deps) {}

  // Moves `user` to server `to`. Returns the final record: state done,
  // rolled_back (the error says why), failed (needs an operator), dry_run, or
  // thawed/flipped when interrupted after the commit point (resume finishes it).
  // An Error means the move never started: kInvalidInput (unknown user or
  // server, same server, draining destination, --no-freeze missing),
  // kConflict (the user is already moving), kNoSpace (the destination's free
  // space, or the user's quota limit there), or the directory's error.
  Result<MoveRecord> move(const std::string& user, const std::string& to, const MoveOptions& options);
  // The same move a stretch at a time (MoveTask). Nothing runs before the
  // first advance(); the runner must outlive the task.
  std::unique_ptr<MoveTask> start(const std::string& user, const std::string& to, const MoveOptions& options);

  // Finishes (after the flip) or rolls back (before it) an interrupted move.
  // kConflict if another process holds the move. A terminal move is returned as is.
  Result<MoveRecord> resume(int64_t move_id);

  // Rolls back a move that has not flipped. kConflict if it flipped already
  // (it can only roll forward) or another process holds it.
  Result<MoveRecord> abort(int64_t move_id);

  // Last sweep, then deletes the source copy of a done move whose grace
  // period (`older_than_ms` since it finished) has passed. Returns the record
  // (state purged). kConflict when the source copy is the user's live mailbox
  // again; kInvalidInput when the move is not done or still in its grace period.
  Result<MoveRecord> purge(int64_t move_id, int64_t older_than_ms);

  // Checks the user's current copy against the manifest of their last done
  // move: every message copied is still there (by base name) with the same
  // content hash. Returns a one-line summary; kVerifyFailed names what is
  // missing or different.
  Result<std::string> verify_user(const std::string& user);

 private:
  struct Ctx;
  Status preflight(Ctx& c, const MoveOptions& options);
  Status precopy(Ctx& c);
  Status freeze(Ctx& c);
  Status kick(Ctx& c);
  Status final_sync(Ctx& c);
  Status convert(Ctx& c);  // movers/move_convert.cc
  Status verify_converted(Ctx& c);
  Status plan_conversion(Ctx& c);
  // Courier's files on the source, converted in memory; `home_now` is the
  // home's listing when the caller took one under the freeze.
  Result<DovecotConversion> convert_source(Ctx& c, std::optional<TreeListing> home_now = std::nullopt);
  Status verify(Ctx& c);
  Status flip(Ctx& c);
  Status thaw(Ctx& c);
  Status sweep(Ctx& c);
  Status sweep_into(Ctx& c, Transport& dst, const std::string& dst_home, int64_t& swept);
  // After a sweep: whether to sweep again after [move] sweep_settle (the
  // stragglers' settle rounds), counting the round.
  bool settle_again(Ctx& c);
  // When that round's sweep may run: [move] sweep_settle after the flip for
  // the first round, after the sweep before it for a later one.
  int64_t settle_wake_ms(const Ctx& c) const;
  // Entering the pause before a settle round (both drivers: run_stretch
  // yields until then, resume sleeps): recounts the quota in it when stale;
  // returns settle_wake_ms.
  Result<int64_t> begin_settle_pause(Ctx& c);
  // The quota recount, in the settle pause and in the quota_recalc step,
  // each only when mail was written behind the destination Dovecot's back
  // since the last recount.
  void recount_quota(Ctx& c);
  Status quota_recalc(Ctx& c);
  // Preflight: the mailbox against the user's quota limits on the destination.
  Status check_destination_quota(Ctx& c, int64_t message_bytes, int64_t messages);
  Status finish(Ctx& c);
  Status roll_back(Ctx& c, const Error& why);
  // Runs the protocol's steps from kMoveProtocol[next] (advancing next) to
  // the end of the next stretch (MoveTask). Returns the move's end (after a
  // rollback when a step before the flip failed), or nothing when it paused.
  std::optional<Result<MoveRecord>> run_stretch(Ctx& c, size_t& next);
  Result<MoveRecord> end_before_flip(Ctx& c, const Error& why);
  class Task;
  // Runs one step of kMoveProtocol (movers/move_protocol.h), journaled.
  Status run_step(Ctx& c, const ProtocolStep& s);

  // Journaled step: log begin, run fn, log end or error.
  template <typename F>
  Status step(Ctx& c, const std::string& name, F&& fn);
  Status save(Ctx& c);
  Status open_sides(Ctx& c);
  // open_sides for recovery: when it fails, the user is thawed anyway (if the
  // move may have frozen it) and the error returned.
  Status open_sides_or_thaw(Ctx& c, const std::string& what);
  // The freeze step may have run (its journal marks, progress or record).
  static bool may_be_frozen(const Ctx& c);
  Status load_state(Ctx& c);
  Status save_state(Ctx& c);
  // The trees outside the home (mail_location INDEX=, CONTROL=): decided in
  // preflight from both servers' locations, then copied like the home.
  Status plan_trees(Ctx& c);
  void set_tree_staging(Ctx& c);
  Status load_tree_state(Ctx& c, size_t i);
  Status save_tree_state(Ctx& c, size_t i);
  Status precopy_tree(Ctx& c, size_t i);
  Result<MoveRecord> purge_stale_copy(Ctx& c);
  Status compare_mailbox_status(Ctx& c);
  // sdbox/mdbox, in the flip with the copy in place: the destination's
  // doveadm view against the source's (c.src_contents). kVerifyFailed.
  Status check_destination_contents(Ctx& c);
  Status retarget_alt_root(Ctx& c);
  // sdbox, mdbox or mbox (moved_through_doveadm): checked and swept through doveadm.
  bool via_doveadm(const Ctx& c) const;
  // movers/dbox_sweep.cc: the source's UIDNEXTs under the freeze, journaled
  // by the flip before the LDAP modify; and the sweep of late mail into
  // `into` (the user's home there: dst_home) by doveadm import.
  Status save_dbox_frozen(Ctx& c);
  Status sweep_dbox(Ctx& c, const ServerConfig& into, Transport& dst, const std::string& dst_home, int64_t& swept);
  Result<int> files_in_tmp(Ctx& c);

  MoveDeps d_;
};

// Right after a move's claim, under its lease: the move is still active.
// Between the claim and the lease another process may have recovered it (a
// shared night takes over a move whose lease nobody holds), and then it is
// not this process's to run: kConflict "move N was ended by another process
// before it started (rolled_back)".
Status check_claim_still_ours(Journal& journal, int64_t move_id);

// How far the server behind `t` is ahead of `clock` (ms, negative = behind),
// from the mtime of a directory created and removed in its root.
Result<int64_t> clock_offset(Transport& t, Clock& clock);

// The staging directory a move copies into before the flip:
// "<home>.mailshard-incoming-<move id>" next to the home on the destination.
std::string staging_home(const std::string& home_rel, int64_t move_id);

}  // namespace mailshard
