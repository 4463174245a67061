#include "journal/sqlite_journal.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace mailshard {
namespace {

class FakeClock : public Clock {
 public:
  int64_t now = 1'700'000'000'000;
  int64_t now_ms() const override { return now; }
  int64_t monotonic_ms() const override { return now; }
  void sleep_ms(int64_t ms) override { now += ms; }
};

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
  FakeClock clock_;
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
                                     "' has schema version 99, newer than this mailshard supports (1); use a newer mailshard");
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
  clock_.now += 1000;
  ASSERT_TRUE(j_->update_move(m).ok());
  auto got = *j_->get_move(id);
  EXPECT_EQ(got.state, MoveState::kFlipped);
  EXPECT_EQ(got.lockout_ms, 420);
  EXPECT_EQ(got.bytes_transferred, 12345);
  EXPECT_EQ(got.updated_at_ms, clock_.now);
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
  clock_.now += 5;
  ASSERT_TRUE(j_->log_step(id, "precopy", StepPhase::kEnd, R"({"bytes":10})").ok());
  ASSERT_TRUE(j_->log_step(id, "freeze", StepPhase::kError, "ldap down").ok());
  auto steps = *j_->list_steps(id);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[1].phase, StepPhase::kEnd);
  EXPECT_EQ(steps[1].at_ms, clock_.now);
  EXPECT_EQ(steps[2].detail, "ldap down");
}

TEST_F(JournalTest, PlansAreIdempotentByHash) {
  PlanRecord p{0, "abcdef0123456789", 0, "balance", "{\"moves\":[]}", ""};
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
  ASSERT_TRUE(j_->record_snapshot(run, clock_.now, "/tmp/snap", R"({"users":3})").ok());
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

}  // namespace
}  // namespace mailshard
