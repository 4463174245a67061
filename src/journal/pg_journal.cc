#include "journal/pg_journal.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "journal/pq_lazy.h"
#include "util/strings.h"

namespace mailshard {
namespace {

// Forward-only migrations; entry i brings the schema from version i to i+1.
// The same tables as SQLite's (docs/journal.md) in PostgreSQL's types, plus
// `leases`, the holders of the advisory-lock leases.
const char* const kMigrations[] = {
    // v1: runs, snapshots, plans, moves, steps, per-move blobs, lease holders.
    R"sql(
CREATE TABLE runs(
  id BIGSERIAL PRIMARY KEY,
  kind TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  finished_at BIGINT,
  status TEXT NOT NULL,
  args TEXT,
  summary TEXT);
CREATE TABLE snapshots(
  id BIGSERIAL PRIMARY KEY,
  run_id BIGINT REFERENCES runs(id),
  taken_at BIGINT NOT NULL,
  path TEXT,
  summary TEXT);
CREATE TABLE plans(
  id BIGSERIAL PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  strategy TEXT,
  status TEXT NOT NULL,
  plan TEXT NOT NULL);
CREATE TABLE moves(
  id BIGSERIAL PRIMARY KEY,
  plan_id BIGINT,
  "user" TEXT NOT NULL,
  dn TEXT,
  from_server TEXT, to_server TEXT,
  from_home TEXT, to_home TEXT,
  state TEXT NOT NULL,
  step TEXT,
  bytes_planned BIGINT NOT NULL DEFAULT 0,
  bytes_transferred BIGINT NOT NULL DEFAULT 0,
  lockout_ms BIGINT NOT NULL DEFAULT -1,
  frozen_at BIGINT, thawed_at BIGINT, flipped_at BIGINT, freeze_expires_at BIGINT,
  started_at BIGINT, finished_at BIGINT, updated_at BIGINT,
  error TEXT,
  detail TEXT,
  active INTEGER NOT NULL);
-- The fleet-wide claim, checked by the server for every host: at most one
-- non-terminal move per user.
CREATE UNIQUE INDEX moves_one_active_per_user ON moves("user") WHERE active = 1;
CREATE INDEX moves_by_user ON moves("user");
CREATE TABLE move_steps(
  id BIGSERIAL PRIMARY KEY,
  move_id BIGINT NOT NULL REFERENCES moves(id),
  step TEXT NOT NULL,
  phase TEXT NOT NULL,
  at BIGINT NOT NULL,
  detail TEXT);
CREATE INDEX move_steps_by_move ON move_steps(move_id);
CREATE TABLE move_blobs(
  move_id BIGINT NOT NULL REFERENCES moves(id),
  key TEXT NOT NULL,
  value BYTEA,
  PRIMARY KEY(move_id, key));
-- Who holds each lease (the lock itself is an advisory lock of backend_pid's
-- session); heartbeat_at is the server's time of the holder's last heartbeat.
CREATE TABLE leases(
  name TEXT PRIMARY KEY,
  pid BIGINT NOT NULL,
  host TEXT NOT NULL,
  since BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  backend_pid INTEGER NOT NULL);
)sql",
    // v2: plan approval and move counts, and stop requests to a running run.
    // (SQLite's v2 also counts the moves of stored plans; no PostgreSQL
    // journal ever had plans at v1, so there is nothing to count.)
    R"sql(
ALTER TABLE plans ADD COLUMN moves BIGINT NOT NULL DEFAULT 0;
ALTER TABLE plans ADD COLUMN approved_at BIGINT;
ALTER TABLE plans ADD COLUMN approved_by TEXT;
CREATE INDEX plans_by_created ON plans(created_at, id);
ALTER TABLE runs ADD COLUMN stop_requested_at BIGINT;
)sql",
};
constexpr int kLatest = static_cast<int>(sizeof kMigrations / sizeof kMigrations[0]);
static_assert(kLatest == PgJournal::kSchemaVersion);

// libpq's messages span lines ("...failed: Connection refused\n\tIs the
// server running...?"): one line, parts joined by "; ".
std::string one_line(std::string_view text) {
  std::string out;
  for (auto part : split(text, '\n')) {
    // The server's severity ("...failed: FATAL:  password authentication
    // failed...") adds nothing to a mailshard error line.
    for (std::string_view severity : {"FATAL:  ", "ERROR:  "})
      for (size_t at; (at = part.find(severity)) != std::string::npos;) part.erase(at, severity.size());
    auto t = trim(part);
    if (t.empty()) continue;
    if (!out.empty()) out += "; ";
    out += t;
  }
  return out.empty() ? std::string("unknown error") : out;
}

// Advisory lock keys: 64-bit FNV-1a of "mailshard:<name>", so leases do not
// collide with each other (and unlikely with another application's locks).
int64_t lock_key(std::string_view name) {
  uint64_t h = 14695981039346656037ull;
  for (char c : std::string("mailshard:") + std::string(name)) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h);
}

}  // namespace

namespace pg_detail {

// One result, freed when destroyed.
class Rows {
 public:
  explicit Rows(PGresult* r) : r_(r) {}
  Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Rows& operator=(Rows&&) = delete;
  ~Rows() { PQclear(r_); }
  int size() const { return PQntuples(r_); }
  bool null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
  }
  int64_t i64(int row, int col) const { return null(row, col) ? 0 : std::strtoll(PQgetvalue(r_, row, col), nullptr, 10); }
  int64_t changed() const { return std::strtoll(PQcmdTuples(r_), nullptr, 10); }
  const PGresult* get() const { return r_; }

 private:
  PGresult* r_;
};

// Statement parameters, sent as text (binary for bytes()); a null() is SQL NULL.
class Params {
 public:
  Params& operator()(int64_t v) { return add(std::to_string(v), 0); }
  Params& operator()(const std::string& v) { return add(v, 0); }
  Params& bytes(const std::string& v) { return add(v, 1); }
  Params& null() {
    values_.emplace_back();
    formats_.push_back(0);
    return *this;
  }
  int count() const { return static_cast<int>(values_.size()); }
  void pointers(std::vector<const char*>& v, std::vector<int>& len) const {
    for (const auto& s : values_) {
      v.push_back(s ? s->data() : nullptr);
      len.push_back(s ? static_cast<int>(s->size()) : 0);
    }
  }
  const int* formats() const { return formats_.data(); }

 private:
  Params& add(std::string v, int format) {
    values_.emplace_back(std::move(v));
    formats_.push_back(format);
    return *this;
  }
  std::vector<std::optional<std::string>> values_;
  std::vector<int> formats_;
};

// What a write of a leased move checks: the lease's lock is still held by the
// lease's session, and the holder's row still names this process.
struct LeaseFence {
  std::string name;
  int64_t key = 0;
  bool shared = false;  // the lock's shared side (run leases of a shared night)
  int64_t backend_pid = 0;
  int64_t pid = 0;
  std::string host;
  int64_t since_ms = 0;
  // Set once this process knows the session that held the lock is gone:
  // writes are refused without asking the server.
  std::atomic<bool> lost{false};
};

// One libpq connection and the server's name for messages.
class Connection {
 public:
  Connection(PGconn* c, std::string server) : c_(c), server_(std::move(server)) {}
  ~Connection() { PQfinish(c_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects with `options` (keepalives on both ends, a connect timeout).
  static Result<std::unique_ptr<Connection>> open(const PgJournalOptions& options, const std::string& server);

  // Runs one statement. Reconnects first if the connection broke earlier.
  Result<Rows> exec(std::string_view what, const std::string& sql, const Params& params = {}, int result_format = 0);
  // Runs statements separated by ';' (no parameters).
  Status run(std::string_view what, const std::string& sql);
  const std::string& server() const { return server_; }
  bool ok() const { return PQstatus(c_) == CONNECTION_OK; }
  PGconn* raw() { return c_; }
  // A lease's connection is never re-established: a new session would not
  // hold the lease's lock.
  void never_reconnect() { reconnect_ = false; }

  Error error(std::string_view what, const PGresult* r) const;

 private:
  PGconn* c_;
  std::string server_;
  bool reconnect_ = true;
};

Error Connection::error(std::string_view what, const PGresult* r) const {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string msg = fmt::format("journal {}: {}: {}", server_, what, one_line(primary ? primary : PQerrorMessage(c_)));
  std::string_view code = state ? state : "";
  if (PQstatus(c_) == CONNECTION_BAD || starts_with(code, "08") || starts_with(code, "57P"))
    return Error::unavailable(msg);
  if (code == "40001" || code == "40P01" || code == "55P03" || starts_with(code, "53")) {
    if (code == "53100") return Error::no_space(msg);
    return Error::unavailable(msg);
  }
  if (starts_with(code, "23")) return Error::conflict(msg);
  if (code == "42501" || starts_with(code, "28")) return Error::permission(msg);
  if (code == "3D000") return Error::not_found(msg);
  return Error::internal(msg);
}

void quiet_notices(void*, const char* message) { spdlog::debug("journal: {}", one_line(message)); }

Result<std::unique_ptr<Connection>> Connection::open(const PgJournalOptions& o, const std::string& server) {
  const std::string timeout = std::to_string(PgJournal::kConnectTimeoutS);
  const std::string idle = std::to_string(PgJournal::kKeepaliveIdleS);
  const std::string interval = std::to_string(PgJournal::kKeepaliveIntervalS);
  const std::string count = std::to_string(PgJournal::kKeepaliveCount);
  const std::string user_timeout = std::to_string(PgJournal::kTcpUserTimeoutMs);
  // Defaults first, the URL last: with expand_dbname what the URL says wins.
  std::vector<const char*> keys = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                                   "keepalives_count", "tcp_user_timeout", "fallback_application_name"};
  std::vector<const char*> values = {timeout.c_str(), "1", idle.c_str(), interval.c_str(),
                                     count.c_str(), user_timeout.c_str(), "mailshard"};
  if (!o.password.empty()) {
    keys.push_back("password");
    values.push_back(o.password.c_str());
  }
  keys.push_back("dbname");
  values.push_back(o.url.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), 1);
  if (!c) return Error::internal(fmt::format("journal {}: connect: out of memory", server));
  auto conn = std::make_unique<Connection>(c, server);
  if (PQstatus(c) != CONNECTION_OK) {
    std::string m = one_line(PQerrorMessage(c));
    std::string msg = fmt::format("journal {}: connect: {}", server, m);
    if (PQconnectionNeedsPassword(c) || m.find("authentication failed") != std::string::npos ||
        m.find("no password supplied") != std::string::npos)
      return Error::permission(msg + " (check the user in [journal] url and the password in password_file, "
                                     "$MAILSHARD_JOURNAL_PASSWORD or PGPASSFILE)");
    if (m.find("does not exist") != std::string::npos) return Error::not_found(msg);
    return Error::unavailable(msg);
  }
  PQsetNoticeProcessor(c, quiet_notices, nullptr);
  // The server's end of the keepalives: it is the server that must notice a
  // dead host to release that host's advisory locks. (Ignored, without an
  // error, on a Unix socket.)
  MS_CHECK(conn->run("set keepalives", fmt::format("SET tcp_keepalives_idle = {}; SET tcp_keepalives_interval = {}; "
                                                   "SET tcp_keepalives_count = {}; SET tcp_user_timeout = {}",
                                                   idle, interval, count, user_timeout)));
  return conn;
}

Result<Rows> Connection::exec(std::string_view what, const std::string& sql, const Params& params, int result_format) {
  if (PQstatus(c_) == CONNECTION_BAD) {
    if (!reconnect_) return Error::unavailable(fmt::format("journal {}: {}: the connection is lost", server_, what));
    PQreset(c_);
    if (PQstatus(c_) != CONNECTION_OK)
      return Error::unavailable(fmt::format("journal {}: {}: {}", server_, what, one_line(PQerrorMessage(c_))));
    spdlog::info("journal {}: reconnected", server_);
  }
  std::vector<const char*> v;
  std::vector<int> len;
  params.pointers(v, len);
  PGresult* r = PQexecParams(c_, sql.c_str(), params.count(), nullptr, v.data(), len.data(), params.formats(),
                             result_format);
  Rows rows(r);
  const auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return error(what, r);
  return rows;
}

Status Connection::run(std::string_view what, const std::string& sql) {
  if (PQstatus(c_) == CONNECTION_BAD && reconnect_) PQreset(c_);
  // PQexec runs every statement of `sql` and stops at the first that fails,
  // whose result it returns.
  Rows rows(PQexec(c_, sql.c_str()));
  const PGresult* r = rows.get();
  const auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return error(what, r);
  return {};
}

}  // namespace pg_detail

using pg_detail::Connection;
using pg_detail::Params;
using pg_detail::Rows;

namespace {

// "postgresql://host:port/db" for messages: never the user or the password.
// A URL libpq cannot parse is an error here, before any connection.
Result<std::string> describe_server(const std::string& url) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (!opts) {
    std::string m = err ? one_line(err) : "cannot parse it";
    PQfreemem(err);
    return Error::invalid(fmt::format("journal url: {}", m));
  }
  std::string host, port, db, user;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    std::string_view k = o->keyword;
    std::string v = o->val ? o->val : "";
    if (k == "host" || (k == "hostaddr" && host.empty())) host = v;
    else if (k == "port") port = v;
    else if (k == "dbname") db = v;
    else if (k == "user") user = v;
  }
  PQconninfoFree(opts);
  if (host.empty()) host = "localhost";
  if (port.empty()) port = "5432";
  if (db.empty()) db = user;
  return fmt::format("postgresql://{}:{}/{}", host, port, db);
}

constexpr const char* kMoveColumns =
    R"(id, COALESCE(plan_id, 0), "user", COALESCE(dn, ''), COALESCE(from_server, ''), COALESCE(to_server, ''), )"
    "COALESCE(from_home, ''), COALESCE(to_home, ''), state, COALESCE(step, ''), bytes_planned, bytes_transferred, "
    "lockout_ms, frozen_at, thawed_at, flipped_at, freeze_expires_at, started_at, finished_at, updated_at, "
    "COALESCE(error, ''), COALESCE(detail, '')";

constexpr const char* kRunColumns =
    "id, kind, started_at, COALESCE(finished_at, 0), status, COALESCE(args, ''), COALESCE(summary, ''), "
    "COALESCE(stop_requested_at, 0)";

RunRecord read_run(const Rows& s, int i) {
  return {s.i64(i, 0), s.text(i, 1), s.i64(i, 2), s.i64(i, 3), s.text(i, 4), s.text(i, 5), s.text(i, 6), s.i64(i, 7)};
}

std::string plan_columns(const char* plan_column) {
  return fmt::format("id, hash, created_at, COALESCE(strategy, ''), {}, status, moves, COALESCE(approved_at, 0), "
                     "COALESCE(approved_by, '')",
                     plan_column);
}

PlanRecord read_plan(const Rows& s, int i) {
  return {s.i64(i, 0), s.text(i, 1), s.i64(i, 2), s.text(i, 3), s.text(i, 4),
          s.text(i, 5), s.i64(i, 6), s.i64(i, 7), s.text(i, 8)};
}

Result<MoveRecord> read_move(const Rows& s, int i) {
  MoveRecord m;
  m.id = s.i64(i, 0);
  m.plan_id = s.i64(i, 1);
  m.user = s.text(i, 2);
  m.dn = s.text(i, 3);
  m.from_server = s.text(i, 4);
  m.to_server = s.text(i, 5);
  m.from_home = s.text(i, 6);
  m.to_home = s.text(i, 7);
  m.state = MS_TRY(parse_move_state(s.text(i, 8)));
  m.step = s.text(i, 9);
  m.bytes_planned = s.i64(i, 10);
  m.bytes_transferred = s.i64(i, 11);
  m.lockout_ms = s.i64(i, 12);
  m.frozen_at_ms = s.i64(i, 13);
  m.thawed_at_ms = s.i64(i, 14);
  m.flipped_at_ms = s.i64(i, 15);
  m.freeze_expires_at_ms = s.i64(i, 16);
  m.started_at_ms = s.i64(i, 17);
  m.finished_at_ms = s.i64(i, 18);
  m.updated_at_ms = s.i64(i, 19);
  m.error = s.text(i, 20);
  m.detail_json = s.text(i, 21);
  return m;
}

// Length of the plan's top-level "moves" array; 0 when it is not JSON.
int64_t count_plan_moves(const std::string& plan_json) {
  auto j = nlohmann::json::parse(plan_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return 0;
  auto it = j.find("moves");
  return it != j.end() && it->is_array() ? static_cast<int64_t>(it->size()) : 0;
}

std::string this_host() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return "unknown";
  return host;
}

}  // namespace

namespace pg_detail {

// A session holding leases: one connection whose advisory locks are the
// leases, and one thread that renews every held lease's row in `leases` each
// heartbeat_ms, in one statement. A journal's move leases share one session;
// a run lease has one of its own.
//
// A lost connection loses every lease held on it (the server released their
// locks when it ended the session, or will once it notices the dead peer).
// The heartbeat or the next take notices; then each lease's fence is marked
// lost (writes of its move are refused), one error names them all, and the
// connection is dropped. The next take opens a new connection; the lost
// leases are not taken again on it: whoever held one must lease its move
// anew.
//
// Thread-safety: take and release may be called from any thread; one mutex
// guards the connection and the held leases, so the heartbeat, takes and
// releases go one at a time (each a round trip or two).
class LeaseSession {
 public:
  enum class Mode { kExclusive, kShared };

  LeaseSession(const PgJournalOptions& options, std::string server)
      : options_(options), server_(std::move(server)), owner_pid_(::getpid()) {
    thread_ = std::thread([this] { heartbeat_loop(); });
  }
  ~LeaseSession() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    // Closing the connection releases whatever it still holds.
  }
  LeaseSession(const LeaseSession&) = delete;
  LeaseSession& operator=(const LeaseSession&) = delete;

  // The process that made it: a forked child must not use its parent's
  // connection (a shared socket) nor wait on its mutex (the parent's
  // heartbeat may have held it at the fork).
  pid_t owner_pid() const { return owner_pid_; }

  // Takes lease `name` without waiting, opening the connection first if
  // there is none (the first take, or the one after a loss). kConflict with
  // `busy` + ": pid P on host H since T" while another session (or this one,
  // for another lease object of this process) holds it; kUnavailable when
  // the server cannot be reached.
  Result<std::shared_ptr<LeaseFence>> take(const std::string& name, const std::string& busy, int64_t now_ms, Mode mode);

  // Unlocks `fence`'s key if this session still holds it for that fence
  // (not after a loss). Never fails: a connection that broke meanwhile
  // released the lock anyway.
  void release(const std::shared_ptr<LeaseFence>& fence);

 private:
  void heartbeat_loop();
  // Under mu_: renews every held lease's row.
  void beat();
  // Under mu_: the connection is gone, and with it every lease held on it.
  void lose(const std::string& why);
  Error holder_conflict(const std::string& name, const std::string& busy, int64_t key);

  const PgJournalOptions options_;
  const std::string server_;
  const pid_t owner_pid_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::unique_ptr<Connection> conn_;  // null before the first take and after a loss
  std::map<std::string, std::shared_ptr<LeaseFence>> held_;  // by lease name
  bool beat_failing_ = false;  // a failed heartbeat was logged (and none has worked since)
  std::thread thread_;
};

Result<std::shared_ptr<LeaseFence>> LeaseSession::take(const std::string& name, const std::string& busy,
                                                       int64_t now_ms, Mode mode) {
  std::lock_guard lock(mu_);
  if (auto it = held_.find(name); it != held_.end()) {
    // A session's advisory locks stack: the server would say yes to this
    // session again. Another lease object of this process is the holder.
    const LeaseFence& h = *it->second;
    return Error::conflict(fmt::format("{}: pid {} on host {} since {}", busy, h.pid, printable(h.host),
                                       format_time_ms(h.since_ms)));
  }
  if (conn_ && !conn_->ok()) lose(fmt::format("journal {}: take lease {}: the lease connection broke", server_, name));
  if (!conn_) {
    conn_ = MS_TRY(Connection::open(options_, server_).context(fmt::format("lease {}", name)));
    // A new session would not hold the old one's locks.
    conn_->never_reconnect();
  }
  const int64_t key = lock_key(name);
  const bool shared = mode == Mode::kShared;
  auto got = conn_->exec(fmt::format("take lease {}", name),
                         shared ? "SELECT pg_try_advisory_lock_shared($1::bigint)" : "SELECT pg_try_advisory_lock($1::bigint)",
                         Params()(key));
  if (!got.ok()) {
    if (!conn_->ok()) lose(got.error().message());
    return std::move(got).error();
  }
  if (got->text(0, 0) != "t") return holder_conflict(name, busy, key);
  auto f = std::make_shared<LeaseFence>();
  f->name = name;
  f->key = key;
  f->shared = shared;
  f->pid = ::getpid();
  f->host = this_host();
  f->since_ms = now_ms;
  auto row = conn_->exec(
      fmt::format("record holder of lease {}", name),
      "INSERT INTO leases(name, pid, host, since, heartbeat_at, backend_pid) "
      "VALUES($1, $2, $3, $4, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, pg_backend_pid()) "
      "ON CONFLICT(name) DO UPDATE SET pid = excluded.pid, host = excluded.host, since = excluded.since, "
      "heartbeat_at = excluded.heartbeat_at, backend_pid = excluded.backend_pid RETURNING backend_pid",
      Params()(name)(f->pid)(f->host)(now_ms));
  if (!row.ok()) {
    // The session lives on (other leases): the lock must not outlive this failed take.
    if (!conn_->ok()) {
      lose(row.error().message());
    } else {
      (void)conn_->exec("release lease", shared ? "SELECT pg_advisory_unlock_shared($1::bigint)"
                                                : "SELECT pg_advisory_unlock($1::bigint)",
                        Params()(key));
    }
    return std::move(row).error();
  }
  f->backend_pid = row->i64(0, 0);
  held_[name] = f;
  return f;
}

Error LeaseSession::holder_conflict(const std::string& name, const std::string& busy, int64_t key) {
  // The holder's row, if the holder's session really holds the lock (a row
  // left by an earlier holder, or not yet rewritten by this one, is not it).
  const auto ukey = static_cast<uint64_t>(key);
  auto h = conn_->exec(
      fmt::format("read holder of lease {}", name),
      "SELECT l.pid, l.host, l.since FROM leases l JOIN pg_locks k ON k.pid = l.backend_pid "
      "WHERE l.name = $1 AND k.locktype = 'advisory' AND k.granted AND k.objsubid = 1 "
      "AND k.classid = $2::bigint::oid AND k.objid = $3::bigint::oid "
      "AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      Params()(name)(static_cast<int64_t>(ukey >> 32))(static_cast<int64_t>(ukey & 0xffffffffu)));
  if (!h.ok()) {
    if (!conn_->ok()) lose(h.error().message());
    return std::move(h).error();
  }
  if (h->size() == 0) return Error::conflict(fmt::format("{} (it has not recorded who it is yet)", busy));
  return Error::conflict(fmt::format("{}: pid {} on host {} since {}", busy, h->i64(0, 0), printable(h->text(0, 1)),
                                     format_time_ms(h->i64(0, 2))));
}

void LeaseSession::release(const std::shared_ptr<LeaseFence>& fence) {
  std::lock_guard lock(mu_);
  auto it = held_.find(fence->name);
  // Not there, or another lease object's: this one was lost with an earlier connection.
  if (it == held_.end() || it->second != fence) return;
  held_.erase(it);
  if (!conn_ || !conn_->ok()) return;
  auto r = conn_->exec(fmt::format("release lease {}", fence->name),
                       fence->shared ? "SELECT pg_advisory_unlock_shared($1::bigint)"
                                     : "SELECT pg_advisory_unlock($1::bigint)",
                       Params()(fence->key));
  if (!r.ok() && !conn_->ok()) lose(r.error().message());
}

void LeaseSession::heartbeat_loop() {
  std::unique_lock lock(mu_);
  const auto every = std::chrono::milliseconds(std::max<int64_t>(options_.lease_heartbeat_ms, 1));
  while (!cv_.wait_for(lock, every, [this] { return stop_; }))
    if (conn_ && !held_.empty()) beat();
}

void LeaseSession::beat() {
  // Every held lease's row, in one statement: name = ANY('{"move-1","move-2"}').
  std::string names = "{";
  for (const auto& [name, f] : held_) {
    if (names.size() > 1) names += ',';
    names += '"';
    for (char c : name) {
      if (c == '"' || c == '\\') names += '\\';
      names += c;
    }
    names += '"';
  }
  names += '}';
  // statement_timestamp(): the server's time of this beat, the same for every row.
  auto r = conn_->exec("heartbeat of leases",
                       "UPDATE leases SET heartbeat_at = (extract(epoch FROM statement_timestamp()) * 1000)::bigint "
                       "WHERE backend_pid = pg_backend_pid() AND name = ANY($1::text[])",
                       Params()(names));
  if (!r.ok() && !conn_->ok()) {
    lose(r.error().message());
  } else if (!r.ok()) {
    // The session (and so its locks) lives; only the rows were not renewed.
    if (!beat_failing_) spdlog::error("{} (the leases are held; their rows were not renewed)", r.error().message());
    beat_failing_ = true;
  } else {
    beat_failing_ = false;
  }
}

void LeaseSession::lose(const std::string& why) {
  std::string names;
  for (const auto& [name, f] : held_) {
    f->lost = true;
    if (!names.empty()) names += ", ";
    names += name;
  }
  if (!held_.empty())
    spdlog::error("{}: the lease session is lost, and with it {} lease(s): {}; writes of their moves are refused "
                  "from now on, and another process may take them over",
                  why, held_.size(), names);
  held_.clear();
  conn_.reset();
  beat_failing_ = false;
}

}  // namespace pg_detail

namespace {

using pg_detail::LeaseFence;
using pg_detail::LeaseSession;

// A lease handed out: released (its key unlocked on its session) when
// destroyed, on any thread. It keeps its session alive.
template <typename Lease>
class PgLease final : public Lease {
 public:
  PgLease(std::shared_ptr<LeaseSession> session, std::shared_ptr<LeaseFence> fence)
      : session_(std::move(session)), fence_(std::move(fence)) {}
  ~PgLease() override { session_->release(fence_); }

 private:
  std::shared_ptr<LeaseSession> session_;
  std::shared_ptr<LeaseFence> fence_;  // the journal's writes check it while the lease lives
};

}  // namespace

PgJournal::PgJournal(PgJournalOptions options, Clock& clock) : options_(std::move(options)), clock_(clock) {}
PgJournal::~PgJournal() = default;

Result<std::unique_ptr<PgJournal>> PgJournal::open(const PgJournalOptions& options, Clock& clock) {
  std::unique_ptr<PgJournal> j(new PgJournal(options, clock));
  MS_CHECK(j->connect());
  MS_CHECK(j->check_clock());
  MS_CHECK(j->migrate());
  return j;
}

Result<std::string> PgJournal::check(const PgJournalOptions& options, Clock& clock) {
  PgJournal j(options, clock);
  MS_CHECK(j.connect());
  MS_CHECK(j.check_clock());
  MS_CHECK(j.read_version());
  return fmt::format("{}: schema {} (this build: {})", j.server_, j.version_, kLatest);
}

Status PgJournal::connect() {
  MS_CHECK_CTX(load_libpq(), "journal");
  server_ = MS_TRY(describe_server(options_.url));
  conn_ = MS_TRY(Connection::open(options_, server_));
  return {};
}

Status PgJournal::check_clock() {
  if (options_.max_clock_skew_ms <= 0) return {};
  const int64_t t0 = clock_.monotonic_ms();
  auto r = MS_TRY(conn_->exec("read the server's clock", "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"));
  const int64_t round_trip = clock_.monotonic_ms() - t0;
  const int64_t skew = clock_.now_ms() - r.i64(0, 0);
  // The server read its clock somewhere within the round trip.
  if (std::llabs(skew) <= options_.max_clock_skew_ms + round_trip) return {};
  return Error::invalid(fmt::format(
      "journal {}: this host's clock is {:.1f} s {} the database server's (more than max_clock_skew {:.1f} s): "
      "lease and step times of several controllers would not compare; fix the clocks (NTP)",
      server_, std::llabs(skew) / 1000.0, skew > 0 ? "ahead of" : "behind", options_.max_clock_skew_ms / 1000.0));
}

// Read without creating anything: a user who may only read still opens it.
Status PgJournal::read_version() {
  auto r = MS_TRY(conn_->exec("read schema version", "SELECT to_regclass('schema_version') IS NOT NULL"));
  if (r.text(0, 0) == "t") {
    auto v = MS_TRY(conn_->exec("read schema version", "SELECT COALESCE(MAX(version), 0) FROM schema_version"));
    version_ = static_cast<int>(v.i64(0, 0));
  }
  return {};
}

Status PgJournal::migrate() {
  MS_CHECK(read_version());
  if (version_ > kLatest)
    return Error::unsupported(fmt::format(
        "journal {} has schema version {}, newer than this mailshard supports ({}); use a newer mailshard", server_,
        version_, kLatest));
  while (version_ < kLatest) {
    MS_CHECK(conn_->exec("migrate", "BEGIN"));
    auto step = [&]() -> Result<int> {
      // One migrator at a time across hosts; re-read under the lock.
      MS_TRY(conn_->exec("migrate", "SELECT pg_advisory_xact_lock($1::bigint)", Params()(lock_key("migrate"))));
      MS_TRY(conn_->exec("migrate", "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)"));
      auto r = MS_TRY(conn_->exec("migrate", "SELECT COALESCE(MAX(version), 0) FROM schema_version"));
      int v = static_cast<int>(r.i64(0, 0));
      if (v > kLatest)
        return Error::unsupported(fmt::format(
            "journal {} has schema version {}, newer than this mailshard supports ({}); use a newer mailshard",
            server_, v, kLatest));
      if (v == kLatest) return v;
      MS_TRY(conn_->run(fmt::format("migrating to schema {}", v + 1), kMigrations[v]));
      MS_TRY(conn_->exec("migrate", "DELETE FROM schema_version"));
      MS_TRY(conn_->exec("migrate", "INSERT INTO schema_version(version) VALUES($1)", Params()(int64_t{v + 1})));
      return v + 1;
    };
    auto v = step();
    if (!v.ok()) {
      (void)conn_->exec("migrate", "ROLLBACK");
      return std::move(v).error();
    }
    MS_CHECK(conn_->exec("migrate", "COMMIT"));
    version_ = *v;
  }
  return {};
}

Result<int64_t> PgJournal::begin_run(const std::string& kind, const std::string& args_json) {
  auto r = MS_TRY(conn_->exec("begin run",
                              "INSERT INTO runs(kind, started_at, status, args) VALUES($1, $2, 'running', $3) RETURNING id",
                              Params()(kind)(clock_.now_ms())(args_json)));
  return r.i64(0, 0);
}

Status PgJournal::finish_run(int64_t run_id, const std::string& status, const std::string& summary_json) {
  MS_TRY(conn_->exec("finish run", "UPDATE runs SET finished_at = $1, status = $2, summary = $3 WHERE id = $4",
                     Params()(clock_.now_ms())(status)(summary_json)(run_id)));
  return {};
}

Result<std::vector<RunRecord>> PgJournal::list_runs(int limit) {
  Params p;
  std::string sql = fmt::format("SELECT {} FROM runs ORDER BY id DESC", kRunColumns);
  if (limit > 0) {
    sql += " LIMIT $1";
    p(int64_t{limit});
  }
  auto r = MS_TRY(conn_->exec("list runs", sql, p));
  std::vector<RunRecord> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(read_run(r, i));
  return out;
}

Result<std::vector<RunRecord>> PgJournal::running_runs(const std::string& kind) {
  auto r = MS_TRY(conn_->exec(
      "list running runs",
      fmt::format("SELECT {} FROM runs WHERE kind = $1 AND status = 'running' ORDER BY id DESC", kRunColumns),
      Params()(kind)));
  std::vector<RunRecord> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(read_run(r, i));
  return out;
}

Status PgJournal::request_stop(int64_t run_id) {
  const std::string what = fmt::format("request stop of run {}", run_id);
  auto r = MS_TRY(conn_->exec(
      what, "UPDATE runs SET stop_requested_at = COALESCE(stop_requested_at, $1) WHERE id = $2 AND status = 'running'",
      Params()(clock_.now_ms())(run_id)));
  if (r.changed() == 1) return {};
  auto q = MS_TRY(conn_->exec(what, "SELECT status FROM runs WHERE id = $1", Params()(run_id)));
  if (q.size() == 0) return Error::not_found(fmt::format("run {} is not in the journal", run_id));
  return Error::conflict(fmt::format("run {} has already finished ({})", run_id, q.text(0, 0)));
}

Result<bool> PgJournal::stop_requested(int64_t run_id) {
  auto r = MS_TRY(conn_->exec(fmt::format("read stop request of run {}", run_id),
                              "SELECT stop_requested_at IS NOT NULL FROM runs WHERE id = $1", Params()(run_id)));
  if (r.size() == 0) return Error::not_found(fmt::format("run {} is not in the journal", run_id));
  return r.text(0, 0) == "t";
}

Result<int64_t> PgJournal::record_snapshot(int64_t run_id, int64_t taken_at_ms, const std::string& path,
                                           const std::string& summary_json) {
  Params p;
  if (run_id > 0) p(run_id);
  else p.null();
  p(taken_at_ms)(path)(summary_json);
  auto r = MS_TRY(conn_->exec(
      "record snapshot", "INSERT INTO snapshots(run_id, taken_at, path, summary) VALUES($1, $2, $3, $4) RETURNING id", p));
  return r.i64(0, 0);
}

Result<int64_t> PgJournal::store_plan(const PlanRecord& plan) {
  MS_TRY(conn_->exec("store plan",
                     "INSERT INTO plans(hash, created_at, strategy, status, plan, moves) VALUES($1, $2, $3, $4, $5, $6) "
                     "ON CONFLICT(hash) DO NOTHING",
                     Params()(plan.hash)(plan.created_at_ms ? plan.created_at_ms : clock_.now_ms())(plan.strategy)(
                         plan.status.empty() ? std::string("planned") : plan.status)(plan.plan_json)(
                         count_plan_moves(plan.plan_json))));
  auto q = MS_TRY(conn_->exec("store plan", "SELECT id FROM plans WHERE hash = $1", Params()(plan.hash)));
  if (q.size() == 0) return Error::internal(fmt::format("journal {}: store plan: the plan vanished", server_));
  return q.i64(0, 0);
}

Result<PlanRecord> PgJournal::find_plan(const std::string& hash) {
  if (hash.size() < 8)
    return Error::invalid(fmt::format("plan hash '{}' is too short (give at least 8 hex digits)", printable(hash)));
  auto r = MS_TRY(conn_->exec("find plan",
                              fmt::format("SELECT {} FROM plans WHERE hash = $1 OR left(hash, length($1)) = $1 "
                                          "ORDER BY (hash = $1) DESC LIMIT 2",
                                          plan_columns("plan")),
                              Params()(hash)));
  if (r.size() == 0) return Error::not_found(fmt::format("no plan with hash '{}' in the journal", printable(hash)));
  PlanRecord first = read_plan(r, 0);
  if (r.size() > 1 && first.hash != hash)
    return Error::invalid(fmt::format("plan hash prefix '{}' is ambiguous", printable(hash)));
  return first;
}

Status PgJournal::set_plan_status(int64_t plan_id, const std::string& status) {
  MS_TRY(conn_->exec("set plan status", "UPDATE plans SET status = $1 WHERE id = $2", Params()(status)(plan_id)));
  return {};
}

Status PgJournal::approve_plan(int64_t plan_id, const std::string& by) {
  if (by.empty()) return Error::invalid(fmt::format("approve plan {}: who approves it must be named", plan_id));
  auto r = MS_TRY(conn_->exec(fmt::format("approve plan {}", plan_id),
                              "UPDATE plans SET approved_at = COALESCE(approved_at, $1), "
                              "approved_by = COALESCE(approved_by, $2) WHERE id = $3",
                              Params()(clock_.now_ms())(by)(plan_id)));
  if (r.changed() == 0) return Error::not_found(fmt::format("plan {} is not in the journal", plan_id));
  return {};
}

Result<std::vector<PlanRecord>> PgJournal::list_plans(int limit) {
  Params p;
  std::string sql = fmt::format("SELECT {} FROM plans ORDER BY created_at DESC, id DESC", plan_columns("''"));
  if (limit > 0) {
    sql += " LIMIT $1";
    p(int64_t{limit});
  }
  auto r = MS_TRY(conn_->exec("list plans", sql, p));
  std::vector<PlanRecord> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(read_plan(r, i));
  return out;
}

Result<std::optional<PlanRecord>> PgJournal::latest_plan(bool approved_only) {
  auto r = MS_TRY(conn_->exec("latest plan",
                              fmt::format("SELECT {} FROM plans WHERE $1 = 0 OR approved_at IS NOT NULL "
                                          "ORDER BY created_at DESC, id DESC LIMIT 1",
                                          plan_columns("plan")),
                              Params()(int64_t{approved_only ? 1 : 0})));
  if (r.size() == 0) return std::optional<PlanRecord>();
  return std::optional<PlanRecord>(read_plan(r, 0));
}

Result<int64_t> PgJournal::claim_move(const MoveRecord& m) {
  // Look first (a refused claim then takes no id); the unique index decides
  // when two hosts insert at once.
  auto active = [&]() -> Result<std::optional<Error>> {
    auto q = MS_TRY(conn_->exec("claim move", R"(SELECT id, state FROM moves WHERE "user" = $1 AND active = 1)",
                                Params()(m.user)));
    if (q.size() == 0) return std::optional<Error>();
    return std::optional<Error>(Error::conflict(fmt::format("user {} is already being moved (move {}, state {})",
                                                            printable(m.user), q.i64(0, 0), q.text(0, 1))));
  };
  const bool claims = !is_terminal(m.state);
  if (claims)
    if (auto e = MS_TRY(active())) return std::move(*e);
  const int64_t now = clock_.now_ms();
  auto r = conn_->exec(
      "claim move",
      R"(INSERT INTO moves(plan_id, "user", dn, from_server, to_server, from_home, to_home, state, step, )"
      "bytes_planned, started_at, updated_at, error, detail, active) "
      "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
      Params()(m.plan_id)(m.user)(m.dn)(m.from_server)(m.to_server)(m.from_home)(m.to_home)(
          std::string(move_state_name(m.state)))(m.step)(m.bytes_planned)(m.started_at_ms ? m.started_at_ms : now)(now)(
          m.error)(m.detail_json)(int64_t{claims ? 1 : 0}));
  if (r.ok()) return r->i64(0, 0);
  // Another host claimed the user between the look and the insert.
  if (r.error().code() == ErrorCode::kConflict && claims)
    if (auto e = MS_TRY(active())) return std::move(*e);
  return std::move(r).error();
}

Result<SlotClaim> PgJournal::claim_move_in_slots(const MoveRecord& m, const SlotLimits& limits) {
  MS_CHECK(check_slot_claim(m));
  const std::string what = fmt::format("claim move of {} in slots", printable(m.user));
  MS_CHECK(conn_->exec(what, "BEGIN"));
  auto claim = [&]() -> Result<SlotClaim> {
    // Every controller's slot claims, one at a time (released at COMMIT or
    // ROLLBACK): the counts read below hold until the insert commits.
    MS_TRY(conn_->exec(what, "SELECT pg_advisory_xact_lock($1::bigint)", Params()(lock_key("claims"))));
    auto q = MS_TRY(conn_->exec(what, R"(SELECT id, state FROM moves WHERE "user" = $1 AND active = 1)",
                                Params()(m.user)));
    if (q.size() > 0)
      return SlotClaim{ClaimOutcome::kUserBusy, q.i64(0, 0),
                       fmt::format("user {} is already being moved (move {}, state {})", printable(m.user), q.i64(0, 0),
                                   q.text(0, 1))};
    if (m.plan_id > 0) {
      auto d = MS_TRY(conn_->exec(what,
                                  R"(SELECT id FROM moves WHERE "user" = $1 AND plan_id = $2 )"
                                  "AND state IN ('done', 'purged') LIMIT 1",
                                  Params()(m.user)(m.plan_id)));
      if (d.size() > 0)
        return SlotClaim{ClaimOutcome::kDoneAlready, d.i64(0, 0),
                         fmt::format("user {} was moved by move {} of this plan already", printable(m.user),
                                     d.i64(0, 0))};
    }
    auto c = MS_TRY(conn_->exec(what,
                                "SELECT count(*) FILTER (WHERE from_server = $1), count(*) FILTER (WHERE to_server = $2) "
                                "FROM moves WHERE active = 1",
                                Params()(m.from_server)(m.to_server)));
    const int64_t active_out = c.i64(0, 0), active_in = c.i64(0, 1);
    if (active_out >= limits.out || active_in >= limits.in)
      return slots_full(m, limits, active_out, active_in);
    const int64_t now = clock_.now_ms();
    auto r = MS_TRY(conn_->exec(
        what,
        R"(INSERT INTO moves(plan_id, "user", dn, from_server, to_server, from_home, to_home, state, step, )"
        "bytes_planned, started_at, updated_at, error, detail, active) "
        "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1) RETURNING id",
        Params()(m.plan_id)(m.user)(m.dn)(m.from_server)(m.to_server)(m.from_home)(m.to_home)(
            std::string(move_state_name(m.state)))(m.step)(m.bytes_planned)(m.started_at_ms ? m.started_at_ms : now)(
            now)(m.error)(m.detail_json)));
    return SlotClaim{ClaimOutcome::kClaimed, r.i64(0, 0), ""};
  };
  auto out = claim();
  if (!out.ok() || out->outcome != ClaimOutcome::kClaimed) {
    (void)conn_->exec(what, "ROLLBACK");
    return out;
  }
  MS_CHECK(conn_->exec(what, "COMMIT"));
  return out;
}

Status PgJournal::update_move(const MoveRecord& m) {
  Params p;
  p(std::string(move_state_name(m.state)))(m.step)(m.from_home)(m.to_home)(m.bytes_planned)(m.bytes_transferred)(
      m.lockout_ms)(m.frozen_at_ms)(m.thawed_at_ms)(m.flipped_at_ms)(m.freeze_expires_at_ms)(m.finished_at_ms)(
      clock_.now_ms())(m.error)(m.detail_json)(int64_t{is_terminal(m.state) ? 0 : 1})(m.dn)(m.id);
  const std::string fence = MS_TRY(fence_clause(m.id, p, 19));
  const std::string what = fmt::format("update move {}", m.id);
  auto r = MS_TRY(conn_->exec(
      what,
      "UPDATE moves SET state=$1, step=$2, from_home=$3, to_home=$4, bytes_planned=$5, bytes_transferred=$6, "
      "lockout_ms=$7, frozen_at=$8, thawed_at=$9, flipped_at=$10, freeze_expires_at=$11, finished_at=$12, "
      "updated_at=$13, error=$14, detail=$15, active=$16, dn=$17 WHERE id=$18" + fence,
      p));
  if (r.changed() == 1) {
    if (is_terminal(m.state)) notify_move_ended(m.id);
    return {};
  }
  auto q = MS_TRY(conn_->exec(what, "SELECT 1 FROM moves WHERE id = $1", Params()(m.id)));
  if (q.size() == 0) return Error::not_found(fmt::format("move {} is not in the journal", m.id));
  return fenced_out(m.id);
}

void PgJournal::notify_move_ended(int64_t move_id) {
  // Its servers as the journal has them; delivered when this commits. A lost
  // notification costs a watcher one retry interval, nothing more.
  auto r = conn_->exec(fmt::format("announce the end of move {}", move_id),
                       "SELECT pg_notify('mailshard_moves', json_build_object('id', id, 'from', "
                       "COALESCE(from_server, ''), 'to', COALESCE(to_server, ''))::text) FROM moves WHERE id = $1",
                       Params()(move_id));
  if (!r.ok()) spdlog::debug("{}", r.error().message());
}

namespace {

// LISTEN mailshard_moves on a connection of its own; an eventfd wakes a wait.
class PgMoveEndWatcher final : public MoveEndWatcher {
 public:
  PgMoveEndWatcher(std::unique_ptr<Connection> conn, int wake_fd) : conn_(std::move(conn)), wake_fd_(wake_fd) {}
  ~PgMoveEndWatcher() override { ::close(wake_fd_); }

  Result<std::vector<EndedMove>> wait(int64_t timeout_ms) override {
    std::vector<EndedMove> out;
    MS_CHECK(drain(out));
    if (!out.empty()) return out;
    pollfd fds[2] = {{PQsocket(conn_->raw()), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(std::clamp<int64_t>(timeout_ms, 0, INT32_MAX)));
    if (n < 0 && errno != EINTR) return Error::from_errno(errno, fmt::format("journal {}: watch moves", conn_->server()));
    if (n > 0 && (fds[1].revents & POLLIN)) {
      uint64_t v;
      (void)!::read(wake_fd_, &v, sizeof v);
    }
    MS_CHECK(drain(out));
    return out;
  }

  void wake() override {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

 private:
  // Reads what the server sent and takes the notifications out of it.
  Status drain(std::vector<EndedMove>& out) {
    if (PQconsumeInput(conn_->raw()) == 0 || !conn_->ok())
      return Error::unavailable(
          fmt::format("journal {}: watch moves: {}", conn_->server(), one_line(PQerrorMessage(conn_->raw()))));
    while (PGnotify* n = PQnotifies(conn_->raw())) {
      auto j = nlohmann::json::parse(n->extra ? n->extra : "", nullptr, false);
      PQfreemem(n);
      if (!j.is_object()) continue;
      EndedMove e;
      e.id = j.value("id", int64_t{0});
      e.from_server = j.value("from", std::string());
      e.to_server = j.value("to", std::string());
      out.push_back(std::move(e));
    }
    return {};
  }

  std::unique_ptr<Connection> conn_;
  int wake_fd_;
};

}  // namespace

Result<std::unique_ptr<MoveEndWatcher>> PgJournal::watch_move_ends() {
  auto conn = MS_TRY(Connection::open(options_, server_).context("watch moves"));
  // A new session would not be listening.
  conn->never_reconnect();
  MS_CHECK(conn->exec("watch moves", "LISTEN mailshard_moves"));
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return Error::from_errno(errno, "watch moves: eventfd");
  return std::unique_ptr<MoveEndWatcher>(new PgMoveEndWatcher(std::move(conn), fd));
}

Result<MoveRecord> PgJournal::get_move(int64_t id) {
  auto r = MS_TRY(
      conn_->exec("get move", fmt::format("SELECT {} FROM moves WHERE id = $1", kMoveColumns), Params()(id)));
  if (r.size() == 0) return Error::not_found(fmt::format("move {} is not in the journal", id));
  return read_move(r, 0);
}

Result<std::vector<MoveRecord>> PgJournal::list_moves(const MoveFilter& f) {
  std::string sql = fmt::format("SELECT {} FROM moves WHERE true", kMoveColumns);
  Params p;
  int n = 0;
  if (f.user) {
    sql += fmt::format(R"( AND "user" = ${})", ++n);
    p(*f.user);
  }
  if (f.id) {
    sql += fmt::format(" AND id = ${}", ++n);
    p(*f.id);
  }
  if (f.active_only) sql += " AND active = 1";
  sql += " ORDER BY id DESC";
  if (f.limit > 0) sql += fmt::format(" LIMIT {}", f.limit);
  auto r = MS_TRY(conn_->exec("list moves", sql, p));
  std::vector<MoveRecord> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(MS_TRY(read_move(r, i)));
  return out;
}

std::shared_ptr<LeaseSession> PgJournal::move_lease_session() {
  if (move_leases_ && move_leases_->owner_pid() != ::getpid()) {
    // A forked child's copy of this journal: the session is its parent's
    // (their shared socket, a thread the child does not have). Left alone,
    // never destroyed here; the child leases on a session of its own.
    new std::shared_ptr<LeaseSession>(std::move(move_leases_));
  }
  if (!move_leases_) move_leases_ = std::make_shared<LeaseSession>(options_, server_);
  return move_leases_;
}

Result<std::unique_ptr<MoveLease>> PgJournal::lease_move(int64_t move_id) {
  auto session = move_lease_session();
  auto fence = MS_TRY(session->take(fmt::format("move-{}", move_id),
                                    fmt::format("move {} is being run by another process", move_id), clock_.now_ms(),
                                    LeaseSession::Mode::kExclusive));
  fences_[move_id] = fence;
  return std::unique_ptr<MoveLease>(new PgLease<MoveLease>(std::move(session), std::move(fence)));
}

Result<std::unique_ptr<RunLease>> PgJournal::take_run_lease(const std::string& name, const std::string& busy,
                                                            bool shared) {
  // A session of its own: run leases of one process conflict like those of
  // two processes, and a shared holder never turns exclusive by stacking.
  auto session = std::make_shared<LeaseSession>(options_, server_);
  auto fence = MS_TRY(session->take(name, busy, clock_.now_ms(),
                                    shared ? LeaseSession::Mode::kShared : LeaseSession::Mode::kExclusive));
  return std::unique_ptr<RunLease>(new PgLease<RunLease>(std::move(session), std::move(fence)));
}

Result<std::string> PgJournal::fence_clause(int64_t move_id, Params& p, int first) {
  auto it = fences_.find(move_id);
  if (it == fences_.end()) return std::string();
  auto f = it->second.lock();
  if (!f) {  // the lease was released: writes need no fence any more
    fences_.erase(it);
    return std::string();
  }
  if (f->lost) return fenced_out(move_id);
  const auto ukey = static_cast<uint64_t>(f->key);
  p(static_cast<int64_t>(ukey >> 32))(static_cast<int64_t>(ukey & 0xffffffffu))(f->backend_pid)(f->name)(f->pid)(f->host);
  return fmt::format(
      " AND EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1 "
      "AND k.classid = ${0}::bigint::oid AND k.objid = ${1}::bigint::oid AND k.pid = ${2} "
      "AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())) "
      "AND EXISTS (SELECT 1 FROM leases l WHERE l.name = ${3} AND l.backend_pid = ${2} AND l.pid = ${4} "
      "AND l.host = ${5})",
      first, first + 1, first + 2, first + 3, first + 4, first + 5);
}

Error PgJournal::fenced_out(int64_t move_id) const {
  return Error::conflict(fmt::format("move {}: this process no longer holds the move's lease (the database ended its "
                                     "session); another process may be running the move, so nothing was written",
                                     move_id));
}

Result<std::unique_ptr<RunLease>> PgJournal::lease_run(const std::string& kind) {
  if (kind.empty() || kind.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
    return Error::invalid(fmt::format("run kind '{}' must be lower-case letters, digits, '_' or '-'", printable(kind)));
  return take_run_lease(fmt::format("run-{}", kind), fmt::format("another {} is running", kind), false);
}

Result<std::unique_ptr<RunLease>> PgJournal::lease_run_shared(const std::string& kind) {
  if (kind.empty() || kind.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
    return Error::invalid(fmt::format("run kind '{}' must be lower-case letters, digits, '_' or '-'", printable(kind)));
  return take_run_lease(fmt::format("run-{}", kind), fmt::format("another {} is running", kind), true);
}

Status PgJournal::log_step(int64_t move_id, const std::string& step, StepPhase phase, const std::string& detail) {
  Params p;
  p(move_id)(step)(std::string(step_phase_name(phase)))(clock_.now_ms())(detail);
  const std::string fence = MS_TRY(fence_clause(move_id, p, 6));
  auto r = MS_TRY(conn_->exec(fmt::format("log step {} of move {}", step, move_id),
                              "INSERT INTO move_steps(move_id, step, phase, at, detail) "
                              "SELECT $1::bigint, $2, $3, $4::bigint, $5 WHERE true" + fence,
                              p));
  if (r.changed() == 0) return fenced_out(move_id);
  return {};
}

Result<std::vector<StepRecord>> PgJournal::list_steps(int64_t move_id) {
  auto r = MS_TRY(conn_->exec(
      "list steps",
      "SELECT id, move_id, step, phase, at, COALESCE(detail, '') FROM move_steps WHERE move_id = $1 ORDER BY id",
      Params()(move_id)));
  std::vector<StepRecord> out;
  for (int i = 0; i < r.size(); ++i) {
    std::string ph = r.text(i, 3);
    StepPhase phase = ph == "end" ? StepPhase::kEnd : ph == "error" ? StepPhase::kError : StepPhase::kBegin;
    out.push_back({r.i64(i, 0), r.i64(i, 1), r.text(i, 2), phase, r.i64(i, 4), r.text(i, 5)});
  }
  return out;
}

Status PgJournal::put_blob(int64_t move_id, const std::string& key, const std::string& value) {
  Params p;
  p(move_id)(key).bytes(value);
  const std::string fence = MS_TRY(fence_clause(move_id, p, 4));
  auto r = MS_TRY(conn_->exec(fmt::format("store {} of move {}", key, move_id),
                              "INSERT INTO move_blobs(move_id, key, value) SELECT $1::bigint, $2, $3::bytea WHERE true" + fence +
                                  " ON CONFLICT(move_id, key) DO UPDATE SET value = excluded.value",
                              p));
  if (r.changed() == 0) return fenced_out(move_id);
  return {};
}

Result<std::optional<std::string>> PgJournal::get_blob(int64_t move_id, const std::string& key) {
  // Binary results: the value comes back as its bytes.
  auto r = MS_TRY(conn_->exec("get blob", "SELECT value FROM move_blobs WHERE move_id = $1 AND key = $2",
                              Params()(move_id)(key), 1));
  if (r.size() == 0) return std::optional<std::string>();
  return std::optional<std::string>(r.text(0, 0));
}

}  // namespace mailshard
