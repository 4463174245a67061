// PgJournal against the lab's PostgreSQL: the Journal contract
// (tests/unit/journal/journal_contract_test.cc, the same tests SQLite passes)
// and the faults only a database server has: down at start, lost mid-run,
// clocks apart, a refused login, a newer schema, heartbeats.
//
// Each test gets a database of its own (CREATE DATABASE, dropped at the end).
#include "journal/pg_journal.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

// Clocks apart by more than max_clock_skew: refuse to start, in one line.
TEST_F(PgJournalTest, ClocksApartRefuseToStart) {
  clock_.set(SystemClock().now_ms() + 60'000);
  auto ahead = open();
  ASSERT_FALSE(ahead.ok());
  EXPECT_EQ(ahead.error().code(), ErrorCode::kInvalidInput);
  EXPECT_THAT(ahead.error().message(),
              StartsWith("journal postgresql://127.0.0.1:" + Lab::get().env("PG_PORT") + "/" + db_ +
                         ": this host's clock is 60."));
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
