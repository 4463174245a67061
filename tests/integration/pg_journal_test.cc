// PgJournal against the lab's PostgreSQL: the Journal contract
// (tests/unit/journal/journal_contract_test.cc, the same tests SQLite passes)
// and the faults only a database server has: down at start, lost mid-run,
// clocks apart, a refused login, a newer schema, heartbeats.
//
// Each test gets a database of its own (CREATE DATABASE, dropped at the end).
#include "journal/pg_journal.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "journal/open_journal.h"
#include "journal/pq_lazy.h"
#include "tests/support/lab.h"
#include "tests/unit/journal/journal_contract.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string lab_password() { return read_text(Lab::get().env("PG_PASSWORD_FILE")); }

// "postgresql://mailshard@127.0.0.1:PORT/DB"
std::string url_of(const std::string& db) {
  return "postgresql://mailshard@127.0.0.1:" + Lab::get().env("PG_PORT") + "/" + db;
}

// A superuser session on database `db` (default: the lab's "mailshard"), for
// setting up and breaking things.
class Admin {
 public:
  explicit Admin(const std::string& db = "mailshard") {
    if (!load_libpq().ok()) throw LabError("cannot load libpq");
    const std::string conninfo = url_of(db) + "?password=" + lab_password();
    c_ = PQconnectdb(conninfo.c_str());
    if (PQstatus(c_) != CONNECTION_OK) throw LabError("admin connect: " + std::string(PQerrorMessage(c_)));
  }
  ~Admin() { PQfinish(c_); }
  // Runs sql; returns the first value of the first row ("" if none).
  std::string sql(const std::string& q) {
    PGresult* r = PQexec(c_, q.c_str());
    auto st = PQresultStatus(r);
    std::string out = st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    std::string err = PQresultErrorMessage(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw LabError(q + ": " + err);
    return out;
  }

 private:
  PGconn* c_;
};

std::atomic<int> databases{0};

std::string fresh_database(const std::string& test) {
  std::string db = "jt_" + std::to_string(::getpid()) + "_" + std::to_string(++databases);
  (void)test;
  Admin().sql("CREATE DATABASE " + db);
  return db;
}

void drop_database(const std::string& db) {
  // FORCE: sessions of killed test children may still be on their way out.
  Admin().sql("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
}

PgJournalOptions options_for(const std::string& db) {
  PgJournalOptions o;
  o.url = url_of(db);
  o.password = lab_password();
  o.lease_heartbeat_ms = 200;
  return o;
}

class PgBackend final : public JournalBackend {
 public:
  void fresh(const std::string& test) override { db_ = fresh_database(test); }
  Result<std::unique_ptr<Journal>> open(Clock& clock) override {
    auto j = PgJournal::open(options_for(db_), clock);
    if (!j.ok()) return std::move(j).error();
    return std::unique_ptr<Journal>(std::move(*j));
  }
  // Real time: the journal compares this host's clock with the server's.
  int64_t clock_start_ms() const override { return SystemClock().now_ms(); }
  void drop() override { drop_database(db_); }

 private:
  std::string db_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, JournalContractTest,
                         ::testing::Values(JournalBackendParam{"postgres", [] { return std::make_unique<PgBackend>(); }}),
                         backend_name);

class PgJournalTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = fresh_database(::testing::UnitTest::GetInstance()->current_test_info()->name()); }
  void TearDown() override { drop_database(db_); }
  Result<std::unique_ptr<PgJournal>> open(PgJournalOptions o) { return PgJournal::open(o, clock_); }
  Result<std::unique_ptr<PgJournal>> open() { return open(options_for(db_)); }
  FakeClock clock_{SystemClock().now_ms()};
  std::string db_;
};

TEST_F(PgJournalTest, CreatesTheCurrentSchema) {
  auto j = open();
  ASSERT_TRUE(j.ok()) << j.error().message();
  EXPECT_EQ((*j)->schema_version(), PgJournal::kSchemaVersion);
  EXPECT_EQ((*j)->server(), "postgresql://127.0.0.1:" + Lab::get().env("PG_PORT") + "/" + db_);
  EXPECT_EQ(Admin(db_).sql("SELECT version FROM schema_version"), "2");
}

// Two controllers starting at once on an empty database: one migrates, the
// other waits for it, both end up on the current schema.
TEST_F(PgJournalTest, ControllersStartingAtOnceMigrateOnce) {
  std::vector<Result<std::unique_ptr<PgJournal>>> got;
  for (int i = 0; i < 4; ++i) got.emplace_back(Error::internal("not opened"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { got[i] = open(); });
  for (auto& t : threads) t.join();
  for (auto& j : got) {
    ASSERT_TRUE(j.ok()) << j.error().message();
    EXPECT_EQ((*j)->schema_version(), PgJournal::kSchemaVersion);
  }
}

TEST_F(PgJournalTest, RefusesANewerSchemaUntouched) {
  { ASSERT_TRUE(open().ok()); }
  Admin(db_).sql("UPDATE schema_version SET version = 99");
  auto j = open();
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(j.error().message(), "journal postgresql://127.0.0.1:" + Lab::get().env("PG_PORT") + "/" + db_ +
                                     " has schema version 99, newer than this mailshard supports (2); use a newer mailshard");
}

// Nothing listens there: one line, kUnavailable, naming the server, never the password.
TEST_F(PgJournalTest, ServerDownAtStartIsOneLine) {
  PgJournalOptions o = options_for(db_);
  const std::string port = std::to_string(std::stoi(Lab::get().env("PG_PORT")) + 1);  // B+433: nothing there
  o.url = "postgresql://mailshard@127.0.0.1:" + port + "/" + db_;
  auto j = open(o);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(j.error().message(), StartsWith("journal postgresql://127.0.0.1:" + port + "/" + db_ + ": connect: "));
  EXPECT_THAT(j.error().message(), HasSubstr("Connection refused"));
  EXPECT_THAT(j.error().message(), Not(HasSubstr("\n")));
  EXPECT_THAT(j.error().message(), Not(HasSubstr(lab_password())));
}

TEST_F(PgJournalTest, AWrongPasswordIsAPermissionErrorThatDoesNotShowIt) {
  PgJournalOptions o = options_for(db_);
  o.password = "not-the-password-4711";
  auto j = open(o);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().code(), ErrorCode::kPermission);
  EXPECT_THAT(j.error().message(), HasSubstr("password authentication failed"));
  EXPECT_THAT(j.error().message(), Not(HasSubstr("4711")));
  EXPECT_THAT(j.error().message(), Not(HasSubstr("\n")));
}

// The server goes away under a running controller (its session is
// terminated and no new one is let in): each call fails in one line with
// kUnavailable and changes nothing; once the server is back, the next call
// reconnects and works.
TEST_F(PgJournalTest, ServerLostMidRunThenBack) {
  auto j = open();
  ASSERT_TRUE(j.ok()) << j.error().message();
  auto id = (*j)->claim_move(move_of("alice"));
  ASSERT_TRUE(id.ok()) << id.error().message();
  Admin a;
  a.sql("ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS false");
  a.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db_ + "'");
  MoveRecord update = move_of("alice");
  update.id = *id;
  update.state = MoveState::kPrecopy;
  for (int i = 0; i < 2; ++i) {  // the broken connection, then a failed reconnect
    auto st = (*j)->update_move(update);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), ErrorCode::kUnavailable) << st.error().message();
    EXPECT_THAT(st.error().message(), StartsWith("journal postgresql://127.0.0.1:" + Lab::get().env("PG_PORT") + "/" +
                                                 db_ + ": update move " + std::to_string(*id) + ": "));
    EXPECT_THAT(st.error().message(), Not(HasSubstr("\n")));
  }
  a.sql("ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS true");
  auto back = (*j)->get_move(*id);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->state, MoveState::kPlanned) << "the failed update left the move as it was";
  ASSERT_TRUE((*j)->update_move(update).ok());
  EXPECT_EQ((*j)->get_move(*id)->state, MoveState::kPrecopy);
}

// A lease whose connection is cut (a dead host, as the server sees it) is
// free for another controller at once; a lease whose holder lives is not.
TEST_F(PgJournalTest, ALeaseIsFreedWhenTheServerDropsItsHolder) {
  auto first = open();
  auto second = open();
  ASSERT_TRUE(first.ok() && second.ok());
  auto id = *(*first)->claim_move(move_of("alice"));
  auto lease = (*first)->lease_move(id);
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  EXPECT_EQ((*second)->lease_move(id).error().code(), ErrorCode::kConflict);
  Admin(db_).sql("SELECT pg_terminate_backend(backend_pid) FROM leases WHERE name = 'move-" + std::to_string(id) + "'");
  Result<std::unique_ptr<MoveLease>> taken = Error::internal("not tried");
  for (int i = 0; i < 100 && !taken.ok(); ++i) {
    taken = (*second)->lease_move(id);
    if (!taken.ok()) ::usleep(50'000);
  }
  EXPECT_TRUE(taken.ok()) << taken.error().message();
}

// A controller whose lease session the server ended (a network cut, as the
// server saw it) may keep running: its writes of that move are fenced off
// once another controller can take the move over, and write nothing.
TEST_F(PgJournalTest, WritesOfAMoveWhoseLeaseWasLostAreRefused) {
  auto first = open();
  auto second = open();
  ASSERT_TRUE(first.ok() && second.ok());
  auto id = *(*first)->claim_move(move_of("alice"));
  auto lease = (*first)->lease_move(id);
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  MoveRecord m = *(*first)->get_move(id);
  m.state = MoveState::kPrecopy;
  ASSERT_TRUE((*first)->update_move(m).ok()) << "while the lease holds, writes go through";
  ASSERT_TRUE((*first)->log_step(id, "precopy", StepPhase::kBegin, "").ok());
  ASSERT_TRUE((*first)->put_blob(id, "k", "v1").ok());

  Admin(db_).sql("SELECT pg_terminate_backend(backend_pid) FROM leases WHERE name = 'move-" + std::to_string(id) + "'");
  Result<std::unique_ptr<MoveLease>> taken = Error::internal("not tried");
  for (int i = 0; i < 100 && !taken.ok(); ++i) {
    taken = (*second)->lease_move(id);
    if (!taken.ok()) ::usleep(50'000);
  }
  ASSERT_TRUE(taken.ok()) << taken.error().message();

  const std::string refused = "move " + std::to_string(id) +
                              ": this process no longer holds the move's lease (the database ended its session); "
                              "another process may be running the move, so nothing was written";
  m.state = MoveState::kFrozen;
  auto st = (*first)->update_move(m);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(st.error().message(), refused);
  EXPECT_EQ((*first)->log_step(id, "freeze", StepPhase::kBegin, "").error().message(), refused);
  EXPECT_EQ((*first)->put_blob(id, "k", "v2").error().message(), refused);
  EXPECT_EQ((*second)->get_move(id)->state, MoveState::kPrecopy);
  EXPECT_EQ((*second)->list_steps(id)->size(), 1u);
  EXPECT_EQ(**(*second)->get_blob(id, "k"), "v1");
  // The new holder writes as usual; other moves of the old one are not fenced.
  m.state = MoveState::kFrozen;
  EXPECT_TRUE((*second)->update_move(m).ok());
  auto other = *(*first)->claim_move(move_of("bob"));
  EXPECT_TRUE((*first)->log_step(other, "preflight", StepPhase::kBegin, "").ok());
}

// The holder's row carries a heartbeat the server stamps every lease_heartbeat_ms.
TEST_F(PgJournalTest, LeasesHeartbeat) {
  auto j = open();
  ASSERT_TRUE(j.ok()) << j.error().message();
  auto lease = (*j)->lease_run("rebalance");
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  Admin a(db_);
  auto heartbeat = [&] { return std::stoll(a.sql("SELECT heartbeat_at FROM leases WHERE name = 'run-rebalance'")); };
  const int64_t first = heartbeat();
  ::usleep(700'000);
  EXPECT_GT(heartbeat(), first);
}

// This process's threads (/proc/self/task).
int threads_now() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/task");
  if (!d) return -1;
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// What is logged at error level while it lives (the heartbeat's thread logs too).
class ErrorLog {
 public:
  ErrorLog() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(32)), before_(spdlog::default_logger()) {
    sink_->set_pattern("%v");
    auto logger = std::make_shared<spdlog::logger>("errors", sink_);
    logger->set_level(spdlog::level::err);
    spdlog::set_default_logger(logger);
  }
  ~ErrorLog() { spdlog::set_default_logger(before_); }
  // The first line containing `text`, waiting up to `ms` for it; "" if none.
  std::string wait_for(const std::string& text, int ms) {
    for (int waited = 0;; waited += 20) {
      for (auto line : sink_->last_formatted()) {
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();  // the sink's eol
        if (line.find(text) != std::string::npos) return line;
      }
      if (waited >= ms) return "";
      ::usleep(20'000);
    }
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> before_;
};

// Moves of users u0..u{n-1}, claimed.
std::vector<int64_t> claim_moves(Journal& j, int n) {
  std::vector<int64_t> ids;
  for (int i = 0; i < n; ++i) {
    auto id = j.claim_move(move_of("u" + std::to_string(i)));
    EXPECT_TRUE(id.ok()) << id.error().message();
    ids.push_back(id.ok() ? *id : 0);
  }
  return ids;
}

// The mailshard sessions on the test's database (the journals' own connections).
int mailshard_connections(Admin& a) {
  return std::stoi(a.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND application_name = 'mailshard'"));
}

// Issue 14: a controller with hundreds of moves in flight. Its move leases are
// held by one session: one connection and one heartbeat thread, however many,
// and every beat renews all of their rows in one statement.
TEST_F(PgJournalTest, ManyMoveLeasesShareOneConnectionAndOneHeartbeatThread) {
  constexpr int kMoves = 200;
  auto j = open();
  ASSERT_TRUE(j.ok()) << j.error().message();
  auto ids = claim_moves(**j, kMoves);
  Admin a(db_);
  const int threads_before = threads_now(), connections_before = mailshard_connections(a);
  ASSERT_EQ(connections_before, 1) << "the journal's own";
  std::vector<std::unique_ptr<MoveLease>> leases;
  for (int64_t id : ids) {
    auto lease = (*j)->lease_move(id);
    ASSERT_TRUE(lease.ok()) << lease.error().message();
    leases.push_back(std::move(*lease));
  }
  EXPECT_EQ(threads_now() - threads_before, 1) << "one heartbeat thread for every lease";
  EXPECT_EQ(mailshard_connections(a) - connections_before, 1) << "one lease connection for every lease";
  EXPECT_EQ(a.sql("SELECT count(DISTINCT backend_pid) || ' ' || count(*) FROM leases"), "1 200");
  EXPECT_EQ(a.sql("SELECT count(*) FROM pg_locks k JOIN leases l ON k.pid = l.backend_pid "
                  "WHERE k.locktype = 'advisory' AND k.granted AND l.name = 'move-" + std::to_string(ids[0]) + "'"),
            "200");
  // Every row renewed, by one statement a beat: all carry that beat's time.
  const int64_t taken = std::stoll(a.sql("SELECT max(heartbeat_at) FROM leases"));
  ::usleep(700'000);  // > 2 beats of 200 ms
  EXPECT_EQ(a.sql("SELECT count(DISTINCT heartbeat_at) FROM leases"), "1");
  EXPECT_GT(std::stoll(a.sql("SELECT min(heartbeat_at) FROM leases")), taken);

  // Released: the keys are unlocked; the session and its thread stay for the next lease.
  leases.clear();
  EXPECT_EQ(a.sql("SELECT count(*) FROM pg_locks k JOIN leases l ON k.pid = l.backend_pid "
                  "WHERE k.locktype = 'advisory' AND l.name = 'move-" + std::to_string(ids[0]) + "'"),
            "0");
  EXPECT_EQ(threads_now() - threads_before, 1);
  auto next = (*j)->lease_move(ids[0]);
  ASSERT_TRUE(next.ok()) << next.error().message();
  EXPECT_EQ(mailshard_connections(a) - connections_before, 1);
  next->reset();
  j->reset();
  EXPECT_EQ(threads_now(), threads_before) << "the thread ends with the journal";
}

// The executor's workers release their leases on their own threads while the
// journal takes others: one lease connection, one lock per held lease, and a
// released lease's row is no longer renewed.
TEST_F(PgJournalTest, LeasesReleasedOnOtherThreadsWhileOthersAreTaken) {
  constexpr int kFirst = 100, kSecond = 100, kReleasers = 4;
  auto j = open();
  auto other = open();
  ASSERT_TRUE(j.ok() && other.ok());
  auto ids = claim_moves(**j, kFirst + kSecond);
  std::vector<std::unique_ptr<MoveLease>> first;
  for (int i = 0; i < kFirst; ++i) {
    auto lease = (*j)->lease_move(ids[i]);
    ASSERT_TRUE(lease.ok()) << lease.error().message();
    first.push_back(std::move(*lease));
  }
  std::vector<std::thread> releasers;
  for (int t = 0; t < kReleasers; ++t)
    releasers.emplace_back([&first, t] {
      for (int i = t; i < kFirst; i += kReleasers) {
        first[i].reset();
        ::usleep(1'000);
      }
    });
  std::vector<std::unique_ptr<MoveLease>> second;
  for (int i = kFirst; i < kFirst + kSecond; ++i) {
    auto lease = (*j)->lease_move(ids[i]);
    ASSERT_TRUE(lease.ok()) << lease.error().message();
    second.push_back(std::move(*lease));
  }
  for (auto& t : releasers) t.join();

  Admin a(db_);
  const std::string holder =
      a.sql("SELECT backend_pid FROM leases WHERE name = 'move-" + std::to_string(ids[kFirst]) + "'");
  EXPECT_EQ(a.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = " + holder),
            std::to_string(kSecond));
  EXPECT_EQ(a.sql("SELECT count(DISTINCT backend_pid) FROM leases"), "1");
  for (int i : {0, 1, kFirst - 1}) EXPECT_TRUE((*other)->lease_move(ids[i]).ok()) << "released move " << i;
  for (int i : {kFirst, kFirst + kSecond - 1}) {
    auto held = (*other)->lease_move(ids[i]);
    EXPECT_FALSE(held.ok()) << "held move " << i;
  }
  // Rows of released leases are left as they were; held ones go on being renewed.
  const std::string released = "'move-" + std::to_string(ids[2]) + "'";
  const int64_t released_at = std::stoll(a.sql("SELECT heartbeat_at FROM leases WHERE name = " + released));
  ::usleep(500'000);
  EXPECT_EQ(std::stoll(a.sql("SELECT heartbeat_at FROM leases WHERE name = " + released)), released_at);
  EXPECT_GT(std::stoll(a.sql("SELECT heartbeat_at FROM leases WHERE name = 'move-" + std::to_string(ids[kFirst]) +
                             "'")),
            released_at);
}

// The lease connection lost (the server ended the session: a network cut,
// as the server saw it): every lease held on it is lost at once, which is
// logged as one error naming them, and their writes are refused from then
// on. Another controller can take them over. The journal's next lease opens
// a new session; a lost lease is not silently taken again on it.
TEST_F(PgJournalTest, LosingTheLeaseConnectionLosesEveryLease) {
  auto j = open();
  auto second = open();
  ASSERT_TRUE(j.ok() && second.ok());
  auto ids = claim_moves(**j, 4);
  std::vector<std::unique_ptr<MoveLease>> leases;
  for (int i = 0; i < 3; ++i) {
    auto lease = (*j)->lease_move(ids[i]);
    ASSERT_TRUE(lease.ok()) << lease.error().message();
    leases.push_back(std::move(*lease));
    MoveRecord m = *(*j)->get_move(ids[i]);
    m.state = MoveState::kPrecopy;
    ASSERT_TRUE((*j)->update_move(m).ok()) << "while the leases hold, writes go through";
  }
  ErrorLog log;
  Admin(db_).sql("SELECT pg_terminate_backend(backend_pid) FROM leases WHERE name = 'move-" + std::to_string(ids[1]) +
                 "'");
  // The heartbeat notices within a beat (200 ms here).
  const std::string lost = log.wait_for("the lease session is lost", 3'000);
  ASSERT_NE(lost, "") << "no error logged";
  EXPECT_THAT(lost, StartsWith("journal postgresql://127.0.0.1:" + Lab::get().env("PG_PORT") + "/" + db_ +
                               ": heartbeat of leases: terminating connection due to administrator command"));
  EXPECT_THAT(lost, HasSubstr(": the lease session is lost, and with it 3 lease(s): move-" + std::to_string(ids[0]) +
                              ", move-" + std::to_string(ids[1]) + ", move-" + std::to_string(ids[2]) +
                              "; writes of their moves are refused from now on"));
  EXPECT_THAT(lost, Not(HasSubstr("\n")));

  for (int i = 0; i < 3; ++i) {
    const std::string refused = "move " + std::to_string(ids[i]) +
                                ": this process no longer holds the move's lease (the database ended its session); "
                                "another process may be running the move, so nothing was written";
    MoveRecord m = *(*j)->get_move(ids[i]);
    m.state = MoveState::kFrozen;
    auto st = (*j)->update_move(m);
    ASSERT_FALSE(st.ok()) << "move " << i;
    EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
    EXPECT_EQ(st.error().message(), refused);
    EXPECT_EQ((*j)->log_step(ids[i], "freeze", StepPhase::kBegin, "").error().message(), refused);
    EXPECT_EQ((*j)->put_blob(ids[i], "k", "v").error().message(), refused);
    EXPECT_EQ((*second)->get_move(ids[i])->state, MoveState::kPrecopy) << "nothing written";
  }
  // Another controller takes them over (the server released them with the session).
  std::vector<std::unique_ptr<MoveLease>> taken;
  for (int i = 0; i < 2; ++i) {
    auto t = (*second)->lease_move(ids[i]);
    ASSERT_TRUE(t.ok()) << t.error().message();
    taken.push_back(std::move(*t));
  }
  // The next lease: a new session, the same single heartbeat thread.
  const int threads_before = threads_now();
  auto fresh = (*j)->lease_move(ids[3]);
  ASSERT_TRUE(fresh.ok()) << fresh.error().message();
  MoveRecord m3 = *(*j)->get_move(ids[3]);
  m3.state = MoveState::kPrecopy;
  EXPECT_TRUE((*j)->update_move(m3).ok());
  EXPECT_EQ(threads_now(), threads_before);
  // A lost lease stays lost until its move is leased again: move 0 is the
  // second controller's now; move 2 nobody's, so leased again it writes.
  EXPECT_EQ((*j)->lease_move(ids[0]).error().code(), ErrorCode::kConflict);
  auto again = (*j)->lease_move(ids[2]);
  ASSERT_TRUE(again.ok()) << again.error().message();
  MoveRecord m2 = *(*j)->get_move(ids[2]);
  m2.state = MoveState::kFrozen;
  EXPECT_TRUE((*j)->update_move(m2).ok());
  // Dropping the lost lease objects releases nothing of the new session's
  // (move 2 again, move 3) nor the second controller's (moves 0 and 1).
  leases.clear();
  auto third = open();
  ASSERT_TRUE(third.ok());
  for (int i = 0; i < 4; ++i) EXPECT_FALSE((*third)->lease_move(ids[i]).ok()) << "move " << i;
  EXPECT_TRUE((*j)->update_move(m2).ok());
}

// A shared night's controllers learn when moves end anywhere (their slots
// free, a watched move ends): update_move to a terminal state announces it to
// every watcher; other updates do not.
TEST_F(PgJournalTest, WatchersAreToldWhenMovesEnd) {
  auto j = open();
  auto other = open();
  ASSERT_TRUE(j.ok() && other.ok());
  auto watcher = (*j)->watch_move_ends();
  ASSERT_TRUE(watcher.ok()) << watcher.error().message();
  auto id = *(*other)->claim_move(move_of("alice"));
  MoveRecord m = *(*other)->get_move(id);
  m.state = MoveState::kPrecopy;
  ASSERT_TRUE((*other)->update_move(m).ok());
  auto quiet = (*watcher)->wait(300);
  ASSERT_TRUE(quiet.ok()) << quiet.error().message();
  EXPECT_TRUE(quiet->empty()) << "a move that goes on is not announced";

  m.state = MoveState::kDone;
  ASSERT_TRUE((*other)->update_move(m).ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto ended = (*watcher)->wait(10'000);
  ASSERT_TRUE(ended.ok()) << ended.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  ASSERT_EQ(ended->size(), 1u);
  EXPECT_EQ((*ended)[0].id, id);
  EXPECT_EQ((*ended)[0].from_server, "store1");
  EXPECT_EQ((*ended)[0].to_server, "store2");

  // wake() ends a wait at once (the executor's end of the night).
  std::thread waker([&] {
    ::usleep(100'000);
    (*watcher)->wake();
  });
  const auto t1 = std::chrono::steady_clock::now();
  auto woken = (*watcher)->wait(10'000);
  waker.join();
  ASSERT_TRUE(woken.ok());
  EXPECT_TRUE(woken->empty());
  EXPECT_LT(std::chrono::steady_clock::now() - t1, std::chrono::seconds(5));

  // Its connection gone: kUnavailable, in one line (the executor goes on without it).
  Admin(db_).sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN mailshard_moves'");
  Result<std::vector<EndedMove>> lost = std::vector<EndedMove>{};
  for (int i = 0; i < 50 && lost.ok(); ++i) lost = (*watcher)->wait(100);
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(lost.error().message(), StartsWith("journal postgresql://127.0.0.1:" + Lab::get().env("PG_PORT") + "/" +
                                                 db_ + ": watch moves: "));
  EXPECT_THAT(lost.error().message(), Not(HasSubstr("\n")));
}

// Clocks apart by more than max_clock_skew: refuse to start, in one line.
TEST_F(PgJournalTest, ClocksApartRefuseToStart) {
  clock_.set(SystemClock().now_ms() + 60'000);
  auto ahead = open();
  ASSERT_FALSE(ahead.ok());
  EXPECT_EQ(ahead.error().code(), ErrorCode::kInvalidInput);
  EXPECT_THAT(ahead.error().message(),
              StartsWith("journal postgresql://127.0.0.1:" + Lab::get().env("PG_PORT") + "/" + db_ +
                         ": this host's clock is "));
  // 60 s less the time open() took (the fake clock stands still): 59.x on a busy machine.
  EXPECT_THAT(ahead.error().message(), ::testing::ContainsRegex("clock is (59\\.[5-9]|60\\.[0-4]) s ahead"));
  EXPECT_THAT(ahead.error().message(), HasSubstr("s ahead of the database server's (more than max_clock_skew 5.0 s)"));
  EXPECT_THAT(ahead.error().message(), Not(HasSubstr("\n")));

  clock_.set(SystemClock().now_ms() - 30'000);
  auto behind = open();
  ASSERT_FALSE(behind.ok());
  EXPECT_THAT(behind.error().message(), HasSubstr("s behind the database server's"));

  clock_.set(SystemClock().now_ms() + 2'000);  // within the margin
  EXPECT_TRUE(open().ok());
  PgJournalOptions unchecked = options_for(db_);
  unchecked.max_clock_skew_ms = 0;
  clock_.set(SystemClock().now_ms() + 600'000);
  EXPECT_TRUE(open(unchecked).ok()) << "0 turns the check off";
}

// What `config check --connect` runs: nothing is created or migrated.
TEST_F(PgJournalTest, CheckChangesNothing) {
  const std::string server = "postgresql://127.0.0.1:" + Lab::get().env("PG_PORT") + "/" + db_;
  auto empty = PgJournal::check(options_for(db_), clock_);
  ASSERT_TRUE(empty.ok()) << empty.error().message();
  EXPECT_EQ(*empty, server + ": schema 0 (this build: 2)");
  EXPECT_EQ(Admin(db_).sql("SELECT to_regclass('schema_version') IS NULL"), "t") << "nothing was created";
  ASSERT_TRUE(open().ok());
  EXPECT_EQ(*PgJournal::check(options_for(db_), clock_), server + ": schema 2 (this build: 2)");
  clock_.set(SystemClock().now_ms() + 60'000);
  auto skewed = PgJournal::check(options_for(db_), clock_);
  ASSERT_FALSE(skewed.ok());
  EXPECT_THAT(skewed.error().message(), HasSubstr("ahead of the database server's"));
}

// The factory: [journal] url opens PostgreSQL.
TEST_F(PgJournalTest, OpenJournalPicksPostgresForAUrl) {
  JournalConfig c;
  c.path.clear();
  c.url = url_of(db_);
  c.password = Secret(lab_password());
  auto j = open_journal(c, clock_);
  ASSERT_TRUE(j.ok()) << j.error().message();
  EXPECT_NE(dynamic_cast<PgJournal*>(j->get()), nullptr);
}

}  // namespace
}  // namespace mailshard::testing
