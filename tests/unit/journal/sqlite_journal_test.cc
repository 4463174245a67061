// SqliteJournal: the Journal contract (journal_contract_test.cc) on SQLite,
// and what only SQLite has (the file, its modes, WAL, PRAGMA user_version).
#include "journal/sqlite_journal.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/fakes.h"
#include "tests/unit/journal/journal_contract.h"

namespace mailshard {
namespace {

using testing::FakeClock;
using testing::JournalContractTest;
using testing::move_of;
using testing::plan_of;

// One journal file per test, in a directory of its own.
class SqliteBackend final : public testing::JournalBackend {
 public:
  void fresh(const std::string& test) override {
    path_ = ::testing::TempDir() + "/journal_contract_" + std::to_string(::getpid()) + "_" + test + "/j.sqlite";
    for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((path_ + suffix).c_str());
  }
  Result<std::unique_ptr<Journal>> open(Clock& clock) override {
    auto j = SqliteJournal::open(path_, clock);
    if (!j.ok()) return std::move(j).error();
    return std::unique_ptr<Journal>(std::move(*j));
  }

 private:
  std::string path_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, JournalContractTest,
                         ::testing::Values(testing::JournalBackendParam{
                             "sqlite", [] { return std::make_unique<SqliteBackend>(); }}),
                         testing::backend_name);

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

TEST_F(JournalTest, LockFilesArePrivate) {
  ::umask(022);
  auto lease = j_->lease_run("rebalance");
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  struct stat st;
  ASSERT_EQ(::stat((path_ + ".locks/run-rebalance.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
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
