// MoveRunner with fakes that record effects: an in-memory directory whose flip
// can lose its reply or fail, a recording freeze backend and kicker, real local
// transports on temp dirs, the real SQLite journal and a fake clock. These are
// the paths the lab cannot hit on demand (an LDAP reply lost after the modify
// was applied, a thaw that fails during a rollback); the lab tests cover the
// rest with the real servers.
#include "movers/move_runner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <set>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "journal/sqlite_journal.h"
#include "movers/move_progress.h"
#include "tests/support/fakes.h"
#include "tests/unit/movers/maildir_gen.h"
#include "tests/unit/movers/move_fakes.h"
#include "transport/transport_factory.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing::FakeClock;
using testing::write_file;
using testing::FakeDirectory;
using testing::LocalEnv;
using testing::RecordingFreeze;
using testing::FakeQuota;
using testing::RecordingKicker;

// A file holding a line, its mtime set to `mtime_ms` (the fake clock's time).
void write_with_mtime(const std::string& path, int64_t mtime_ms) {
  std::ofstream(path) << "Subject: in flight\n\nbody\n";
  const struct timespec ts[2] = {{mtime_ms / 1000, (mtime_ms % 1000) * 1'000'000},
                                 {mtime_ms / 1000, (mtime_ms % 1000) * 1'000'000}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, 0), 0) << path;
}

class MoveRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/move_runner_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    testing::make_two_stores(root_, 2, config_, env_.t);
    testing::GenOptions g;
    g.messages = 60;
    testing::generate_home(src_home(), g);
    dir_.accounts = {{"uid=alice,ou=people", "alice", "store1", "example.org/alice", "example.org/alice", "active", 0}};
    auto j = SqliteJournal::open(root_ + "/journal.sqlite", clock_);
    ASSERT_TRUE(j.ok()) << j.error().message();
    journal_ = std::move(*j);
  }
  std::string src_home() const { return root_ + "/store1/example.org/alice"; }
  std::string dst_home() const { return root_ + "/store2/example.org/alice"; }
  MoveRunner runner() {
    return MoveRunner(MoveDeps{config_, dir_, freeze_, kicker_, nullptr, *journal_, clock_, env_, SyncOptions{}});
  }
  // The destination has doveadm (the fake answers for it).
  MoveRunner runner_with_quota() {
    for (auto& s : config_.servers) s.doveadm_url = "http://127.0.0.1:1/doveadm/v1";
    return MoveRunner(
        MoveDeps{config_, dir_, freeze_, kicker_, nullptr, *journal_, clock_, env_, SyncOptions{}, &quota_});
  }
  // Message files of the source home (every cur/ and new/), as Dovecot's quota counts them.
  int64_t source_messages() const {
    int64_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(src_home())) {
      std::string dir = e.path().parent_path().filename().string();
      n += e.is_regular_file() && (dir == "cur" || dir == "new");
    }
    return n;
  }
  MoveProgress progress_of(int64_t id) {
    auto m = journal_->get_move(id);
    EXPECT_TRUE(m.ok());
    return m.ok() ? MoveProgress::parse(m->detail_json).value() : MoveProgress{};
  }
  bool any_staging() const {
    for (const auto& e : fs::directory_iterator(root_ + "/store2/example.org"))
      if (e.path().filename().string().find(".mailshard-incoming-") != std::string::npos) return true;
    return false;
  }

  std::string root_;
  Config config_;
  FakeDirectory dir_;
  RecordingFreeze freeze_;
  RecordingKicker kicker_;
  LocalEnv env_;
  FakeClock clock_;
  FakeQuota quota_;
  std::unique_ptr<SqliteJournal> journal_;
};

// The protocol table is the step list: in order, states never go back, one
// commit point with every rollback step before it and every roll-forward
// step after it; a happy move journals exactly these steps (below).
TEST(MoveProtocol, OneCommitPointStatesInOrder) {
  int flips = 0;
  CommitSide side = CommitSide::kBeforeFlip;
  MoveState last = MoveState::kPlanned;
  for (const ProtocolStep& s : kMoveProtocol) {
    SCOPED_TRACE(std::string(s.name));
    EXPECT_GE(static_cast<int>(s.side), static_cast<int>(side));
    EXPECT_GE(s.done, last);
    EXPECT_FALSE(s.touches.empty());
    // Only the flip writes LDAP; only the source's clock probe is ever made on the source, in preflight.
    EXPECT_EQ((s.may & kWritesDirectory) != 0, s.id == StepId::kFlip);
    EXPECT_EQ((s.may & kProbesSource) != 0, s.id == StepId::kPreflight);
    flips += s.side == CommitSide::kFlip;
    side = s.side;
    last = s.done;
  }
  EXPECT_EQ(flips, 1);
  EXPECT_EQ(kMoveProtocol[0].id, StepId::kPreflight);
  EXPECT_EQ(last, MoveState::kDone);
  EXPECT_EQ(protocol_step_names(),
            "preflight, precopy, freeze, kick, final_sync, convert, verify, flip, thaw, sweep, quota_recalc, done");
}

TEST_F(MoveRunnerTest, HappyPathCopiesFlipsAndThawsInOrder) {
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(dir_.account("alice").host, "store2");
  EXPECT_EQ(freeze_.calls, (std::vector<std::string>{"freeze alice", "thaw alice"}));
  EXPECT_EQ(kicker_.kicks, 1);
  EXPECT_TRUE(testing::compare_trees(src_home(), dst_home()).empty());
  EXPECT_FALSE(any_staging());
  EXPECT_EQ(rec->lockout_ms, 0);  // the fake clock did not move between freeze and thaw
  auto steps = *journal_->list_steps(rec->id);
  std::vector<std::string> order;
  for (const auto& s : steps)
    if (s.phase == StepPhase::kBegin) order.push_back(s.step);
  EXPECT_EQ(order, (std::vector<std::string>{"preflight", "precopy", "freeze", "kick", "final_sync", "convert", "verify",
                                             "flip", "thaw", "sweep", "quota_recalc", "sweep", "quota_recalc", "done"}))
      << "the sweep again after [move] sweep_settle (the stragglers' round), the quota recount in that pause";
}

// A store whose doveadm does not answer in time (busy, restarting) is asked
// again within kick.wait_ms, like a session that has not gone yet: the move
// goes on once it answers.
TEST_F(MoveRunnerTest, AKickThatTimesOutIsAskedAgainWithinTheWait) {
  kicker_.kick_errors = {Error::timeout("doveadm kick: POST http://store1/doveadm/v1: Timeout was reached"),
                         Error::unavailable("doveadm kick: connection refused")};
  kicker_.session_errors = {Error::timeout("doveadm who: POST http://store1/doveadm/v1: Timeout was reached")};
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(kicker_.kicks, 3) << "two that failed, then one answered";
  EXPECT_EQ(kicker_.lookups, 2);
  EXPECT_EQ(dir_.account("alice").host, "store2");
}

// ... but only within the wait: a store that never answers rolls the move
// back, naming what it said; and a failure that asking again cannot mend
// (a refused password) rolls back at once.
TEST_F(MoveRunnerTest, AKickThatNeverAnswersOrIsRefusedRollsBack) {
  for (int i = 0; i < 1000; ++i) kicker_.kick_errors.push_back(Error::timeout("doveadm kick: Timeout was reached"));
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_THAT(rec->error, HasSubstr("doveadm kick: Timeout was reached on store1 after waiting 30.0s"));
  EXPECT_GT(kicker_.kicks, 2);
  EXPECT_EQ(dir_.account("alice").host, "store1");
  EXPECT_FALSE(freeze_.frozen());

  kicker_.kicks = 0;
  kicker_.kick_errors = {Error(ErrorCode::kPermission, "doveadm kick: HTTP 401")};
  rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_THAT(rec->error, HasSubstr("HTTP 401"));
  EXPECT_EQ(kicker_.kicks, 1);
  EXPECT_FALSE(freeze_.frozen());
}

// A delivery in flight (a file in tmp/) holds the final pass until it is
// in new/; the message moves with the mailbox.
TEST_F(MoveRunnerTest, TheKickWaitsForADeliveryInFlight) {
  fs::create_directories(src_home() + "/Maildir/tmp");
  const std::string name = "1800000000.M1P4242.mx1";
  write_with_mtime(src_home() + "/Maildir/tmp/" + name, clock_.now_ms());
  int polls = 0;
  clock_.on_sleep([&] {
    if (++polls == 3 && fs::exists(src_home() + "/Maildir/tmp/" + name))
      fs::rename(src_home() + "/Maildir/tmp/" + name, src_home() + "/Maildir/new/" + name);
  });
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_GE(polls, 3);
  EXPECT_TRUE(fs::exists(dst_home() + "/Maildir/new/" + name));
  EXPECT_EQ(progress_of(rec->id).swept.value_or(0), 0) << "the final pass copied it: the kick had waited for it";
  EXPECT_EQ(dir_.account("alice").host, "store2");
}

// A file in tmp/ untouched for longer than a delivery takes is what one that
// died left behind (Dovecot and Courier delete them after 36 hours): the
// kick does not wait for it, which would roll back every move of the user,
// and it is not copied.
TEST_F(MoveRunnerTest, ADeadDeliverysLeftoverInTmpIsNotWaitedFor) {
  fs::create_directories(src_home() + "/Maildir/tmp");
  const std::string name = "1799990000.M7P1717.mx1";
  write_with_mtime(src_home() + "/Maildir/tmp/" + name, clock_.now_ms() - 3'600'000);
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(dir_.account("alice").host, "store2");
  EXPECT_TRUE(fs::exists(src_home() + "/Maildir/tmp/" + name)) << "the source is left as it was";
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/tmp/" + name));
}

// Courier's imapd keeps its lock and its uid list's temp file in tmp/; one
// the kick killed leaves them, fresh. They are no delivery: the kick does not
// wait for them (it rolled back after [kick] wait in the lab, once).
TEST_F(MoveRunnerTest, CourierImapdsOwnFilesInTmpAreNotWaitedFor) {
  fs::create_directories(src_home() + "/Maildir/tmp");
  write_with_mtime(src_home() + "/Maildir/tmp/courier.lock", clock_.now_ms());
  write_with_mtime(src_home() + "/Maildir/tmp/1796638896.M156485P13127_imapuid_5.vm", clock_.now_ms());
  int polls = 0;
  clock_.on_sleep([&] { ++polls; });
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(dir_.account("alice").host, "store2");
  EXPECT_LT(polls, 3) << "the kick waited for imapd's files";
}

// A move a stretch at a time (MoveTask): one step per advance, except that
// the frozen stretch runs whole, so a thread carrying other moves never makes
// a frozen user wait. Two moves interleaved on one thread both end done.
TEST_F(MoveRunnerTest, ATaskAdvancesAStepAtATimeAndTheFrozenStretchWhole) {
  testing::GenOptions g;
  g.messages = 20;
  testing::generate_home(root_ + "/store1/example.org/bob", g);
  dir_.accounts.push_back({"uid=bob,ou=people", "bob", "store1", "example.org/bob", "example.org/bob", "active", 0});
  MoveRunner r = runner();
  auto a = r.start("alice", "store2", {});
  auto b = r.start("bob", "store2", {});
  // The journal's steps of a user's move, begun so far.
  auto begun = [&](const std::string& user) {
    std::vector<std::string> out;
    MoveFilter f;
    f.user = user;
    auto ms = journal_->list_moves(f);
    if (!ms.ok() || ms->empty()) return out;
    auto steps = journal_->list_steps(ms->front().id);
    if (!steps.ok()) return out;
    for (const auto& s : *steps)
      if (s.phase == StepPhase::kBegin) out.push_back(s.step);
    return out;
  };
  ASSERT_FALSE(a->advance());  // preflight and the claim
  ASSERT_FALSE(b->advance());
  EXPECT_EQ(begun("alice"), (std::vector<std::string>{"preflight"}));
  ASSERT_FALSE(a->advance());  // precopy
  EXPECT_EQ(begun("alice"), (std::vector<std::string>{"preflight", "precopy"}));
  EXPECT_TRUE(freeze_.calls.empty());
  ASSERT_FALSE(a->advance());  // freeze .. thaw in one stretch
  EXPECT_EQ(begun("alice"), (std::vector<std::string>{"preflight", "precopy", "freeze", "kick", "final_sync",
                                                      "convert", "verify", "flip", "thaw"}));
  EXPECT_EQ(freeze_.calls, (std::vector<std::string>{"freeze alice", "thaw alice"}));
  EXPECT_EQ(dir_.account("alice").host, "store2");
  EXPECT_EQ(dir_.account("bob").host, "store1") << "bob's move only made its preflight";
  ASSERT_FALSE(a->advance());  // the sweep; its settle round waits without the thread
  EXPECT_EQ(a->not_before_ms(), clock_.now_ms() + config_.move.sweep_settle_ms);
  clock_.advance(config_.move.sweep_settle_ms);
  int steps_a = 0, steps_b = 0;
  bool done_a = false, done_b = false;
  while (!done_a || !done_b) {
    if (!done_a) done_a = a->advance(), ++steps_a;
    if (!done_b) done_b = b->advance(), ++steps_b;
  }
  EXPECT_EQ(steps_a, 3) << "the settle round's sweep, quota_recalc, done";
  EXPECT_EQ(steps_b, 1 + 1 + 4) << "precopy, the frozen stretch, sweep, its settle round, quota_recalc, done";
  for (auto* t : {a.get(), b.get()}) {
    auto rec = t->result();
    ASSERT_TRUE(rec.ok()) << rec.error().message();
    EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  }
  EXPECT_TRUE(testing::compare_trees(src_home(), dst_home()).empty());
  EXPECT_TRUE(testing::compare_trees(root_ + "/store1/example.org/bob", root_ + "/store2/example.org/bob").empty());
  EXPECT_EQ(dir_.account("bob").host, "store2");
  EXPECT_FALSE(freeze_.frozen());
}

// A step failing before the flip ends the task with the rollback, in the
// same advance: the move never waits frozen for a thread.
TEST_F(MoveRunnerTest, ATaskWhoseStepFailsRollsBackInThatAdvance) {
  MoveRunner r = runner();
  auto t = r.start("alice", "store2", {});
  ASSERT_FALSE(t->advance());
  ASSERT_FALSE(t->advance());
  dir_.flip_fault = FakeDirectory::FlipFault::kConflict;
  ASSERT_TRUE(t->advance()) << "the frozen stretch fails at the flip and rolls back";
  auto rec = t->result();
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_FALSE(freeze_.frozen());
  EXPECT_EQ(dir_.account("alice").host, "store1");
  EXPECT_FALSE(any_staging());
  EXPECT_TRUE(t->advance()) << "an ended task stays ended";
}

// An MTA that ignores the freeze delivers on the source while the frozen
// pass copies the INBOX: Dovecot's index and cache there change after the
// pass copied them, so the copy's cache may not match its index (Dovecot
// would show another message's headers for a UID). The copy's INBOX cache is
// dropped before the flip; the other folders' caches are kept.
TEST_F(MoveRunnerTest, IndexFilesWrittenUnderTheFreezeDropTheCopiedCache) {
  const std::string inbox = src_home() + "/Maildir";
  env_.on_step = [&](const std::string& step, StepPhase phase) {
    if (step != "final_sync" || phase != StepPhase::kEnd) return;
    std::ofstream(inbox + "/dovecot.index.cache", std::ios::app) << std::string(300, 'c');
    std::ofstream(inbox + "/dovecot.index.log", std::ios::app) << std::string(40, 'l');
  };
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/dovecot.index.cache")) << "the INBOX's copied cache is dropped";
  EXPECT_TRUE(fs::exists(dst_home() + "/Maildir/dovecot.index"));
  int kept = 0;
  for (const auto& e : fs::recursive_directory_iterator(dst_home() + "/Maildir"))
    kept += e.path().filename() == "dovecot.index.cache";
  EXPECT_GT(kept, 0) << "the other folders' caches stay";
}

// Without a write under the freeze every cache is copied.
TEST_F(MoveRunnerTest, AQuietSourceKeepsEveryCopiedCache) {
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_TRUE(fs::exists(dst_home() + "/Maildir/dovecot.index.cache"));
}

// An MTA that routed a message to the old server just before the flip
// delivers it there just after the first sweep: the settle round takes it.
TEST_F(MoveRunnerTest, StragglerAfterTheFirstSweepIsSweptInTheSettleRound) {
  config_.move.sweep_settle_ms = 2'000;
  int delivered = 0;
  clock_.on_sleep([&] {
    if (dir_.account("alice").host != "store2" || delivered++) return;
    ASSERT_TRUE(fs::is_directory(src_home() + "/Maildir/new"));
    std::ofstream(src_home() + "/Maildir/new/1800000999.M9P9.straggler") << "Subject: late\r\n\r\nhello\r\n";
  });
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(delivered, 2);  // two pauses: the straggler lands in the first; the round after the second finds nothing
  int copies = 0;
  for (const auto& e : fs::recursive_directory_iterator(dst_home()))
    copies += e.path().filename().string().find("straggler") != std::string::npos;
  EXPECT_EQ(copies, 1);
}

// The settle pause counts from the flip (nothing is routed to the source
// after it), and the quota recount runs in it: the thaw, the first sweep and
// the recount take their time out of the pause, not on top of it. The
// recount is not made again when the settle round found nothing.
TEST_F(MoveRunnerTest, TheSettlePauseCountsFromTheFlipAndHoldsTheQuotaRecount) {
  config_.move.sweep_settle_ms = 2'000;
  quota_.roots = {QuotaRoot{"User quota", 0, -1, 0, -1}};
  int64_t flipped_at = 0, second_sweep_at = 0;
  int sweeps = 0;
  env_.on_step = [&](const std::string& step, StepPhase phase) {
    if (step == "flip" && phase == StepPhase::kEnd) flipped_at = clock_.now_ms();
    if (step == "thaw" && phase == StepPhase::kEnd) clock_.advance(100);
    if (step == "sweep" && phase == StepPhase::kBegin && ++sweeps == 2) second_sweep_at = clock_.now_ms();
    if (step == "sweep" && phase == StepPhase::kEnd && sweeps == 1) clock_.advance(300);
  };
  quota_.on_recalc = [&] { clock_.advance(700); };
  std::vector<int64_t> slept_after_flip;
  clock_.on_sleep([&] {
    if (flipped_at) slept_after_flip.push_back(clock_.sleeps().back());
  });
  auto rec = runner_with_quota().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_GT(flipped_at, 0);
  EXPECT_EQ(second_sweep_at, flipped_at + 2'000) << "the settle round's sweep, sweep_settle after the flip";
  EXPECT_EQ(slept_after_flip, (std::vector<int64_t>{2'000 - 100 - 300 - 700}));
  EXPECT_EQ(quota_.calls, (std::vector<std::string>{"get alice store2", "recalc alice store2", "get alice store2"}))
      << "one recount: in the pause; the settle round carried nothing over";
  EXPECT_EQ(progress_of(rec->id).quota_recalc, QuotaRecalc::kDone);
}

// A settle round that carries mail over makes the quota stale again: the
// quota_recalc step recounts after it. A recount that failed in the pause is
// tried again by the step.
TEST_F(MoveRunnerTest, TheQuotaIsRecountedAfterASettleRoundThatCarriedMail) {
  config_.move.sweep_settle_ms = 2'000;
  quota_.roots = {QuotaRoot{"User quota", 0, -1, 0, -1}};
  int delivered = 0;
  clock_.on_sleep([&] {
    if (dir_.account("alice").host != "store2" || delivered++) return;
    std::ofstream(src_home() + "/Maildir/new/1800000999.M9P9.straggler") << "Subject: late\r\n\r\nhello\r\n";
  });
  auto rec = runner_with_quota().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(delivered, 2);
  EXPECT_EQ(std::count(quota_.calls.begin(), quota_.calls.end(), "recalc alice store2"), 2)
      << "in the first pause; in the second (the straggler's round carried mail over); none after the last "
         "round, which found nothing";
  EXPECT_EQ(quota_.calls.back(), "get alice store2");

  // A failing recount: in the pause, then again in the step.
  quota_.calls.clear();
  quota_.recalc_error = Error::unavailable("quota recalc on store2: doveadm quotaRecalc: exit code 75");
  dir_.accounts.push_back({"uid=bob,ou=people", "bob", "store1", "example.org/bob", "example.org/bob", "active", 0});
  testing::GenOptions g;
  g.messages = 5;
  testing::generate_home(root_ + "/store1/example.org/bob", g);
  auto bob = runner_with_quota().move("bob", "store2", {});
  ASSERT_TRUE(bob.ok()) << bob.error().message();
  EXPECT_EQ(bob->state, MoveState::kDone) << bob->error;
  EXPECT_EQ(std::count(quota_.calls.begin(), quota_.calls.end(), "recalc bob store2"), 2);
  EXPECT_EQ(progress_of(bob->id).quota_recalc, QuotaRecalc::kFailed);
}

// A mover killed in the settle pause (after the recount there, before the
// settle round's sweep) leaves the move swept once: resume owes it that
// round, at its time, and carries over what landed meanwhile.
TEST_F(MoveRunnerTest, AMoveKilledInTheSettlePauseGetsItsSettleRoundFromResume) {
  struct Killed {};
  config_.move.sweep_settle_ms = 2'000;
  quota_.roots = {QuotaRoot{"User quota", 0, -1, 0, -1}};
  int64_t flipped_at = 0, swept_at = 0;
  bool killed_once = false, resumed = false;
  env_.on_step = [&](const std::string& step, StepPhase phase) {
    if (step == "flip" && phase == StepPhase::kEnd) flipped_at = clock_.now_ms();
    if (step == "quota_recalc" && phase == StepPhase::kEnd && !killed_once) {
      killed_once = true;
      throw Killed{};
    }
    if (step == "sweep" && phase == StepPhase::kBegin && resumed && !swept_at) swept_at = clock_.now_ms();
  };
  EXPECT_THROW((void)runner_with_quota().move("alice", "store2", {}), Killed);
  auto killed = journal_->list_moves({});
  ASSERT_TRUE(killed.ok());
  ASSERT_EQ(killed->size(), 1u);
  ASSERT_EQ(killed->front().state, MoveState::kSwept);
  std::ofstream(src_home() + "/Maildir/new/1800000999.M9P9.straggler") << "Subject: late\r\n\r\nhello\r\n";
  resumed = true;
  auto rec = runner_with_quota().resume(killed->front().id);
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(swept_at, flipped_at + 2'000) << "resume's first sweep is the settle round, at its time";
  int copies = 0;
  for (const auto& e : fs::recursive_directory_iterator(dst_home()))
    copies += e.path().filename().string().find("straggler") != std::string::npos;
  EXPECT_EQ(copies, 1);
}

TEST_F(MoveRunnerTest, NoSettleMeansOneSweepAndTheStragglerWaitsForPurge) {
  config_.move.sweep_settle_ms = 0;
  int sleeps_after_flip = 0;
  clock_.on_sleep([&] { sleeps_after_flip += dir_.account("alice").host == "store2"; });
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(sleeps_after_flip, 0);
}

TEST_F(MoveRunnerTest, LostFlipReplyIsReadBackAndTheMoveFinishes) {
  dir_.flip_fault = FakeDirectory::FlipFault::kLostReplyAfterApply;
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(dir_.account("alice").host, "store2");
  EXPECT_TRUE(fs::exists(dst_home()));
  EXPECT_FALSE(freeze_.frozen());
}

TEST_F(MoveRunnerTest, UnknownFlipOutcomeDeletesNothingAndResumeDecides) {
  dir_.flip_fault = FakeDirectory::FlipFault::kUnreachable;
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok());
  EXPECT_FALSE(is_terminal(rec->state)) << move_state_name(rec->state);
  EXPECT_THAT(rec->error, HasSubstr("cannot tell whether the flip happened"));
  EXPECT_TRUE(fs::exists(dst_home())) << "the copy LDAP may point at must survive";
  // LDAP answers again and says the flip did not happen: resume rolls back.
  dir_.find_fails = false;
  dir_.flip_fault = FakeDirectory::FlipFault::kNone;
  auto res = runner().resume(rec->id);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->state, MoveState::kRolledBack);
  EXPECT_FALSE(fs::exists(dst_home()));
  EXPECT_FALSE(freeze_.frozen());
  EXPECT_EQ(dir_.account("alice").host, "store1");
}

TEST_F(MoveRunnerTest, UnknownFlipOutcomeThatHadAppliedRollsForward) {
  dir_.flip_fault = FakeDirectory::FlipFault::kUnreachable;
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok());
  // The modify had in fact been applied before the connection died.
  dir_.find_fails = false;
  dir_.account("alice").host = "store2";
  auto res = runner().resume(rec->id);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->state, MoveState::kDone);
  EXPECT_TRUE(fs::exists(dst_home()));
  EXPECT_FALSE(freeze_.frozen());
}

// The progress record as the untyped JSON bag of earlier versions wrote it
// (same keys): resume reads what the rollback needs from it (thaw, and drop
// the renamed copy).
TEST_F(MoveRunnerTest, ResumeRollsBackFromARecordTheUntypedBagWrote) {
  dir_.flip_fault = FakeDirectory::FlipFault::kUnreachable;
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok());
  ASSERT_FALSE(is_terminal(rec->state));
  auto stored = journal_->get_move(rec->id);
  ASSERT_TRUE(stored.ok());
  stored->detail_json = R"({"clock_skew_ms":0,"empty_source":false,"freeze_requested":true,"renamed":true,)"
                        R"("src_home":"example.org/alice","late_at_flip":0})";
  ASSERT_TRUE(journal_->update_move(*stored).ok());
  dir_.find_fails = false;
  dir_.flip_fault = FakeDirectory::FlipFault::kNone;
  auto res = runner().resume(rec->id);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->state, MoveState::kRolledBack);
  EXPECT_FALSE(fs::exists(dst_home()));
  EXPECT_TRUE(fs::exists(src_home()));
  EXPECT_FALSE(freeze_.frozen());
}

// An unreadable record has no home: every path would name a mail root, so
// resume refuses instead of sweeping or deleting there; it still thaws.
TEST_F(MoveRunnerTest, ResumeOfARecordWithoutItsHomeTouchesNothing) {
  dir_.flip_fault = FakeDirectory::FlipFault::kUnreachable;
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok());
  ASSERT_FALSE(is_terminal(rec->state));
  ASSERT_TRUE(freeze_.frozen()) << "an unknown flip leaves the freeze for resume";
  for (std::string garbage : {"{not json", R"({"src_home":42,"renamed":true})"}) {
    auto stored = journal_->get_move(rec->id);
    ASSERT_TRUE(stored.ok());
    stored->detail_json = garbage;
    ASSERT_TRUE(journal_->update_move(*stored).ok());
    dir_.find_fails = false;
    dir_.flip_fault = FakeDirectory::FlipFault::kNone;
    dir_.account("alice").host = "store2";  // flipped: resume would sweep the source into the copy
    auto res = runner().resume(rec->id);
    ASSERT_FALSE(res.ok()) << garbage;
    EXPECT_EQ(res.error().code(), ErrorCode::kCorrupt) << garbage;
    EXPECT_THAT(res.error().message(), HasSubstr("names no home")) << garbage;
    EXPECT_TRUE(fs::exists(src_home()));
    EXPECT_TRUE(fs::exists(dst_home()));
    EXPECT_EQ(journal_->get_move(rec->id)->detail_json, garbage) << "the record stays for an operator";
    EXPECT_FALSE(freeze_.frozen()) << "but its user is not left frozen (the record's freeze time says it froze)";
  }
}

TEST_F(MoveRunnerTest, RollbackWhoseThawFailsStaysActiveUntilResume) {
  dir_.flip_fault = FakeDirectory::FlipFault::kConflict;
  freeze_.fail_thaws = 1;
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->state, MoveState::kRollingBack);
  EXPECT_THAT(rec->error, HasSubstr("entry changed underneath us; rollback incomplete: rollback: gate unreachable"));
  EXPECT_TRUE(freeze_.frozen()) << "the failed thaw left the freeze";
  EXPECT_FALSE(is_terminal(rec->state)) << "an unfinished rollback stays for resume";
  auto res = runner().resume(rec->id);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->state, MoveState::kRolledBack);
  EXPECT_FALSE(freeze_.frozen());
  EXPECT_FALSE(fs::exists(dst_home()));
  EXPECT_FALSE(any_staging());
  EXPECT_EQ(dir_.account("alice").host, "store1");
}

TEST_F(MoveRunnerTest, DryRunWritesNothingButOneRecord) {
  MoveOptions o;
  o.dry_run = true;
  auto rec = runner().move("alice", "store2", o);
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDryRun);
  EXPECT_FALSE(fs::exists(dst_home()));
  EXPECT_TRUE(fs::is_empty(root_ + "/store2/example.org"));
  EXPECT_TRUE(freeze_.calls.empty());
  EXPECT_EQ(dir_.flips, 0);
  EXPECT_EQ(journal_->list_moves({})->size(), 1u);
  EXPECT_TRUE(journal_->list_steps(rec->id)->empty());
}

TEST_F(MoveRunnerTest, PlannedMoveOfAUserWhoMovedMeanwhileDoesNotStart) {
  MoveOptions o;
  o.expected_from = "store2";
  auto rec = runner().move("alice", "store1", o);
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(rec.error().message(), "user alice is on store1 now, not on store2 as planned");
  EXPECT_TRUE(journal_->list_moves({})->empty());
}

// The nightly run's re-checks against the plan: each is a skip (kConflict)
// before anything is copied, frozen or flipped.
TEST_F(MoveRunnerTest, PlannedMoveOfAFrozenUserDoesNotStart) {
  dir_.account("alice").status = "frozen";
  MoveOptions o;
  o.refuse_frozen = true;
  auto rec = runner().move("alice", "store2", o);
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(rec.error().message(), "user alice is frozen (mailAccountStatus=frozen): someone else holds it");
  EXPECT_TRUE(freeze_.calls.empty());
  EXPECT_FALSE(fs::exists(dst_home()));
}

TEST_F(MoveRunnerTest, PlannedMoveWhoseMailboxGrewPastTheDriftDoesNotStart) {
  MoveOptions o;
  o.max_size_drift = 0.2;
  o.bytes_planned = 1000;  // the mailbox is far larger now
  auto rec = runner().move("alice", "store2", o);
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), ErrorCode::kConflict);
  EXPECT_NE(rec.error().message().find("planned 1000 B"), std::string::npos) << rec.error().message();
  EXPECT_NE(rec.error().message().find("(max_size_drift is 20%)"), std::string::npos) << rec.error().message();
  EXPECT_TRUE(freeze_.calls.empty());
  EXPECT_FALSE(any_staging());
  EXPECT_EQ(dir_.flips, 0);
  // The same move within the drift runs.
  MoveOptions dry;
  dry.dry_run = true;
  auto size = runner().move("alice", "store2", dry);
  ASSERT_TRUE(size.ok());
  MoveOptions within;
  within.max_size_drift = 0.2;
  within.bytes_planned = size->bytes_planned * 11 / 10;
  auto ok = runner().move("alice", "store2", within);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->state, MoveState::kDone) << ok->error;
}

TEST_F(MoveRunnerTest, PlannedMoveAboveTheDestinationsCeilingDoesNotStart) {
  MoveOptions o;
  o.max_dest_util = 1e-9;  // any filesystem is fuller than that
  auto rec = runner().move("alice", "store2", o);
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), ErrorCode::kConflict);
  EXPECT_NE(rec.error().message().find("store2 would be "), std::string::npos) << rec.error().message();
  EXPECT_NE(rec.error().message().find("% full with user alice (hard ceiling 0.0%)"), std::string::npos)
      << rec.error().message();
  EXPECT_FALSE(any_staging());
}

TEST_F(MoveRunnerTest, PurgeNeverDeletesTheLiveMailbox) {
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok());
  ASSERT_EQ(rec->state, MoveState::kDone);
  // An operator points the user back at store1 by hand: its copy is live again.
  dir_.account("alice").host = "store1";
  auto p = runner().purge(rec->id, 0);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(fs::exists(src_home()));
  // Back on store2, the purge deletes the old copy.
  dir_.account("alice").host = "store2";
  auto q = runner().purge(rec->id, 0);
  ASSERT_TRUE(q.ok()) << q.error().message();
  EXPECT_EQ(q->state, MoveState::kPurged);
  EXPECT_FALSE(fs::exists(src_home()));
  EXPECT_TRUE(fs::exists(dst_home()));
}

// UIDs the source's uid lists give the messages present in its folders: what
// `verify USER` compares, counted independently of it.
int64_t listed_and_present(const std::string& maildir, int64_t& folders) {
  int64_t n = 0;
  folders = 0;
  for (const auto& e : fs::recursive_directory_iterator(maildir)) {
    if (e.path().filename() != "dovecot-uidlist") continue;
    ++folders;
    std::set<std::string> bases;
    for (const char* sub : {"cur", "new"})
      for (const auto& m : fs::directory_iterator(e.path().parent_path() / sub)) {
        std::string name = m.path().filename().string();
        bases.insert(name.substr(0, name.find(':')));
      }
    std::ifstream in(e.path());
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      auto colon = line.find(" :");
      if (colon == std::string::npos) continue;
      std::string name = line.substr(colon + 2);
      n += bases.count(name.substr(0, name.find(':')));
    }
  }
  return n;
}

// `mailshard verify USER` checks UIDs too, while the source copy is there:
// every message the move copied keeps its UID and every folder its
// UIDVALIDITY. Mail that arrived since and expunges are no change; a folder
// Dovecot renumbered is. After purge it says the UIDs were not checked.
TEST_F(MoveRunnerTest, VerifyUserChecksUidsAgainstTheSourceCopyUntilPurge) {
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  int64_t folders = 0;
  const int64_t uids = listed_and_present(src_home() + "/Maildir", folders);
  ASSERT_GT(uids, 10);
  auto ok = runner().verify_user("alice");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_THAT(*ok, HasSubstr(fmt::format("; {} UIDs in {} folders as the source copy has them", uids, folders)));

  // New mail (a new UID) and an expunge since the move are no change.
  const std::string sent = dst_home() + "/Maildir/.Sent";
  std::ifstream in(sent + "/dovecot-uidlist");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(sent + "/new/1800000000.M1P1.new", "Subject: new\r\n\r\nx\r\n");
  std::ofstream(sent + "/dovecot-uidlist", std::ios::app) << "99 :1800000000.M1P1.new\n";
  fs::path first;
  for (const auto& m : fs::directory_iterator(dst_home() + "/Maildir/cur")) first = m.path();
  fs::remove(first);
  auto still = runner().verify_user("alice");
  ASSERT_TRUE(still.ok()) << still.error().message();
  EXPECT_THAT(*still, HasSubstr("1 gone since"));
  EXPECT_THAT(*still, HasSubstr(fmt::format("; {} UIDs in {} folders", uids - 1, folders)));

  // Two messages of .Sent swapped their UIDs (the same UIDVALIDITY): both are named.
  std::istringstream lines(text);
  std::string header, line;
  std::getline(lines, header);
  std::vector<std::pair<std::string, std::string>> rows;  // UID, name
  while (std::getline(lines, line)) rows.emplace_back(line.substr(0, line.find(' ')), line.substr(line.find(" :") + 2));
  ASSERT_GE(rows.size(), 2u);
  auto uidlist = [&](const std::string& head) {
    std::string out = head + "\n";
    for (const auto& [uid, name] : rows) out += uid + " :" + name + "\n";
    return out;
  };
  std::swap(rows[0].second, rows[1].second);
  write_file(sent + "/dovecot-uidlist", uidlist(header));
  auto swapped = runner().verify_user("alice");
  ASSERT_FALSE(swapped.ok());
  EXPECT_EQ(swapped.error().code(), ErrorCode::kVerifyFailed);
  const std::string base0 = rows[1].second.substr(0, rows[1].second.find(':'));
  EXPECT_THAT(swapped.error().message(),
              HasSubstr("user alice: UIDs differ from the copy move 1 made: .Sent: " + base0 + " has UID " +
                        rows[1].first + ", was " + rows[0].first + " (and 1 more)"));

  // Dovecot gave .Sent a new UIDVALIDITY (the UIDs as they were).
  std::swap(rows[0].second, rows[1].second);
  const std::string uidvalidity = header.substr(3, header.find(' ', 3) - 3);
  write_file(sent + "/dovecot-uidlist", uidlist("3 V1800000000 N" + std::to_string(100)));
  auto bad = runner().verify_user("alice");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kVerifyFailed);
  EXPECT_EQ(bad.error().message(), "user alice: UIDs differ from the copy move 1 made: .Sent: UIDVALIDITY " +
                                       uidvalidity + " became 1800000000");

  // Purged: no source copy to compare with, and the report says so.
  auto p = runner().purge(rec->id, 0);
  ASSERT_TRUE(p.ok()) << p.error().message();
  auto after = runner().verify_user("alice");
  ASSERT_TRUE(after.ok()) << after.error().message();
  EXPECT_THAT(*after, HasSubstr("; UIDs not checked: the source copy is purged"));
}

TEST_F(MoveRunnerTest, PurgeRespectsTheGracePeriod) {
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok());
  auto p = runner().purge(rec->id, 7 * 86'400'000ll);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), "move 1 finished 0ms ago, inside its grace period of 7d");
  clock_.advance(8 * 86'400'000ll);
  EXPECT_TRUE(runner().purge(rec->id, 7 * 86'400'000ll).ok());
}

// The destination's quota limit is below the mailbox: refused in preflight
// with one line naming the user, the size and the limit; nobody frozen,
// nothing left at the destination, not even the empty home Dovecot makes
// to answer quota get.
TEST_F(MoveRunnerTest, AMailboxOverTheDestinationsQuotaIsRefusedInPreflight) {
  quota_.roots = {QuotaRoot{"User quota", 0, 10, 0, -1}};  // 10 KiB
  quota_.on_get = [&] {
    fs::create_directories(dst_home() + "/Maildir");
    std::ofstream(dst_home() + "/Maildir/dovecot.list.index.log") << "x";
  };
  auto rec = runner_with_quota().move("alice", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), ErrorCode::kNoSpace);
  EXPECT_THAT(rec.error().message(),
              ::testing::MatchesRegex("user alice has [0-9.]+ [KM]iB of mail \\(" + std::to_string(source_messages()) +
                                      " messages\\) but the quota 'User quota' on store2 allows 10\\.0 KiB"));
  EXPECT_EQ(quota_.calls, (std::vector<std::string>{"get alice store2"}));
  EXPECT_EQ(dir_.account("alice").host, "store1");
  EXPECT_TRUE(freeze_.calls.empty());
  EXPECT_FALSE(fs::exists(dst_home())) << "the home Dovecot created to answer is removed";
  EXPECT_FALSE(any_staging());
  MoveFilter f;
  f.user = "alice";
  auto moves = journal_->list_moves(f);
  ASSERT_TRUE(moves.ok());
  ASSERT_EQ(moves->size(), 1u);
  EXPECT_EQ(moves->front().state, MoveState::kRolledBack);
}

TEST_F(MoveRunnerTest, AMessageLimitCountsToo) {
  const int64_t n = source_messages();
  quota_.roots = {QuotaRoot{"User quota", 0, -1, 0, n - 1}};
  auto rec = runner_with_quota().move("alice", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().message(), fmt::format("user alice has {} messages but the quota 'User quota' on store2 allows {}",
                                               n, n - 1));
  quota_.roots = {QuotaRoot{"User quota", 0, -1, 0, n}};  // exactly at the limit fits
  auto fits = runner_with_quota().move("alice", "store2", {});
  ASSERT_TRUE(fits.ok()) << fits.error().message();
  EXPECT_EQ(fits->state, MoveState::kDone) << fits->error;
}

// The destination's doveadm does not answer: the limit cannot be checked,
// and the move does not start (the nightly run tries again).
TEST_F(MoveRunnerTest, AQuotaThatCannotBeReadStopsThePreflight) {
  quota_.get_error = Error::unavailable("quota get on store2: doveadm quotaGet: POST http://x: Couldn't connect to server");
  auto rec = runner_with_quota().move("alice", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(rec.error().message(), HasSubstr("user alice: the quota limit: quota get on store2"));
  EXPECT_TRUE(freeze_.calls.empty());
  EXPECT_FALSE(fs::exists(dst_home()));
  // No quota plugin there: nothing to exceed, the move goes ahead.
  quota_.get_error = Error::unsupported("store2 has no quota plugin");
  quota_.recalc_error = Error::unsupported("store2 has no quota plugin");
  auto moved = runner_with_quota().move("alice", "store2", {});
  ASSERT_TRUE(moved.ok()) << moved.error().message();
  EXPECT_EQ(moved->state, MoveState::kDone) << moved->error;
  EXPECT_EQ(progress_of(moved->id).quota_recalc, QuotaRecalc::kSkipped);
}

// Something that is not Dovecot's empty scaffolding at the destination path
// after quota get is not removed: the move stops.
TEST_F(MoveRunnerTest, MailAppearingAtTheDestinationDuringPreflightIsNotRemoved) {
  quota_.roots = {QuotaRoot{"User quota", 0, 1 << 20, 0, -1}};
  quota_.on_get = [&] {
    fs::create_directories(dst_home() + "/Maildir/new");
    std::ofstream(dst_home() + "/Maildir/new/1.M1P1.elsewhere") << "mail";
  };
  auto rec = runner_with_quota().move("alice", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(fs::exists(dst_home() + "/Maildir/new/1.M1P1.elsewhere"));
}

// A move that fits: the limits are recorded, the quota is recalculated on
// the destination after the sweep, and what doveadm then reports is recorded.
TEST_F(MoveRunnerTest, AMoveThatFitsRecalculatesTheDestinationsQuotaAfterTheSweep) {
  quota_.roots = {QuotaRoot{"User quota", 123, 1 << 20, 60, -1}};
  quota_.on_get = [&] {
    // Only at preflight: later the home is the user's real one.
    if (quota_.calls.size() == 1) fs::create_directories(dst_home() + "/Maildir");
  };
  auto rec = runner_with_quota().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(quota_.calls,
            (std::vector<std::string>{"get alice store2", "recalc alice store2", "get alice store2"}));
  MoveProgress p = progress_of(rec->id);
  EXPECT_EQ(p.quota_limit_kib, 1 << 20);
  EXPECT_EQ(p.quota_message_limit, std::nullopt);
  EXPECT_EQ(p.quota_need_messages, source_messages());
  EXPECT_GT(p.quota_need_bytes.value_or(0), 0);
  EXPECT_EQ(p.quota_recalc, QuotaRecalc::kDone);
  EXPECT_EQ(p.quota_storage_kib, 123);
  EXPECT_EQ(p.quota_messages, 60);
  EXPECT_TRUE(testing::compare_trees(src_home(), dst_home()).empty());
}

// Quota is advisory once the mail is in place: a failing recalc is recorded
// and the move completes.
TEST_F(MoveRunnerTest, AFailingRecalcIsRecordedAndTheMoveCompletes) {
  quota_.roots = {QuotaRoot{"User quota", 0, -1, 0, -1}};
  quota_.recalc_error = Error::unavailable("quota recalc on store2: doveadm quotaRecalc: exit code 75 (temporary failure)");
  auto rec = runner_with_quota().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  MoveProgress p = progress_of(rec->id);
  EXPECT_EQ(p.quota_recalc, QuotaRecalc::kFailed);
  EXPECT_EQ(p.quota_recalc_error, "quota recalc on store2: doveadm quotaRecalc: exit code 75 (temporary failure)");
  EXPECT_EQ(p.quota_storage_kib, std::nullopt);
}

TEST_F(MoveRunnerTest, WithoutDoveadmAtTheDestinationTheQuotaStepIsSkipped) {
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  MoveProgress p = progress_of(rec->id);
  EXPECT_EQ(p.quota_recalc, QuotaRecalc::kSkipped);
  EXPECT_EQ(p.quota_recalc_error, "store2 has no doveadm_url");
  EXPECT_EQ(p.quota_limit_kib, std::nullopt);
}

// A dry run writes nothing anywhere, and quota get would create the home: it
// is not asked.
TEST_F(MoveRunnerTest, ADryRunDoesNotAskForTheQuota) {
  quota_.roots = {QuotaRoot{"User quota", 0, 10, 0, -1}};
  MoveOptions o;
  o.dry_run = true;
  auto rec = runner_with_quota().move("alice", "store2", o);
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_TRUE(quota_.calls.empty());
}

}  // namespace
}  // namespace mailshard
