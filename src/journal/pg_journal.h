// PgJournal: the Journal on a PostgreSQL database (libpq), for several
// controllers on several hosts sharing one journal.
//
// The tables and their meaning are SQLite's (docs/journal.md); what differs:
//  - The schema version is the one row of table schema_version; migrations
//    run forward only, one transaction per version, under an advisory lock so
//    two controllers starting at once do not both migrate.
//  - Ids are BIGSERIAL, unique across hosts (staging names built from them
//    never collide).
//  - claim_move: the partial unique index on moves("user") WHERE active = 1
//    is checked by the server, so two hosts claiming one user at once get one
//    move and one kConflict.
//  - claim_move_in_slots: one transaction under a transaction advisory lock
//    ("claims"), so the user check, the slot counts and the insert of every
//    controller's slot claims happen one at a time.
//  - Leases are session advisory locks. All move leases of one journal are
//    held by one session, the journal's lease session: one connection of
//    its own (opened at the first lease_move) and one heartbeat thread,
//    however many moves are leased at once; releasing a move lease unlocks
//    just its key. Each run lease has a session of its own (a process holds
//    one or two). The server drops a session's locks when its connection
//    ends: at once when the holder exits or is killed (the kernel closes the
//    socket), and within kDeadHostReleaseS when its host dies (TCP
//    keepalives, set on both ends). Every lease_heartbeat_ms the session's
//    thread renews the rows of all its leases in table `leases` (pid, host,
//    since, heartbeat_at), in one statement; a refused process quotes them.
//  - A lease session whose connection is lost loses every lease it held
//    (the server released their locks): this is logged as one error naming
//    them, and from then on writes of those moves are refused (kConflict,
//    below) without asking the server. The session is never reconnected
//    under its leases; the next lease_move opens a new one, and a lost
//    lease stays lost until its move is leased again.
//  - Fencing: while this journal's process holds a move's lease, its writes
//    of that move (update_move, log_step, put_blob) carry a check that the
//    lease's session still holds the lock and the holder's row is still this
//    process; once the server has dropped that session (and another host may
//    have taken the move over) they fail with kConflict and write nothing.
//  - A move that ends (update_move to a terminal state) is announced with
//    NOTIFY on channel mailshard_moves (payload: {"id","from","to"});
//    watch_move_ends() LISTENs on a connection of its own.
//  - At open, this host's clock is compared with the server's: beyond
//    max_clock_skew_ms mailshard refuses to start (kInvalidInput).
//
// Errors name the server as postgresql://host:port/db (never the user or the
// password) and what failed, in one line: a server that is down gives
// kUnavailable, a refused login kPermission, a newer schema kUnsupported.
// A call after the connection broke reconnects once first.
//
// Thread-safety: one instance per thread, like SqliteJournal. A lease may be
// destroyed on any thread, and may outlive its journal (it keeps its session).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/journal.h"

namespace mailshard {

struct PgJournalOptions {
  std::string url;       // postgresql://user@host:port/db (libpq syntax)
  std::string password;  // "" = libpq's own (PGPASSWORD, PGPASSFILE, ~/.pgpass)
  // Refuse to start when |this host's clock - the server's| exceeds this; 0 = no check.
  int64_t max_clock_skew_ms = 5'000;
  // How often a lease session's thread renews its leases' rows (and notices a
  // lost connection).
  int64_t lease_heartbeat_ms = 5'000;
};

namespace pg_detail {
class Connection;
struct LeaseFence;
class LeaseSession;
class Params;
}

class PgJournal final : public Journal {
 public:
  static constexpr int kSchemaVersion = 2;
  // TCP keepalives on every connection, on both ends: idle 10 s, then a probe
  // every 5 s, 3 lost probes = dead; unacknowledged data for 30 s = dead.
  // So a dead host's leases are released by the server within ~25-30 s.
  static constexpr int kKeepaliveIdleS = 10;
  static constexpr int kKeepaliveIntervalS = 5;
  static constexpr int kKeepaliveCount = 3;
  static constexpr int kTcpUserTimeoutMs = 30'000;
  static constexpr int kDeadHostReleaseS = kKeepaliveIdleS + kKeepaliveIntervalS * kKeepaliveCount;
  static constexpr int kConnectTimeoutS = 10;

  // Connects, checks the clocks and migrates. Errors: kUnavailable (server
  // down or unreachable), kPermission (login refused), kInvalidInput (a bad
  // URL, clocks apart), kUnsupported (a newer schema).
  static Result<std::unique_ptr<PgJournal>> open(const PgJournalOptions& options, Clock& clock);
  // What open() checks, changing nothing (no migration): connects, compares
  // the clocks, reads the schema version. For `config check --connect`.
  // Returns e.g. "postgresql://db1:5432/mailshard: schema 2 (this build: 2)";
  // a database mailshard never opened reads "schema 0".
  static Result<std::string> check(const PgJournalOptions& options, Clock& clock);
  ~PgJournal() override;

  int schema_version() const { return version_; }
  // "postgresql://host:port/db": how errors and logs name the server.
  const std::string& server() const { return server_; }

  Result<int64_t> begin_run(const std::string& kind, const std::string& args_json) override;
  Status finish_run(int64_t run_id, const std::string& status, const std::string& summary_json) override;
  Result<std::vector<RunRecord>> list_runs(int limit) override;
  Result<std::vector<RunRecord>> running_runs(const std::string& kind) override;
  Status request_stop(int64_t run_id) override;
  Result<bool> stop_requested(int64_t run_id) override;
  Result<std::unique_ptr<RunLease>> lease_run(const std::string& kind) override;
  Result<std::unique_ptr<RunLease>> lease_run_shared(const std::string& kind) override;
  Result<int64_t> record_snapshot(int64_t run_id, int64_t taken_at_ms, const std::string& path,
                                  const std::string& summary_json) override;
  Result<int64_t> store_plan(const PlanRecord& plan) override;
  Result<PlanRecord> find_plan(const std::string& hash) override;
  Status set_plan_status(int64_t plan_id, const std::string& status) override;
  Status approve_plan(int64_t plan_id, const std::string& by) override;
  Result<std::vector<PlanRecord>> list_plans(int limit) override;
  Result<std::optional<PlanRecord>> latest_plan(bool approved_only) override;
  Result<int64_t> claim_move(const MoveRecord& move) override;
  Result<SlotClaim> claim_move_in_slots(const MoveRecord& move, const SlotLimits& limits) override;
  Status update_move(const MoveRecord& move) override;
  Result<MoveRecord> get_move(int64_t id) override;
  Result<std::vector<MoveRecord>> list_moves(const MoveFilter& filter) override;
  Result<std::unique_ptr<MoveLease>> lease_move(int64_t move_id) override;
  Status log_step(int64_t move_id, const std::string& step, StepPhase phase, const std::string& detail) override;
  Result<std::vector<StepRecord>> list_steps(int64_t move_id) override;
  Status put_blob(int64_t move_id, const std::string& key, const std::string& value) override;
  Result<std::optional<std::string>> get_blob(int64_t move_id, const std::string& key) override;
  Result<std::unique_ptr<MoveEndWatcher>> watch_move_ends() override;

 private:
  PgJournal(PgJournalOptions options, Clock& clock);
  Status connect();
  Status check_clock();
  Status read_version();
  Status migrate();
  // Takes run lease `name` (e.g. "run-rebalance") on a session of its own;
  // `busy` is the conflict message before ": <holder>".
  Result<std::unique_ptr<RunLease>> take_run_lease(const std::string& name, const std::string& busy, bool shared);
  // The session of this journal's move leases (made on first use).
  std::shared_ptr<pg_detail::LeaseSession> move_lease_session();
  // " AND <the lease still holds>" for a write of move `move_id` when this
  // journal took its lease (parameters appended to `p`), else "";
  // kConflict (fenced_out) when the lease is known lost already.
  Result<std::string> fence_clause(int64_t move_id, pg_detail::Params& p, int first_param);
  Error fenced_out(int64_t move_id) const;
  // NOTIFY mailshard_moves of a move that ended (a failure is only logged).
  void notify_move_ended(int64_t move_id);

  PgJournalOptions options_;
  Clock& clock_;
  std::string server_;
  std::unique_ptr<pg_detail::Connection> conn_;
  int version_ = 0;
  // The move leases this journal handed out, while they live.
  std::map<int64_t, std::weak_ptr<pg_detail::LeaseFence>> fences_;
  std::shared_ptr<pg_detail::LeaseSession> move_leases_;
};

}  // namespace mailshard
