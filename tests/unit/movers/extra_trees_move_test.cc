// A move of a Dovecot Maildir whose index and control files live outside the
// home (mail_location INDEX=, CONTROL=), with real local transports and fakes
// for LDAP, the freeze and the kicker: every tree arrives byte for byte at its
// own path on the destination, the uidlists are verified where they are (the
// control tree), a kill at every step boundary before the flip rolls every
// tree back, after it rolls forward, purge removes every source tree, and
// servers that keep different trees outside the home are refused in one line.
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "journal/sqlite_journal.h"
#include "movers/move_progress.h"
#include "movers/move_runner.h"
#include "tests/support/fakes.h"
#include "tests/unit/movers/maildir_gen.h"
#include "tests/unit/movers/move_fakes.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::read_whole;
using testing::write_file;

struct Killed {};  // a kill -9: the runner's stack goes, nothing is cleaned up

class DyingEnv : public testing::LocalEnv {
 public:
  std::string die_at;  // "flip.begin" etc.
  std::function<void(const std::string&)> at_boundary;
  void step_boundary(const std::string& step, StepPhase phase) override {
    const std::string at = step + (phase == StepPhase::kBegin ? ".begin" : ".end");
    if (at_boundary) at_boundary(at);
    if (at == die_at) throw Killed{};
  }
};

class ExtraTreesMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/extra_trees_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    testing::make_two_stores(root_, 2, config_, env_.t);
    for (auto& s : config_.servers) {
      s.mail_location = "maildir:~/Maildir:INDEX=" + s.mail_root + "/index/%d/%n:CONTROL=" + s.mail_root +
                        "/control/%{domain}/%{username}";
      for (const char* disk : {"/index", "/control"}) fs::create_directories(s.mail_root + disk);  // their mount points
    }
    make_source();
    dir_.accounts = {{"uid=alice,ou=people", "alice@example.org", "store1", "example.org/alice", "example.org/alice",
                      "active", 0}};
    auto j = SqliteJournal::open(root_ + "/journal.sqlite", clock_);
    ASSERT_TRUE(j.ok()) << j.error().message();
    journal_ = std::move(*j);
  }

  std::string tree(const std::string& store, const std::string& name) const {
    if (name == "home") return root_ + "/" + store + "/example.org/alice";
    return root_ + "/" + store + "/" + name + "/example.org/alice";
  }

  void make_source() {
    const std::string m = tree("store1", "home") + "/Maildir";
    for (const char* d : {"cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"}) fs::create_directories(m + "/" + d);
    const int64_t t0 = 1'700'000'000'000'000'000;
    auto msg = [&](const std::string& path, int n) {
      write_file(path, "Subject: m" + std::to_string(n) + "\r\n\r\nbody\r\n", t0 + n * 1'000'000'000ll);
    };
    msg(m + "/cur/1700000001.M1P1.host,S=20:2,S", 1);
    msg(m + "/cur/1700000002.M2P1.host,S=20:2,a", 2);
    msg(m + "/new/1700000003.M3P1.host,S=20", 3);
    msg(m + "/.Sent/cur/1700000004.M4P1.host,S=20:2,S", 4);
    write_file(m + "/.Sent/maildirfolder", "");
    // CONTROL=: the uidlists, keywords and subscriptions, laid out like the Maildir.
    const std::string c = tree("store1", "control");
    fs::create_directories(c + "/.Sent");
    fs::create_directories(c + "/.INBOX");
    write_file(c + "/.INBOX/dovecot-uidlist",
               "3 V1700000123 N4 G0123456789abcdef\n1 :1700000001.M1P1.host,S=20:2,S\n2 :1700000002.M2P1.host,S=20:2,a\n");
    write_file(c + "/dovecot-keywords", "0 $Important\n");
    write_file(c + "/subscriptions", "V\t2\n\nSent\n");
    write_file(c + "/.Sent/dovecot-uidlist", "3 V1700000456 N2\n1 :1700000004.M4P1.host,S=20:2,S\n");
    // INDEX=: Dovecot's indexes.
    const std::string i = tree("store1", "index");
    fs::create_directories(i + "/.Sent");
    write_file(i + "/dovecot.index.log", std::string(300, 'L'));
    write_file(i + "/dovecot.list.index.log", std::string(100, 'l'));
    write_file(i + "/.Sent/dovecot.index.log", std::string(200, 's'));
  }

  MoveRunner runner() {
    return MoveRunner(MoveDeps{config_, dir_, freeze_, kicker_, nullptr, *journal_, clock_, env_, SyncOptions{}});
  }
  static std::map<std::string, std::string> files(const std::string& dir) { return testing::tree_files(dir); }
  std::vector<std::string> stagings() const { return testing::staging_names(root_ + "/store2"); }

  std::string root_;
  Config config_;
  testing::FakeDirectory dir_;
  testing::RecordingFreeze freeze_;
  testing::RecordingKicker kicker_;
  DyingEnv env_;
  testing::FakeClock clock_;
  std::unique_ptr<SqliteJournal> journal_;
};

TEST_F(ExtraTreesMoveTest, EveryTreeArrivesAtItsOwnPath) {
  const auto home = files(tree("store1", "home")), index = files(tree("store1", "index")),
             control = files(tree("store1", "control"));
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(files(tree("store2", "home")), home);
  EXPECT_EQ(files(tree("store2", "index")), index);
  EXPECT_EQ(files(tree("store2", "control")), control);
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_EQ(dir_.accounts[0].host, "store2");
  auto p = MoveProgress::parse(rec->detail_json);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->trees.size(), 2u);
  EXPECT_EQ(p->trees[0].name, "index");
  EXPECT_EQ(p->trees[0].src, "index/example.org/alice");
  EXPECT_EQ(p->trees[1].name, "control");
  EXPECT_EQ(p->trees[1].dst, "control/example.org/alice");
  EXPECT_TRUE(p->trees[0].renamed && p->trees[1].renamed);
  EXPECT_EQ(p->trees[1].uidlists_checked, 2) << "the uidlists are verified in the control tree";
  EXPECT_EQ(p->trees[0].uidlists_checked, 0);
  // The source is kept until purge, which removes every tree.
  EXPECT_EQ(files(tree("store1", "control")), control);
  clock_.advance(1000);
  auto purged = runner().purge(rec->id, 0);
  ASSERT_TRUE(purged.ok()) << purged.error().message();
  EXPECT_EQ(purged->state, MoveState::kPurged);
  for (const char* t : {"home", "index", "control"}) EXPECT_FALSE(fs::exists(tree("store1", t))) << t;
  EXPECT_EQ(files(tree("store2", "control")), control);
}

TEST_F(ExtraTreesMoveTest, TheVerifierReadsTheUidlistsInTheControlTree) {
  // A uidlist that differs in the staged control tree, as a disk error would leave it.
  env_.at_boundary = [&](const std::string& at) {
    if (at != "verify.begin") return;
    for (const auto& s : stagings())
      if (s.find("/control/") != std::string::npos) write_file(s + "/.Sent/dovecot-uidlist", "3 V1 N2\n1 :x\n", 0);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_THAT(rec->error, HasSubstr("the control tree"));
  EXPECT_THAT(rec->error, HasSubstr(".Sent/dovecot-uidlist"));
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  for (const char* t : {"home", "index", "control"}) EXPECT_FALSE(fs::exists(tree("store2", t))) << t;
  EXPECT_EQ(dir_.accounts[0].host, "store1");
}

// kill -9 at every step boundary, then resume: before the flip every tree
// is rolled back (no staging, nothing at the final paths), after it every
// tree is in place; the source is whole either way.
TEST_F(ExtraTreesMoveTest, KilledAtEveryStepThenResumed) {
  const auto home = files(tree("store1", "home")), index = files(tree("store1", "index")),
             control = files(tree("store1", "control"));
  const std::vector<std::string> boundaries = {"precopy.begin", "precopy.end",    "freeze.end",  "kick.end",
                                               "final_sync.begin", "final_sync.end", "verify.end",  "flip.begin",
                                               "flip.end",      "thaw.end",       "sweep.end"};
  for (const auto& at : boundaries) {
    SCOPED_TRACE(at);
    env_.die_at = at;
    freeze_.calls.clear();
    int64_t id = 0;
    try {
      (void)runner().move("alice@example.org", "store2", {});
      FAIL() << "not killed";
    } catch (const Killed&) {
    }
    env_.die_at.clear();
    MoveFilter f;
    f.user = "alice@example.org";
    auto moves = journal_->list_moves(f);
    ASSERT_TRUE(moves.ok());
    id = moves->front().id;
    auto rec = runner().resume(id);
    ASSERT_TRUE(rec.ok()) << rec.error().message();
    EXPECT_THAT(stagings(), ::testing::IsEmpty());
    EXPECT_EQ(files(tree("store1", "home")), home);
    EXPECT_EQ(files(tree("store1", "control")), control);
    const bool flipped = at == "flip.end" || at == "thaw.end" || at == "sweep.end";
    if (flipped) {
      EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
      EXPECT_EQ(files(tree("store2", "index")), index);
      EXPECT_EQ(files(tree("store2", "control")), control);
      EXPECT_EQ(files(tree("store2", "home")), home);
      // Back to the start for the next boundary.
      dir_.accounts[0].host = "store1";
      for (const char* t : {"home", "index", "control"}) fs::remove_all(tree("store2", t));
      ASSERT_TRUE(journal_->update_move([&] {
                    auto m = *journal_->get_move(id);
                    m.state = MoveState::kPurged;
                    return m;
                  }())
                      .ok());
    } else {
      EXPECT_EQ(rec->state, MoveState::kRolledBack) << rec->error;
      for (const char* t : {"home", "index", "control"}) EXPECT_FALSE(fs::exists(tree("store2", t))) << t;
      EXPECT_EQ(dir_.accounts[0].host, "store1");
    }
    EXPECT_FALSE(freeze_.frozen());
  }
}

// The flip renames the other trees first; when the home's rename then fails
// (a mailbox appeared at its path), the rollback removes the trees already
// renamed (ours: LDAP still names the source) and leaves the foreign home alone.
TEST_F(ExtraTreesMoveTest, AFlipCutShortAfterTheOtherTreesRollsThemBack) {
  env_.at_boundary = [&](const std::string& at) {
    if (at != "flip.begin") return;
    fs::create_directories(tree("store2", "home") + "/Maildir/cur");
    write_file(tree("store2", "home") + "/foreign", "not ours", 0);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_THAT(rec->error, HasSubstr("has a mailbox at example.org/alice that appeared during the move"));
  auto p = MoveProgress::parse(rec->detail_json);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->trees[0].renamed && p->trees[1].renamed) << "both were in place when the home's rename failed";
  EXPECT_FALSE(fs::exists(tree("store2", "index")));
  EXPECT_FALSE(fs::exists(tree("store2", "control")));
  EXPECT_EQ(read_whole(tree("store2", "home") + "/foreign"), "not ours");
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_EQ(dir_.accounts[0].host, "store1");
  EXPECT_FALSE(freeze_.frozen());
}

TEST_F(ExtraTreesMoveTest, ServersThatKeepOtherTreesOutsideTheHomeAreRefused) {
  config_.servers[1].mail_location = "maildir:~/Maildir:INDEX=" + config_.servers[1].mail_root + "/index/%d/%n";
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().message(),
            "user alice@example.org: store1's mail_location keeps index, control outside the home but store2's keeps "
            "index: those files would change place and clients would see new UIDVALIDITYs (make the INDEX=, "
            "CONTROL=, ALT= and INBOX= options alike)");
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
}

TEST_F(ExtraTreesMoveTest, ATreeOutsideTheMailRootIsRefused) {
  config_.servers[1].mail_location = "maildir:~/Maildir:INDEX=/var/index/%d/%n:CONTROL=/var/control/%d/%n";
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().message(), "user alice@example.org: store2: the index tree: '/var/index/example.org/alice' is "
                                   "not inside the mail root '" +
                                       config_.servers[1].mail_root + "'");
}

TEST_F(ExtraTreesMoveTest, AStaleTreeAtTheDestinationStopsTheMove) {
  fs::create_directories(tree("store2", "control"));
  write_file(tree("store2", "control") + "/dovecot-uidlist", "3 V9 N1\n", 0);
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_THAT(rec.error().message(),
              HasSubstr("store2 already has a control tree of user alice@example.org at control/example.org/alice"));
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
  EXPECT_EQ(read_whole(tree("store2", "control") + "/dovecot-uidlist"), "3 V9 N1\n");
}

}  // namespace
}  // namespace mailshard
