#include "journal/sqlite_journal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "util/fs.h"
#include "util/strings.h"

namespace mailshard {
namespace {

// Forward-only migrations; entry i brings the schema from version i to i+1.
const char* const kMigrations[] = {
    // v1: runs, snapshots, plans, moves, steps, per-move blobs.
    R"sql(
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  status TEXT NOT NULL,
  args TEXT,
  summary TEXT);
CREATE TABLE snapshots(
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id),
  taken_at INTEGER NOT NULL,
  path TEXT,
  summary TEXT);
CREATE TABLE plans(
  id INTEGER PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  strategy TEXT,
  status TEXT NOT NULL,
  plan TEXT NOT NULL);
CREATE TABLE moves(
  id INTEGER PRIMARY KEY,
  plan_id INTEGER,
  user TEXT NOT NULL,
  dn TEXT,
  from_server TEXT, to_server TEXT,
  from_home TEXT, to_home TEXT,
  state TEXT NOT NULL,
  step TEXT,
  bytes_planned INTEGER NOT NULL DEFAULT 0,
  bytes_transferred INTEGER NOT NULL DEFAULT 0,
  lockout_ms INTEGER NOT NULL DEFAULT -1,
  frozen_at INTEGER, thawed_at INTEGER, flipped_at INTEGER, freeze_expires_at INTEGER,
  started_at INTEGER, finished_at INTEGER, updated_at INTEGER,
  error TEXT,
  detail TEXT,
  active INTEGER NOT NULL);
-- The fleet-wide claim: at most one non-terminal move per user.
CREATE UNIQUE INDEX moves_one_active_per_user ON moves(user) WHERE active = 1;
CREATE INDEX moves_by_user ON moves(user);
CREATE TABLE move_steps(
  id INTEGER PRIMARY KEY,
  move_id INTEGER NOT NULL REFERENCES moves(id),
  step TEXT NOT NULL,
  phase TEXT NOT NULL,
  at INTEGER NOT NULL,
  detail TEXT);
CREATE INDEX move_steps_by_move ON move_steps(move_id);
CREATE TABLE move_blobs(
  move_id INTEGER NOT NULL REFERENCES moves(id),
  key TEXT NOT NULL,
  value BLOB,
  PRIMARY KEY(move_id, key));
)sql",
    // v2: plan approval and move counts (for `plan list` and the nightly run
    // of the reviewed plan), and stop requests to a running run.
    R"sql(
ALTER TABLE plans ADD COLUMN moves INTEGER NOT NULL DEFAULT 0;
ALTER TABLE plans ADD COLUMN approved_at INTEGER;
ALTER TABLE plans ADD COLUMN approved_by TEXT;
UPDATE plans SET moves = COALESCE(json_array_length(plan, '$.moves'), 0) WHERE json_valid(plan);
CREATE INDEX plans_by_created ON plans(created_at, id);
ALTER TABLE runs ADD COLUMN stop_requested_at INTEGER;
)sql",
};
constexpr int kLatest = static_cast<int>(sizeof kMigrations / sizeof kMigrations[0]);
static_assert(kLatest == SqliteJournal::kSchemaVersion);

// RAII prepared statement with typed binds and column reads.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_blob(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  std::string text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }
  std::string blob(int c) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

constexpr const char* kMoveColumns =
    "id, plan_id, user, dn, from_server, to_server, from_home, to_home, state, step, bytes_planned, "
    "bytes_transferred, lockout_ms, frozen_at, thawed_at, flipped_at, freeze_expires_at, started_at, finished_at, "
    "updated_at, error, detail";

constexpr const char* kRunColumns =
    "id, kind, started_at, COALESCE(finished_at, 0), status, COALESCE(args, ''), COALESCE(summary, ''), "
    "COALESCE(stop_requested_at, 0)";

RunRecord read_run(const Stmt& s) {
  return {s.i64(0), s.text(1), s.i64(2), s.i64(3), s.text(4), s.text(5), s.text(6), s.i64(7)};
}

// `plan_column` is "plan" for the full record, "''" for a listing.
std::string plan_columns(const char* plan_column) {
  return fmt::format("id, hash, created_at, COALESCE(strategy, ''), {}, status, moves, COALESCE(approved_at, 0), "
                     "COALESCE(approved_by, '')",
                     plan_column);
}

PlanRecord read_plan(const Stmt& s) {
  return {s.i64(0), s.text(1), s.i64(2), s.text(3), s.text(4), s.text(5), s.i64(6), s.i64(7), s.text(8)};
}

Result<MoveRecord> read_move(const Stmt& s) {
  MoveRecord m;
  m.id = s.i64(0);
  m.plan_id = s.i64(1);
  m.user = s.text(2);
  m.dn = s.text(3);
  m.from_server = s.text(4);
  m.to_server = s.text(5);
  m.from_home = s.text(6);
  m.to_home = s.text(7);
  m.state = MS_TRY(parse_move_state(s.text(8)));
  m.step = s.text(9);
  m.bytes_planned = s.i64(10);
  m.bytes_transferred = s.i64(11);
  m.lockout_ms = s.i64(12);
  m.frozen_at_ms = s.i64(13);
  m.thawed_at_ms = s.i64(14);
  m.flipped_at_ms = s.i64(15);
  m.freeze_expires_at_ms = s.i64(16);
  m.started_at_ms = s.i64(17);
  m.finished_at_ms = s.i64(18);
  m.updated_at_ms = s.i64(19);
  m.error = s.text(20);
  m.detail_json = s.text(21);
  return m;
}

}  // namespace

Error SqliteJournal::db_error(std::string_view what) const {
  int code = sqlite3_errcode(db_);
  std::string msg = fmt::format("journal '{}': {}: {}", printable(path_), what, sqlite3_errmsg(db_));
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return Error::unavailable(msg);
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return Error::corrupt(msg);
  if (code == SQLITE_FULL) return Error::no_space(msg);
  if (code == SQLITE_READONLY || code == SQLITE_PERM || code == SQLITE_CANTOPEN) return Error::permission(msg);
  if (code == SQLITE_CONSTRAINT) return Error::conflict(msg);
  return Error::internal(msg);
}

// The journal file, created with `access` (SQLite would create it 0644 less
// the umask, and gives its -wal and -shm files the database's mode and
// owner). One that exists with more access than that -- made by an older
// mailshard, or chmod'ed -- is narrowed to it, with a warning: it names every
// user and the paths of their mail.
static Status prepare_journal_file(const std::string& path, FileAccess access) {
  const std::string shown = printable(path);
  const mode_t want = static_cast<mode_t>(access.mode);
  {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, want));
    if (fd.valid()) {
      // A new file: no connection of this process has it open yet.
      if (access.group >= 0 && ::fchown(fd.get(), static_cast<uid_t>(-1), static_cast<gid_t>(access.group)) != 0)
        return Error::from_errno(errno, fmt::format("cannot give journal '{}' group {}", shown, access.group));
      if (::fchmod(fd.get(), want) != 0) return Error::from_errno(errno, fmt::format("cannot chmod journal '{}'", shown));
      return {};
    }
    if (errno != EEXIST) return Error::from_errno(errno, fmt::format("cannot create journal '{}'", shown));
  }
  // An existing journal: never opened here. Closing a descriptor of the file
  // would drop the POSIX locks every SQLite connection of this process holds
  // on it (a night opens one per move), so it is changed by path only.
  // Narrowed where it is wider than configured; who may not change it (an
  // operator in its group running `status`) only gets a warning.
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = path + suffix;
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const mode_t have = st.st_mode & 07777;
    if (access.group >= 0 && st.st_gid != static_cast<gid_t>(access.group) &&
        ::chown(file.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(access.group)) != 0)
      spdlog::warn("'{}': cannot give it group {}: {}", printable(file), access.group, std::strerror(errno));
    if ((have & ~want) == 0) continue;
    if (::chmod(file.c_str(), want) != 0)
      spdlog::warn("'{}' is mode {:04o}, wider than {:04o}, and cannot be narrowed: {}", printable(file), have, want,
                   std::strerror(errno));
    else
      spdlog::warn("'{}' was mode {:04o}; narrowed to {:04o}", printable(file), have, want);
  }
  return {};
}

Result<std::unique_ptr<SqliteJournal>> SqliteJournal::open(const std::string& path, Clock& clock, FileAccess access) {
  if (auto slash = path.rfind('/'); slash != std::string::npos && slash > 0)
    MS_CHECK_CTX(make_dirs(path.substr(0, slash), 0750), fmt::format("journal '{}'", printable(path)));
  // (Not umask(077): that is process-wide, and workers open journals on threads.)
  MS_CHECK(prepare_journal_file(path, access));
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Error::permission(fmt::format("cannot open journal '{}': {}", printable(path), msg));
  }
  std::unique_ptr<SqliteJournal> j(new SqliteJournal(db, path, clock));
  // One writer at a time across processes: a write waits up to 30 s for
  // the others (twenty movers' fsyncs on a loaded disk took more than 10 s in
  // CI, and a journal write that gives up rolls its move back).
  sqlite3_busy_timeout(db, 30'000);
  MS_CHECK(j->exec("PRAGMA foreign_keys=ON"));
  // WAL: readers (status) never block the mover; FULL: a journaled step
  // survives a power cut, which is what resume relies on.
  {
    Stmt s(db, "PRAGMA journal_mode=WAL");
    if (!s.ok() || s.step() != SQLITE_ROW) return j->db_error("cannot enable WAL");
  }
  MS_CHECK(j->exec("PRAGMA synchronous=FULL"));
  MS_CHECK(j->migrate());
  return j;
}

SqliteJournal::~SqliteJournal() { sqlite3_close(db_); }

Status SqliteJournal::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown error";
    sqlite3_free(err);
    Error e = db_error("sql");
    return Error(e.code(), fmt::format("journal '{}': {}", printable(path_), m));
  }
  return {};
}

Status SqliteJournal::migrate() {
  {
    Stmt s(db_, "PRAGMA user_version");
    if (!s.ok() || s.step() != SQLITE_ROW) return db_error("cannot read schema version");
    version_ = static_cast<int>(s.i64(0));
  }
  if (version_ > kLatest)
    return Error::unsupported(fmt::format(
        "journal '{}' has schema version {}, newer than this mailshard supports ({}); use a newer mailshard",
        printable(path_), version_, kLatest));
  while (version_ < kLatest) {
    MS_CHECK(exec("BEGIN IMMEDIATE"));
    // Re-read under the write lock: another process may have migrated meanwhile.
    Stmt s(db_, "PRAGMA user_version");
    s.step();
    int v = static_cast<int>(s.i64(0));
    if (v >= kLatest) {
      MS_CHECK(exec("COMMIT"));
      version_ = v;
      break;
    }
    auto st = exec(kMigrations[v]);
    if (st.ok()) st = exec(fmt::format("PRAGMA user_version={}", v + 1).c_str());
    if (!st.ok()) {
      (void)exec("ROLLBACK");
      return std::move(st).error().context(fmt::format("migrating to schema {}", v + 1));
    }
    MS_CHECK(exec("COMMIT"));
    version_ = v + 1;
  }
  return {};
}

Result<int64_t> SqliteJournal::begin_run(const std::string& kind, const std::string& args_json) {
  Stmt s(db_, "INSERT INTO runs(kind, started_at, status, args) VALUES(?, ?, 'running', ?)");
  s.bind(1, kind).bind(2, clock_.now_ms()).bind(3, args_json);
  if (s.step() != SQLITE_DONE) return db_error("begin run");
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Status SqliteJournal::finish_run(int64_t run_id, const std::string& status, const std::string& summary_json) {
  Stmt s(db_, "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?");
  s.bind(1, clock_.now_ms()).bind(2, status).bind(3, summary_json).bind(4, run_id);
  if (s.step() != SQLITE_DONE) return db_error("finish run");
  return {};
}

Result<std::vector<RunRecord>> SqliteJournal::list_runs(int limit) {
  Stmt s(db_, fmt::format("SELECT {} FROM runs ORDER BY id DESC LIMIT ?", kRunColumns).c_str());
  s.bind(1, static_cast<int64_t>(limit > 0 ? limit : -1));
  std::vector<RunRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_run(s));
  if (rc != SQLITE_DONE) return db_error("list runs");
  return out;
}

Result<std::vector<RunRecord>> SqliteJournal::running_runs(const std::string& kind) {
  Stmt s(db_, fmt::format("SELECT {} FROM runs WHERE kind = ? AND status = 'running' ORDER BY id DESC", kRunColumns)
                  .c_str());
  s.bind(1, kind);
  std::vector<RunRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_run(s));
  if (rc != SQLITE_DONE) return db_error("list running runs");
  return out;
}

Status SqliteJournal::request_stop(int64_t run_id) {
  // One statement, so no read transaction is open when it writes: under WAL a
  // read that turns into a write after another process wrote fails at once
  // ("database is locked") instead of waiting for the busy timeout.
  // COALESCE: a second request keeps the first one's time.
  {
    Stmt s(db_, "UPDATE runs SET stop_requested_at = COALESCE(stop_requested_at, ?) WHERE id = ? AND status = 'running'");
    s.bind(1, clock_.now_ms()).bind(2, run_id);
    if (s.step() != SQLITE_DONE) return db_error(fmt::format("request stop of run {}", run_id));
  }
  if (sqlite3_changes(db_) == 1) return {};
  Stmt q(db_, "SELECT status FROM runs WHERE id = ?");
  q.bind(1, run_id);
  int rc = q.step();
  if (rc == SQLITE_DONE) return Error::not_found(fmt::format("run {} is not in the journal", run_id));
  if (rc != SQLITE_ROW) return db_error(fmt::format("request stop of run {}", run_id));
  return Error::conflict(fmt::format("run {} has already finished ({})", run_id, q.text(0)));
}

Result<bool> SqliteJournal::stop_requested(int64_t run_id) {
  Stmt s(db_, "SELECT stop_requested_at IS NOT NULL FROM runs WHERE id = ?");
  s.bind(1, run_id);
  int rc = s.step();
  if (rc == SQLITE_ROW) return s.i64(0) != 0;
  if (rc == SQLITE_DONE) return Error::not_found(fmt::format("run {} is not in the journal", run_id));
  return db_error(fmt::format("read stop request of run {}", run_id));
}

Result<int64_t> SqliteJournal::record_snapshot(int64_t run_id, int64_t taken_at_ms, const std::string& path,
                                               const std::string& summary_json) {
  Stmt s(db_, "INSERT INTO snapshots(run_id, taken_at, path, summary) VALUES(?, ?, ?, ?)");
  if (run_id > 0) s.bind(1, run_id);
  s.bind(2, taken_at_ms).bind(3, path).bind(4, summary_json);
  if (s.step() != SQLITE_DONE) return db_error("record snapshot");
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<int64_t> SqliteJournal::store_plan(const PlanRecord& plan) {
  // The move count is the length of the plan's "moves" array, counted here so
  // a listing need not read every plan.
  Stmt s(db_,
         "INSERT INTO plans(hash, created_at, strategy, status, plan, moves) VALUES(?1, ?2, ?3, ?4, ?5, "
         "CASE WHEN json_valid(?5) THEN COALESCE(json_array_length(?5, '$.moves'), 0) ELSE 0 END) "
         "ON CONFLICT(hash) DO NOTHING");
  s.bind(1, plan.hash)
      .bind(2, plan.created_at_ms ? plan.created_at_ms : clock_.now_ms())
      .bind(3, plan.strategy)
      .bind(4, plan.status.empty() ? std::string("planned") : plan.status)
      .bind(5, plan.plan_json);
  if (s.step() != SQLITE_DONE) return db_error("store plan");
  Stmt q(db_, "SELECT id FROM plans WHERE hash = ?");
  q.bind(1, plan.hash);
  if (q.step() != SQLITE_ROW) return db_error("store plan");
  return q.i64(0);
}

Result<PlanRecord> SqliteJournal::find_plan(const std::string& hash) {
  if (hash.size() < 8) return Error::invalid(fmt::format("plan hash '{}' is too short (give at least 8 hex digits)", printable(hash)));
  Stmt s(db_, fmt::format("SELECT {} FROM plans WHERE hash = ? OR hash LIKE ? || '%' LIMIT 2", plan_columns("plan")).c_str());
  s.bind(1, hash).bind(2, hash);
  std::vector<PlanRecord> found;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) found.push_back(read_plan(s));
  if (rc != SQLITE_DONE) return db_error("find plan");
  if (found.empty()) return Error::not_found(fmt::format("no plan with hash '{}' in the journal", printable(hash)));
  if (found.size() > 1 && found[0].hash != hash)
    return Error::invalid(fmt::format("plan hash prefix '{}' is ambiguous", printable(hash)));
  return found[0];
}

Status SqliteJournal::set_plan_status(int64_t plan_id, const std::string& status) {
  Stmt s(db_, "UPDATE plans SET status = ? WHERE id = ?");
  s.bind(1, status).bind(2, plan_id);
  if (s.step() != SQLITE_DONE) return db_error("set plan status");
  return {};
}

Status SqliteJournal::approve_plan(int64_t plan_id, const std::string& by) {
  if (by.empty()) return Error::invalid(fmt::format("approve plan {}: who approves it must be named", plan_id));
  // COALESCE: approving again keeps the first approval (idempotent).
  Stmt s(db_,
         "UPDATE plans SET approved_at = COALESCE(approved_at, ?), approved_by = COALESCE(approved_by, ?) WHERE id = ?");
  s.bind(1, clock_.now_ms()).bind(2, by).bind(3, plan_id);
  if (s.step() != SQLITE_DONE) return db_error(fmt::format("approve plan {}", plan_id));
  if (sqlite3_changes(db_) == 0) return Error::not_found(fmt::format("plan {} is not in the journal", plan_id));
  return {};
}

Result<std::vector<PlanRecord>> SqliteJournal::list_plans(int limit) {
  Stmt s(db_, fmt::format("SELECT {} FROM plans ORDER BY created_at DESC, id DESC LIMIT ?", plan_columns("''")).c_str());
  s.bind(1, static_cast<int64_t>(limit > 0 ? limit : -1));
  std::vector<PlanRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_plan(s));
  if (rc != SQLITE_DONE) return db_error("list plans");
  return out;
}

Result<std::optional<PlanRecord>> SqliteJournal::latest_plan(bool approved_only) {
  Stmt s(db_, fmt::format("SELECT {} FROM plans WHERE ? = 0 OR approved_at IS NOT NULL "
                          "ORDER BY created_at DESC, id DESC LIMIT 1",
                          plan_columns("plan"))
                  .c_str());
  s.bind(1, static_cast<int64_t>(approved_only ? 1 : 0));
  int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<PlanRecord>(read_plan(s));
  if (rc == SQLITE_DONE) return std::optional<PlanRecord>();
  return db_error("latest plan");
}

Result<int64_t> SqliteJournal::claim_move(const MoveRecord& m) {
  MS_CHECK(exec("BEGIN IMMEDIATE"));
  auto rollback = [&](Error e) -> Error {
    (void)exec("ROLLBACK");
    return e;
  };
  if (!is_terminal(m.state)) {
    Stmt q(db_, "SELECT id, state FROM moves WHERE user = ? AND active = 1");
    q.bind(1, m.user);
    if (q.step() == SQLITE_ROW)
      return rollback(Error::conflict(fmt::format("user {} is already being moved (move {}, state {})",
                                                  printable(m.user), q.i64(0), q.text(1))));
  }
  int64_t now = clock_.now_ms();
  Stmt s(db_,
         "INSERT INTO moves(plan_id, user, dn, from_server, to_server, from_home, to_home, state, step, "
         "bytes_planned, started_at, updated_at, error, detail, active) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, m.plan_id).bind(2, m.user).bind(3, m.dn).bind(4, m.from_server).bind(5, m.to_server);
  s.bind(6, m.from_home).bind(7, m.to_home).bind(8, std::string(move_state_name(m.state))).bind(9, m.step);
  s.bind(10, m.bytes_planned).bind(11, m.started_at_ms ? m.started_at_ms : now).bind(12, now);
  s.bind(13, m.error).bind(14, m.detail_json).bind(15, static_cast<int64_t>(is_terminal(m.state) ? 0 : 1));
  if (s.step() != SQLITE_DONE) return rollback(db_error("claim move"));
  int64_t id = sqlite3_last_insert_rowid(db_);
  MS_CHECK(exec("COMMIT"));
  return id;
}

Result<SlotClaim> SqliteJournal::claim_move_in_slots(const MoveRecord& m, const SlotLimits& limits) {
  MS_CHECK(check_slot_claim(m));
  // BEGIN IMMEDIATE: one writer at a time across processes, so the counts
  // below cannot change before the insert commits.
  MS_CHECK(exec("BEGIN IMMEDIATE"));
  auto rollback = [&](auto out) {
    (void)exec("ROLLBACK");
    return out;
  };
  {
    Stmt q(db_, "SELECT id, state FROM moves WHERE user = ? AND active = 1");
    q.bind(1, m.user);
    if (q.step() == SQLITE_ROW)
      return rollback(SlotClaim{ClaimOutcome::kUserBusy, q.i64(0),
                                fmt::format("user {} is already being moved (move {}, state {})", printable(m.user),
                                            q.i64(0), q.text(1))});
  }
  if (m.plan_id > 0) {
    Stmt q(db_, "SELECT id FROM moves WHERE user = ? AND plan_id = ? AND state IN ('done', 'purged') LIMIT 1");
    q.bind(1, m.user).bind(2, m.plan_id);
    if (q.step() == SQLITE_ROW)
      return rollback(SlotClaim{ClaimOutcome::kDoneAlready, q.i64(0),
                                fmt::format("user {} was moved by move {} of this plan already", printable(m.user),
                                            q.i64(0))});
  }
  Stmt c(db_,
         "SELECT COALESCE(SUM(from_server = ?), 0), COALESCE(SUM(to_server = ?), 0) FROM moves WHERE active = 1");
  c.bind(1, m.from_server).bind(2, m.to_server);
  if (c.step() != SQLITE_ROW) return rollback(Result<SlotClaim>(db_error("claim move in slots")));
  const int64_t active_out = c.i64(0), active_in = c.i64(1);
  if (active_out >= limits.out || active_in >= limits.in)
    return rollback(slots_full(m, limits, active_out, active_in));
  int64_t now = clock_.now_ms();
  Stmt s(db_,
         "INSERT INTO moves(plan_id, user, dn, from_server, to_server, from_home, to_home, state, step, "
         "bytes_planned, started_at, updated_at, error, detail, active) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,1)");
  s.bind(1, m.plan_id).bind(2, m.user).bind(3, m.dn).bind(4, m.from_server).bind(5, m.to_server);
  s.bind(6, m.from_home).bind(7, m.to_home).bind(8, std::string(move_state_name(m.state))).bind(9, m.step);
  s.bind(10, m.bytes_planned).bind(11, m.started_at_ms ? m.started_at_ms : now).bind(12, now);
  s.bind(13, m.error).bind(14, m.detail_json);
  if (s.step() != SQLITE_DONE) return rollback(Result<SlotClaim>(db_error("claim move in slots")));
  int64_t id = sqlite3_last_insert_rowid(db_);
  MS_CHECK(exec("COMMIT"));
  return SlotClaim{ClaimOutcome::kClaimed, id, ""};
}

Status SqliteJournal::update_move(const MoveRecord& m) {
  Stmt s(db_,
         "UPDATE moves SET state=?, step=?, from_home=?, to_home=?, bytes_planned=?, bytes_transferred=?, "
         "lockout_ms=?, frozen_at=?, thawed_at=?, flipped_at=?, freeze_expires_at=?, finished_at=?, updated_at=?, "
         "error=?, detail=?, active=?, dn=? WHERE id=?");
  s.bind(1, std::string(move_state_name(m.state))).bind(2, m.step).bind(3, m.from_home).bind(4, m.to_home);
  s.bind(5, m.bytes_planned).bind(6, m.bytes_transferred).bind(7, m.lockout_ms).bind(8, m.frozen_at_ms);
  s.bind(9, m.thawed_at_ms).bind(10, m.flipped_at_ms).bind(11, m.freeze_expires_at_ms).bind(12, m.finished_at_ms);
  s.bind(13, clock_.now_ms()).bind(14, m.error).bind(15, m.detail_json);
  s.bind(16, static_cast<int64_t>(is_terminal(m.state) ? 0 : 1)).bind(17, m.dn).bind(18, m.id);
  if (s.step() != SQLITE_DONE) return db_error(fmt::format("update move {}", m.id));
  if (sqlite3_changes(db_) == 0) return Error::not_found(fmt::format("move {} is not in the journal", m.id));
  return {};
}

Result<MoveRecord> SqliteJournal::get_move(int64_t id) {
  Stmt s(db_, fmt::format("SELECT {} FROM moves WHERE id = ?", kMoveColumns).c_str());
  s.bind(1, id);
  int rc = s.step();
  if (rc == SQLITE_ROW) return read_move(s);
  if (rc == SQLITE_DONE) return Error::not_found(fmt::format("move {} is not in the journal", id));
  return db_error("get move");
}

Result<std::vector<MoveRecord>> SqliteJournal::list_moves(const MoveFilter& f) {
  std::string sql = fmt::format("SELECT {} FROM moves WHERE 1=1", kMoveColumns);
  if (f.user) sql += " AND user = ?1";
  if (f.id) sql += " AND id = ?2";
  if (f.active_only) sql += " AND active = 1";
  sql += " ORDER BY id DESC";
  if (f.limit > 0) sql += fmt::format(" LIMIT {}", f.limit);
  Stmt s(db_, sql.c_str());
  if (f.user) s.bind(1, *f.user);
  if (f.id) s.bind(2, *f.id);
  std::vector<MoveRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(MS_TRY(read_move(s)));
  if (rc != SQLITE_DONE) return db_error("list moves");
  return out;
}

namespace {

template <typename Lease>
class FlockLease final : public Lease {
 public:
  explicit FlockLease(UniqueFd fd) : fd_(std::move(fd)) {}
  ~FlockLease() override { ::flock(fd_.get(), LOCK_UN); }

 private:
  UniqueFd fd_;
};

enum class LockOutcome { kTaken, kBusy };
struct LockFile {
  UniqueFd fd;
  LockOutcome outcome;
};

// Opens (creating, 0600) and flocks `file` without waiting. An flock belongs
// to the open file description: the kernel drops it when the process dies,
// and two opens in one process conflict like two processes do.
Result<LockFile> try_lock(const std::string& file, int mode = LOCK_EX) {
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::from_errno(errno, fmt::format("cannot open lock '{}'", printable(file)));
  if (::flock(fd.get(), mode | LOCK_NB) == 0) return LockFile{std::move(fd), LockOutcome::kTaken};
  if (errno == EWOULDBLOCK) return LockFile{std::move(fd), LockOutcome::kBusy};
  return Error::from_errno(errno, fmt::format("cannot lock '{}'", printable(file)));
}

// Who holds a run lock: one line, e.g. "pid 1234 on host db1 since 2026-12-05T01:00:03.000Z".
constexpr size_t kMaxHolderBytes = 512;

}  // namespace

Result<std::unique_ptr<MoveLease>> SqliteJournal::lease_move(int64_t move_id) {
  std::string dir = path_ + ".locks";
  MS_CHECK_CTX(make_dirs(dir, 0750), "move lease");
  std::string file = fmt::format("{}/move-{}.lock", dir, move_id);
  LockFile lock = MS_TRY(try_lock(file));
  if (lock.outcome == LockOutcome::kBusy)
    return Error::conflict(fmt::format("move {} is being run by another process", move_id));
  return std::unique_ptr<MoveLease>(new FlockLease<MoveLease>(std::move(lock.fd)));
}

Result<std::unique_ptr<RunLease>> SqliteJournal::lease_run(const std::string& kind) { return take_run_lease(kind, false); }

Result<std::unique_ptr<RunLease>> SqliteJournal::lease_run_shared(const std::string& kind) {
  return take_run_lease(kind, true);
}

Result<std::unique_ptr<RunLease>> SqliteJournal::take_run_lease(const std::string& kind, bool shared) {
  // The kind names a file.
  if (kind.empty() || kind.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
    return Error::invalid(fmt::format("run kind '{}' must be lower-case letters, digits, '_' or '-'", printable(kind)));
  std::string dir = path_ + ".locks";
  MS_CHECK_CTX(make_dirs(dir, 0750), fmt::format("{} lease", kind));
  std::string file = fmt::format("{}/run-{}.lock", dir, kind);
  LockFile lock = MS_TRY(try_lock(file, shared ? LOCK_SH : LOCK_EX));
  if (lock.outcome == LockOutcome::kBusy) {
    char buf[kMaxHolderBytes];
    ssize_t n = ::pread(lock.fd.get(), buf, sizeof buf, 0);
    std::string holder(buf, n > 0 ? static_cast<size_t>(n) : 0);
    if (auto nl = holder.find('\n'); nl != std::string::npos) holder.resize(nl);
    // The holder writes its line just after taking the lock: a reader can come in between.
    if (holder.empty()) return Error::conflict(fmt::format("another {} is running (it has not recorded who it is yet)", kind));
    return Error::conflict(fmt::format("another {} is running: {}", kind, printable(holder)));
  }
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
  const std::string holder =
      fmt::format("pid {} on host {} since {}\n", ::getpid(), printable(host), format_time_ms(clock_.now_ms()));
  // No fsync: the line only explains a conflict; the lock itself is the flock.
  if (::ftruncate(lock.fd.get(), 0) != 0)
    return Error::from_errno(errno, fmt::format("cannot record the holder in '{}'", printable(file)));
  ssize_t w = ::pwrite(lock.fd.get(), holder.data(), holder.size(), 0);
  if (w != static_cast<ssize_t>(holder.size()))
    return Error::from_errno(w < 0 ? errno : EIO, fmt::format("cannot record the holder in '{}'", printable(file)));
  return std::unique_ptr<RunLease>(new FlockLease<RunLease>(std::move(lock.fd)));
}

Status SqliteJournal::log_step(int64_t move_id, const std::string& step, StepPhase phase, const std::string& detail) {
  Stmt s(db_, "INSERT INTO move_steps(move_id, step, phase, at, detail) VALUES(?, ?, ?, ?, ?)");
  s.bind(1, move_id).bind(2, step).bind(3, std::string(step_phase_name(phase))).bind(4, clock_.now_ms()).bind(5, detail);
  if (s.step() != SQLITE_DONE) return db_error(fmt::format("log step {} of move {}", step, move_id));
  return {};
}

Result<std::vector<StepRecord>> SqliteJournal::list_steps(int64_t move_id) {
  Stmt s(db_, "SELECT id, move_id, step, phase, at, COALESCE(detail, '') FROM move_steps WHERE move_id = ? ORDER BY id");
  s.bind(1, move_id);
  std::vector<StepRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    std::string ph = s.text(3);
    StepPhase phase = ph == "end" ? StepPhase::kEnd : ph == "error" ? StepPhase::kError : StepPhase::kBegin;
    out.push_back({s.i64(0), s.i64(1), s.text(2), phase, s.i64(4), s.text(5)});
  }
  if (rc != SQLITE_DONE) return db_error("list steps");
  return out;
}

Status SqliteJournal::put_blob(int64_t move_id, const std::string& key, const std::string& value) {
  Stmt s(db_, "INSERT INTO move_blobs(move_id, key, value) VALUES(?, ?, ?) "
              "ON CONFLICT(move_id, key) DO UPDATE SET value = excluded.value");
  s.bind(1, move_id).bind(2, key).bind_blob(3, value);
  if (s.step() != SQLITE_DONE) return db_error(fmt::format("store {} of move {}", key, move_id));
  return {};
}

Result<std::optional<std::string>> SqliteJournal::get_blob(int64_t move_id, const std::string& key) {
  Stmt s(db_, "SELECT value FROM move_blobs WHERE move_id = ? AND key = ?");
  s.bind(1, move_id).bind(2, key);
  int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(s.blob(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return db_error("get blob");
}

}  // namespace mailshard
