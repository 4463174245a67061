#include "journal/sqlite_journal.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>

#include <gtest/gtest.h>

#include "tests/support/fakes.h"

namespace mailshard {
namespace {

using testing::FakeClock;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/journal_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/j.sqlite";
    ::unlink(path_.c_str());
    auto j = SqliteJournal::open(path_, clock_);
    ASSERT_TRUE(j.ok()) << j.error().message();
    j_ = std::move(*j);
  }
  MoveRecord move_of(const std::string& user) {
    MoveRecord m;
    m.user = user;
    m.from_server = "store1";
    m.to_server = "store2";
    m.state = MoveState::kPlanned;
    return m;
  }
  FakeClock clock_{1'700'000'000'000};  // 2023-11-14T22:13:20Z, which the lease message names
  std::string path_;
  std::unique_ptr<SqliteJournal> j_;
};

TEST_F(JournalTest, CreatesCurrentSchemaInWalMode) {
  EXPECT_EQ(j_->schema_version(), SqliteJournal::kSchemaVersion);
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "wal");
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST_F(JournalTest, RefusesNewerSchema) {
  j_.reset();
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto j = SqliteJournal::open(path_, clock_);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(j.error().message(), "journal '" + path_ +
                                     "' has schema version 99, newer than this mailshard supports (2); use a newer mailshard");
}

TEST_F(JournalTest, ReopenKeepsData) {
  auto id = j_->claim_move(move_of("alice"));
  ASSERT_TRUE(id.ok());
  j_.reset();
  auto j = SqliteJournal::open(path_, clock_);
  ASSERT_TRUE(j.ok());
  auto m = (*j)->get_move(*id);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->user, "alice");
}

TEST_F(JournalTest, ClaimIsExclusivePerUserUntilTerminal) {
  auto a = j_->claim_move(move_of("alice"));
  ASSERT_TRUE(a.ok());
  auto again = j_->claim_move(move_of("alice"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(again.error().message(), "user alice is already being moved (move 1, state planned)");
  EXPECT_TRUE(j_->claim_move(move_of("bob")).ok());

  auto m = *j_->get_move(*a);
  m.state = MoveState::kDone;
  ASSERT_TRUE(j_->update_move(m).ok());
  EXPECT_TRUE(j_->claim_move(move_of("alice")).ok());
}

TEST_F(JournalTest, DryRunRecordsDoNotClaim) {
  auto d = move_of("carol");
  d.state = MoveState::kDryRun;
  ASSERT_TRUE(j_->claim_move(d).ok());
  EXPECT_TRUE(j_->claim_move(move_of("carol")).ok());
}

TEST_F(JournalTest, UpdateAndListMoves) {
  auto id = *j_->claim_move(move_of("alice"));
  auto m = *j_->get_move(id);
  m.state = MoveState::kFlipped;
  m.step = "flip";
  m.lockout_ms = 420;
  m.bytes_transferred = 12345;
  m.error = "";
  clock_.advance(1000);
  ASSERT_TRUE(j_->update_move(m).ok());
  auto got = *j_->get_move(id);
  EXPECT_EQ(got.state, MoveState::kFlipped);
  EXPECT_EQ(got.lockout_ms, 420);
  EXPECT_EQ(got.bytes_transferred, 12345);
  EXPECT_EQ(got.updated_at_ms, clock_.now_ms());
  MoveFilter f;
  f.user = "alice";
  EXPECT_EQ(j_->list_moves(f)->size(), 1u);
  f.user = "nobody";
  EXPECT_TRUE(j_->list_moves(f)->empty());
  MoveRecord missing;
  missing.id = 999;
  EXPECT_EQ(j_->update_move(missing).error().code(), ErrorCode::kNotFound);
}

TEST_F(JournalTest, StepsAreOrderedWithPhases) {
  auto id = *j_->claim_move(move_of("alice"));
  ASSERT_TRUE(j_->log_step(id, "precopy", StepPhase::kBegin, "").ok());
  clock_.advance(5);
  ASSERT_TRUE(j_->log_step(id, "precopy", StepPhase::kEnd, R"({"bytes":10})").ok());
  ASSERT_TRUE(j_->log_step(id, "freeze", StepPhase::kError, "ldap down").ok());
  auto steps = *j_->list_steps(id);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[1].phase, StepPhase::kEnd);
  EXPECT_EQ(steps[1].at_ms, clock_.now_ms());
  EXPECT_EQ(steps[2].detail, "ldap down");
}

TEST_F(JournalTest, PlansAreIdempotentByHash) {
  PlanRecord p{0, "abcdef0123456789", 0, "balance", "{\"moves\":[]}", "", 0, 0, ""};
  auto a = j_->store_plan(p);
  auto b = j_->store_plan(p);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  auto found = j_->find_plan("abcdef01");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->strategy, "balance");
  EXPECT_EQ(found->status, "planned");
  EXPECT_EQ(j_->find_plan("ffffffff").error().code(), ErrorCode::kNotFound);
}

TEST_F(JournalTest, BlobsOverwrite) {
  auto id = *j_->claim_move(move_of("alice"));
  ASSERT_TRUE(j_->put_blob(id, "listing", std::string("a\0b", 3)).ok());
  ASSERT_TRUE(j_->put_blob(id, "listing", "v2").ok());
  EXPECT_EQ(**j_->get_blob(id, "listing"), "v2");
  EXPECT_FALSE(j_->get_blob(id, "other")->has_value());
}

TEST_F(JournalTest, RunsAndSnapshots) {
  auto run = *j_->begin_run("inventory", "{}");
  ASSERT_TRUE(j_->record_snapshot(run, clock_.now_ms(), "/tmp/snap", R"({"users":3})").ok());
  ASSERT_TRUE(j_->finish_run(run, "ok", "{}").ok());
  auto runs = *j_->list_runs(10);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, "ok");
  EXPECT_EQ(runs[0].kind, "inventory");
}

// The journal holds user names, hosts and plans: it and its -wal/-shm and lock
// files are private (SQLite created them 0644 under the usual umask 022).
TEST_F(JournalTest, FilesArePrivate) {
  ::umask(022);
  ASSERT_TRUE(j_->begin_run("test", "{}").ok());  // the WAL and shm exist once written
  auto id = j_->claim_move(move_of("alice@example.org"));
  ASSERT_TRUE(id.ok()) << id.error().message();
  auto lease = j_->lease_move(*id);
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  for (const std::string& f : {path_, path_ + "-wal", path_ + "-shm", path_ + ".locks/move-" + std::to_string(*id) + ".lock"}) {
    struct stat st;
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
}

// [security] file_group: the journal and its -wal/-shm are 0640 in that group
// (lock files stay private: only a mover takes them).
TEST_F(JournalTest, AConfiguredGroupMayReadTheJournal) {
  ::umask(022);
  auto gid = group_id("daemon");
  ASSERT_TRUE(gid.ok());
  const std::string path = path_ + ".grouped";
  auto j = SqliteJournal::open(path, clock_, FileAccess(0640, *gid));
  ASSERT_TRUE(j.ok()) << j.error().message();
  ASSERT_TRUE((*j)->begin_run("test", "{}").ok());
  for (const std::string& f : {path, path + "-wal", path + "-shm"}) {
    struct stat st;
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0640u) << f;
    EXPECT_EQ(static_cast<int>(st.st_gid), *gid) << f;
  }
}

// A journal made readable by others (an older mailshard, a chmod) is narrowed
// when opened; its -wal and -shm too.
TEST_F(JournalTest, AWiderJournalIsNarrowedWhenOpened) {
  ASSERT_TRUE(j_->begin_run("test", "{}").ok());
  for (const std::string& f : {path_, path_ + "-wal", path_ + "-shm"}) ASSERT_EQ(::chmod(f.c_str(), 0644), 0) << f;
  auto again = SqliteJournal::open(path_, clock_);
  ASSERT_TRUE(again.ok()) << again.error().message();
  for (const std::string& f : {path_, path_ + "-wal", path_ + "-shm"}) {
    struct stat st;
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  EXPECT_EQ((*again)->list_runs(10)->size(), 1u);
}

PlanRecord plan_of(const std::string& hash, int64_t created_at_ms, int moves) {
  PlanRecord p;
  p.hash = hash;
  p.created_at_ms = created_at_ms;
  p.strategy = "balance";
  std::string list;
  for (int i = 0; i < moves; ++i) list += (i ? ",{\"user\":" : "{\"user\":") + std::to_string(i) + "}";
  p.plan_json = "{\"strategy\":\"balance\",\"moves\":[" + list + "]}";
  return p;
}

TEST_F(JournalTest, PlanMovesAreCountedFromThePlanJson) {
  ASSERT_TRUE(j_->store_plan(plan_of("aaaaaaaa00000001", 0, 3)).ok());
  PlanRecord not_json = plan_of("aaaaaaaa00000002", 0, 0);
  not_json.plan_json = "not json";
  not_json.moves = 99;  // ignored: the journal counts
  ASSERT_TRUE(j_->store_plan(not_json).ok());
  EXPECT_EQ(j_->find_plan("aaaaaaaa00000001")->moves, 3);
  EXPECT_EQ(j_->find_plan("aaaaaaaa00000002")->moves, 0);
}

TEST_F(JournalTest, ApprovalRoundTripIsIdempotent) {
  int64_t id = *j_->store_plan(plan_of("abcdef0123456789", 0, 2));
  auto before = *j_->find_plan("abcdef01");
  EXPECT_EQ(before.approved_at_ms, 0);
  EXPECT_EQ(before.approved_by, "");

  clock_.advance(60'000);
  ASSERT_TRUE(j_->approve_plan(id, "alice").ok());
  const int64_t approved_at = clock_.now_ms();
  auto after = *j_->find_plan("abcdef0123456789");
  EXPECT_EQ(after.approved_at_ms, approved_at);
  EXPECT_EQ(after.approved_by, "alice");
  EXPECT_EQ(after.moves, 2);

  // Again, later and by someone else: the first approval stands.
  clock_.advance(60'000);
  ASSERT_TRUE(j_->approve_plan(id, "bob").ok());
  auto again = *j_->find_plan("abcdef01");
  EXPECT_EQ(again.approved_at_ms, approved_at);
  EXPECT_EQ(again.approved_by, "alice");
  // Storing the same plan again does not touch the approval either.
  ASSERT_EQ(*j_->store_plan(plan_of("abcdef0123456789", 0, 2)), id);
  EXPECT_EQ(j_->find_plan("abcdef01")->approved_by, "alice");
}

TEST_F(JournalTest, ApprovingAnUnknownPlanIsNotFound) {
  auto st = j_->approve_plan(42, "alice");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(st.error().message(), "plan 42 is not in the journal");
  int64_t id = *j_->store_plan(plan_of("abcdef0123456789", 0, 0));
  EXPECT_EQ(j_->approve_plan(id, "").error().code(), ErrorCode::kInvalidInput);
}

TEST_F(JournalTest, ListPlansIsNewestFirstWithoutThePlanText) {
  ASSERT_TRUE(j_->store_plan(plan_of("11111111aaaaaaaa", 1000, 1)).ok());
  ASSERT_TRUE(j_->store_plan(plan_of("33333333aaaaaaaa", 3000, 3)).ok());
  // Same created_at as the first: the later id is newer.
  int64_t second = *j_->store_plan(plan_of("22222222aaaaaaaa", 1000, 2));
  ASSERT_TRUE(j_->approve_plan(second, "alice").ok());
  auto all = j_->list_plans(0);
  ASSERT_TRUE(all.ok()) << all.error().message();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].hash, "33333333aaaaaaaa");
  EXPECT_EQ((*all)[1].hash, "22222222aaaaaaaa");
  EXPECT_EQ((*all)[2].hash, "11111111aaaaaaaa");
  EXPECT_EQ((*all)[0].moves, 3);
  EXPECT_EQ((*all)[0].status, "planned");
  EXPECT_EQ((*all)[1].approved_by, "alice");
  EXPECT_EQ((*all)[1].approved_at_ms, clock_.now_ms());
  for (const auto& p : *all) EXPECT_EQ(p.plan_json, "");
  EXPECT_EQ(j_->list_plans(2)->size(), 2u);
}

TEST_F(JournalTest, LatestPlanWithAndWithoutApproval) {
  EXPECT_FALSE(j_->latest_plan(false)->has_value());
  int64_t old_id = *j_->store_plan(plan_of("11111111aaaaaaaa", 1000, 1));
  ASSERT_TRUE(j_->store_plan(plan_of("22222222aaaaaaaa", 2000, 2)).ok());
  EXPECT_FALSE(j_->latest_plan(true)->has_value());
  auto newest = *j_->latest_plan(false);
  ASSERT_TRUE(newest.has_value());
  EXPECT_EQ(newest->hash, "22222222aaaaaaaa");
  EXPECT_NE(newest->plan_json, "");  // the full record

  ASSERT_TRUE(j_->approve_plan(old_id, "alice").ok());
  auto approved = *j_->latest_plan(true);
  ASSERT_TRUE(approved.has_value());
  EXPECT_EQ(approved->hash, "11111111aaaaaaaa");
  EXPECT_EQ(approved->approved_by, "alice");
  EXPECT_EQ(approved->plan_json, plan_of("11111111aaaaaaaa", 1000, 1).plan_json);
  EXPECT_EQ((*j_->latest_plan(false))->hash, "22222222aaaaaaaa");
}

TEST_F(JournalTest, StopRequestRoundTrip) {
  int64_t run = *j_->begin_run("rebalance", "{}");
  int64_t other = *j_->begin_run("inventory", "{}");
  EXPECT_FALSE(*j_->stop_requested(run));
  auto running = *j_->running_runs("rebalance");
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].id, run);
  EXPECT_EQ(running[0].stop_requested_at_ms, 0);

  clock_.advance(5'000);
  const int64_t asked_at = clock_.now_ms();
  ASSERT_TRUE(j_->request_stop(run).ok());
  clock_.advance(5'000);
  ASSERT_TRUE(j_->request_stop(run).ok());  // idempotent: the first time is kept
  EXPECT_TRUE(*j_->stop_requested(run));
  EXPECT_FALSE(*j_->stop_requested(other));
  EXPECT_EQ((*j_->running_runs("rebalance"))[0].stop_requested_at_ms, asked_at);
  EXPECT_EQ((*j_->list_runs(0))[1].stop_requested_at_ms, asked_at);

  ASSERT_TRUE(j_->finish_run(run, "interrupted", "{}").ok());
  EXPECT_TRUE(j_->running_runs("rebalance")->empty());
  auto late = j_->request_stop(run);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(late.error().message(), "run 1 has already finished (interrupted)");
  EXPECT_EQ(j_->request_stop(99).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(j_->stop_requested(99).error().code(), ErrorCode::kNotFound);
}

std::string this_host() {
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

// Two opens of the lock file are two open file descriptions, whose flocks
// conflict even within one process.
TEST_F(JournalTest, RunLeaseIsExclusiveAndNamesTheHolder) {
  auto first = j_->lease_run("rebalance");
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = j_->lease_run("rebalance");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(second.error().message(), "another rebalance is running: pid " + std::to_string(::getpid()) + " on host " +
                                          this_host() + " since 2023-11-14T22:13:20.000Z");
  EXPECT_TRUE(j_->lease_run("inventory").ok()) << "other kinds are independent";
  first->reset();
  EXPECT_TRUE(j_->lease_run("rebalance").ok()) << "released when destroyed";

  struct stat st;
  ASSERT_EQ(::stat((path_ + ".locks/run-rebalance.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(j_->lease_run("../x").error().code(), ErrorCode::kInvalidInput);
}

TEST_F(JournalTest, RunLeaseIsFreedWhenItsHolderIsKilled) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Touches only the lock file, never the parent's SQLite handle.
    auto lease = j_->lease_run("rebalance");
    char c = lease.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  auto held = j_->lease_run("rebalance");
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_EQ(c, 'y');
  ASSERT_FALSE(held.ok());
  EXPECT_EQ(held.error().code(), ErrorCode::kConflict);
  EXPECT_NE(held.error().message().find("pid " + std::to_string(child) + " on host " + this_host()), std::string::npos)
      << held.error().message();
  auto after = j_->lease_run("rebalance");
  EXPECT_TRUE(after.ok()) << after.error().message();
}

// A schema-1 journal (made here by undoing migration 2 with SQLite's DROP
// COLUMN) is migrated on open and keeps its rows; the move counts of its
// plans are filled in from the plan JSON.
TEST_F(JournalTest, MigratesASchema1JournalKeepingItsRows) {
  ASSERT_TRUE(j_->store_plan(plan_of("abcdef0123456789", 1000, 4)).ok());
  int64_t run = *j_->begin_run("rebalance", "{\"x\":1}");
  int64_t move = *j_->claim_move(move_of("alice"));
  j_.reset();
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP INDEX plans_by_created; ALTER TABLE plans DROP COLUMN moves; "
                         "ALTER TABLE plans DROP COLUMN approved_at; ALTER TABLE plans DROP COLUMN approved_by; "
                         "ALTER TABLE runs DROP COLUMN stop_requested_at; PRAGMA user_version=1;",
                         nullptr, nullptr, &err),
            SQLITE_OK)
      << err;
  sqlite3_close(db);

  auto j = SqliteJournal::open(path_, clock_);
  ASSERT_TRUE(j.ok()) << j.error().message();
  EXPECT_EQ((*j)->schema_version(), 2);
  auto plan = (*j)->find_plan("abcdef01");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->moves, 4);
  EXPECT_EQ(plan->approved_at_ms, 0);
  EXPECT_EQ((*j)->list_runs(0)->at(0).args_json, "{\"x\":1}");
  EXPECT_FALSE(*(*j)->stop_requested(run));
  EXPECT_EQ((*j)->get_move(move)->user, "alice");
  ASSERT_TRUE((*j)->approve_plan(plan->id, "alice").ok());
}

}  // namespace
}  // namespace mailshard
