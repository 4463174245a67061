// A Courier -> Dovecot move with real local transports and fakes for LDAP,
// the freeze and the kicker: the convert step's result on disk, a kill at
// every destination call of the convert step followed by resume (rolled
// back, nothing lost, and the next move ends in the same tree), and bad
// Courier files refused in one line.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "journal/sqlite_journal.h"
#include "movers/courier_conversion.h"
#include "movers/mail_format.h"
#include "movers/move_progress.h"
#include "movers/move_runner.h"
#include "util/strings.h"
#include "tests/support/fakes.h"
#include "tests/unit/movers/maildir_gen.h"
#include "tests/unit/movers/move_fakes.h"
#include "transport/transport_factory.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::read_whole;
using testing::write_file;

struct Killed {};  // a kill -9: the runner's stack goes, nothing is cleaned up

// Forwards to a transport; while armed, counts the calls that change things
// and "kills" the process at call number kill_at.
class KillingTransport final : public Transport {
 public:
  explicit KillingTransport(std::unique_ptr<Transport> t) : t_(std::move(t)) {}
  bool armed = false;
  int calls = 0;
  int kill_at = -1;
  std::string describe() const override { return t_->describe(); }
  int max_streams() const override { return t_->max_streams(); }
  Result<TreeListing> list_tree(const std::string& home) override { return t_->list_tree(home); }
  Result<std::vector<StatResult>> stat(const std::vector<StatRequest>& r) override { return t_->stat(r); }
  Result<std::vector<Result<std::string>>> head(const std::vector<std::string>& p, uint32_t m) override {
    return t_->head(p, m);
  }
  Result<std::vector<Status>> apply(const std::vector<TreeOp>& ops) override {
    if (!armed) return t_->apply(ops);
    // Half of a batch, then the kill: a batch is no transaction.
    if (++calls == kill_at) {
      std::vector<TreeOp> half(ops.begin(), ops.begin() + static_cast<long>(ops.size() / 2));
      (void)t_->apply(half);
      throw Killed{};
    }
    return t_->apply(ops);
  }
  Result<Signature> signature(const SignatureRequest& r) override { return t_->signature(r); }
  Result<FsSpace> space(const std::string& p) override { return t_->space(p); }
  Result<std::unique_ptr<FileReader>> open_reader(std::vector<ReadSpec> specs) override {
    return t_->open_reader(std::move(specs));
  }
  Result<std::unique_ptr<FileWriter>> open_writer(const WriterOptions& o) override {
    if (armed && ++calls == kill_at) throw Killed{};
    return t_->open_writer(o);
  }

 private:
  std::unique_ptr<Transport> t_;
};

class ArmingEnv : public testing::LocalEnv {
 public:
  KillingTransport* dst = nullptr;
  std::string die_at;  // "convert.end" etc.
  std::function<void(const std::string&)> at_boundary;
  void step_boundary(const std::string& step, StepPhase phase) override {
    const std::string at = step + (phase == StepPhase::kBegin ? ".begin" : ".end");
    if (at_boundary) at_boundary(at);
    if (at == die_at) throw Killed{};
    if (dst) dst->armed = step == "convert" && phase == StepPhase::kBegin;
  }
};

const char* kUiddb =
    "1 1700000000 40\n"
    "3 1700000001.M1P1.host,S=120\n"
    "5 1700000002.M2P1.host,S=130\n"
    "8 1700000003.M3P1.host,S=140\n"
    "9 1700000004.M4P1.host,S=150\n";

class CourierMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/courier_move_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    testing::make_two_stores(root_, 2, config_, env_.t);
    config_.servers[0].mail_location = "courier:~/Maildir";
    config_.servers[1].mail_location = "maildir:~/Maildir";
    auto dst = std::make_unique<KillingTransport>(std::move(env_.t["store2"]));
    env_.dst = dst.get();
    env_.t["store2"] = std::move(dst);
    make_courier_home(src_home());
    dir_.accounts = {{"uid=alice,ou=people", "alice", "store1", "example.org/alice", "example.org/alice", "active", 0}};
    auto j = SqliteJournal::open(root_ + "/journal.sqlite", clock_);
    ASSERT_TRUE(j.ok()) << j.error().message();
    journal_ = std::move(*j);
  }

  static void make_courier_home(const std::string& home) {
    const std::string m = home + "/Maildir";
    for (const char* d : {"cur", "new", "tmp", "courierimapkeywords", ".Entwürfe/cur", ".Entwürfe/new", ".Entwürfe/tmp",
                          ".Sent/cur", ".Sent/new", ".Sent/tmp"})
      fs::create_directories(m + "/" + d);
    const int64_t t0 = 1'700'000'000'000'000'000;
    auto msg = [&](const std::string& path, int n) {
      write_file(path, "Subject: m" + std::to_string(n) + "\r\nMessage-ID: <" + std::to_string(n) + "@x>\r\n\r\nbody\r\n",
                 t0 + n * 1'000'000'000ll);
    };
    msg(m + "/cur/1700000001.M1P1.host,S=120:2,S", 1);
    msg(m + "/cur/1700000002.M2P1.host,S=130:2,FS", 2);
    msg(m + "/cur/1700000003.M3P1.host,S=140:2,", 3);
    msg(m + "/cur/1700000004.M4P1.host,S=150:2,RS", 4);
    msg(m + "/new/1700000005.M5P1.host,S=160", 5);  // not numbered yet
    write_file(m + "/courierimapuiddb", kUiddb);
    write_file(m + "/courierimapkeywords/:list", "$Label1\nProject\n\n1700000001.M1P1.host,S=120:0 1\n");
    write_file(m + "/courierimapkeywords/.3.1700000003.M3P1.host,S=140", "Later\n");
    msg(m + "/.Entwürfe/cur/1700000010.M10P1.host:2,D", 10);
    write_file(m + "/.Entwürfe/courierimapuiddb", "1 1700000500 2\n1 1700000010.M10P1.host\n");
    write_file(m + "/.Entwürfe/maildirfolder", "");
    msg(m + "/.Sent/cur/1700000020.M20P1.host:2,S", 20);
    write_file(m + "/.Sent/courierimapuiddb", "1 1700000600 7\n6 1700000020.M20P1.host\n");
    write_file(m + "/.Sent/maildirfolder", "");
    write_file(m + "/courierimapsubscribed", "INBOX\nINBOX.Entwürfe\nINBOX.Sent\n");
    // Courier-IMAP's hierarchy ACLs (its imapd writes them for new folders).
    fs::create_directories(m + "/courierimaphieracl");
    write_file(m + "/courierimaphieracl/Entw&APw-rfe", "owner aceilrstwx\nadministrators aceilrstwx\n");
  }

  // A move killed at every call the destination gets in the convert step
  // (and at its boundaries), resumed: it rolls back with the source as it was,
  // and the next move ends in the tree a clean move makes.
  void kill_anywhere_in_convert_then_resume() {
  // The reference: a clean move, in a world of its own.
  std::map<std::string, std::string> want;
  int calls = 0;
  {
    auto rec = runner().move("alice", "store2", {});
    ASSERT_TRUE(rec.ok() && rec->state == MoveState::kDone) << (rec.ok() ? rec->error : rec.error().message());
    want = dst_files();
    calls = env_.dst->calls;
  }
  ASSERT_GE(calls, 3) << "folder renames, message renames, the writer, removals";
  const auto source_before = [&] {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(src_home()))
      if (e.is_regular_file()) out[fs::relative(e.path(), src_home()).string()] = read_whole(e.path().string());
    return out;
  }();
  std::vector<std::string> kills;
  for (int k = 1; k <= calls; ++k) kills.push_back("call " + std::to_string(k));
  kills.push_back("convert.begin");
  kills.push_back("convert.end");
  kills.push_back("verify.begin");
  for (const auto& kill : kills) {
    SCOPED_TRACE(kill);
    // Back to before the move: the user on store1, nothing on store2.
    fs::remove_all(dst_home());
    dir_.accounts = {{"uid=alice,ou=people", "alice", "store1", "example.org/alice", "example.org/alice", "active", 0}};
    env_.dst->calls = 0;
    env_.dst->kill_at = starts_with(kill, "call ") ? std::stoi(kill.substr(5)) : -1;
    env_.die_at = starts_with(kill, "call ") ? "" : kill;
    int64_t id = 0;
    try {
      (void)runner().move("alice", "store2", {});
      FAIL() << "not killed";
    } catch (const Killed&) {
    }
    env_.dst->kill_at = -1;
    env_.die_at.clear();
    MoveFilter f;
    f.user = "alice";
    f.active_only = true;
    auto active = journal_->list_moves(f);
    ASSERT_TRUE(active.ok() && active->size() == 1);
    id = active->front().id;
    auto resumed = runner().resume(id);
    ASSERT_TRUE(resumed.ok()) << resumed.error().message();
    EXPECT_EQ(resumed->state, MoveState::kRolledBack) << resumed->error;
    EXPECT_EQ(dir_.account("alice").host, "store1");
    EXPECT_FALSE(freeze_.frozen()) << "nobody stays frozen";
    EXPECT_FALSE(any_staging());
    EXPECT_FALSE(fs::exists(dst_home()));
    // Nothing lost: the source is exactly as it was.
    std::map<std::string, std::string> source_now;
    for (const auto& e : fs::recursive_directory_iterator(src_home()))
      if (e.is_regular_file()) source_now[fs::relative(e.path(), src_home()).string()] = read_whole(e.path().string());
    EXPECT_EQ(source_now, source_before);
    // And the next move ends in the same tree as the clean one.
    auto again = runner().move("alice", "store2", {});
    ASSERT_TRUE(again.ok()) << again.error().message();
    ASSERT_EQ(again->state, MoveState::kDone) << again->error;
    EXPECT_EQ(dst_files(), want);
  }
  }

  // The convert step's own idempotence (a repeated step, not a new move): cut
  // after every call, then applied again from the start.
  void apply_twice_after_every_cut() {
  auto src = make_local_transport(root_ + "/store1", 1, "store1");
  ASSERT_TRUE(src.ok());
  auto mailbox = read_courier_mailbox(**src, "example.org/alice/Maildir", "Maildir");
  ASSERT_TRUE(mailbox.ok()) << mailbox.error().message();
  auto layout = conversion_layout(server_location(config_.servers[1]));
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  auto conv = convert_courier_to_dovecot("alice", *mailbox, *layout);
  ASSERT_TRUE(conv.ok()) << conv.error().message();
  const std::string copy = root_ + "/store2/example.org/alice";
  auto fresh_copy = [&] {
    fs::remove_all(copy);
    fs::copy(src_home(), copy, fs::copy_options::recursive);
  };
  fresh_copy();
  env_.dst->armed = true;
  auto clean = apply_conversion(*env_.dst, "example.org/alice/Maildir", *conv);
  ASSERT_TRUE(clean.ok()) << clean.error().message();
  const int calls = env_.dst->calls;
  const auto want = dst_files();
  for (int k = 1; k <= calls; ++k) {
    SCOPED_TRACE(k);
    fresh_copy();
    env_.dst->calls = 0;
    env_.dst->kill_at = k;
    EXPECT_THROW((void)apply_conversion(*env_.dst, "example.org/alice/Maildir", *conv), Killed);
    env_.dst->kill_at = -1;
    auto again = apply_conversion(*env_.dst, "example.org/alice/Maildir", *conv);
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(dst_files(), want);
    auto verified = verify_conversion("alice", *env_.dst, "example.org/alice/Maildir", *conv);
    EXPECT_TRUE(verified.ok()) << verified.error().message();
  }
  }

  // A two-level folder whose parent is no folder (Courier's ".Archiv.2024"
  // without ".Archiv"), with a keyword.
  void add_nested_folder() {
    const std::string m = src_home() + "/Maildir/.Archiv.2024";
    for (const char* d : {"cur", "new", "tmp", "courierimapkeywords"}) fs::create_directories(m + "/" + d);
    write_file(m + "/cur/1700000030.M30P1.host:2,S", "Subject: old\r\n\r\nx\r\n", 1'700'000'030'000'000'000);
    write_file(m + "/courierimapuiddb", "1 1700000700 4\n3 1700000030.M30P1.host\n");
    write_file(m + "/courierimapkeywords/:list", "Archived\n\n1700000030.M30P1.host:0\n");
    write_file(m + "/maildirfolder", "");
  }

  // Late mail: `deliver` runs once, in the sweep's settle pause after the
  // flip (a delivery routed to the old server just before it). Sets *done.
  void deliver_after_the_flip(std::function<void()> deliver, bool* done) {
    config_.move.sweep_settle_ms = 1'000;
    clock_.on_sleep([this, deliver, done] {
      if (dir_.account("alice").host != "store2" || *done) return;
      *done = true;
      deliver();
    });
  }

  std::string src_home() const { return root_ + "/store1/example.org/alice"; }
  std::string dst_home() const { return root_ + "/store2/example.org/alice"; }
  MoveRunner runner() {
    return MoveRunner(MoveDeps{config_, dir_, freeze_, kicker_, nullptr, *journal_, clock_, env_, SyncOptions{}});
  }
  bool any_staging() const {
    for (const auto& e : fs::directory_iterator(root_ + "/store2/example.org"))
      if (e.path().filename().string().find("mailshard-incoming") != std::string::npos) return true;
    return false;
  }
  // The destination as Dovecot will read it: every file's path and content.
  std::map<std::string, std::string> dst_files() const {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dst_home()))
      if (e.is_regular_file()) out[fs::relative(e.path(), dst_home()).string()] = read_whole(e.path().string());
    return out;
  }

  std::string root_;
  Config config_;
  testing::FakeDirectory dir_;
  testing::RecordingFreeze freeze_;
  testing::RecordingKicker kicker_;
  ArmingEnv env_;
  testing::FakeClock clock_;
  std::unique_ptr<SqliteJournal> journal_;
};

TEST_F(CourierMoveTest, ConvertsOnTheWayAndVerifiesWhatClientsSee) {
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  const std::string m = dst_home() + "/Maildir";
  EXPECT_EQ(read_whole(m + "/dovecot-uidlist"),
            "3 V1700000000 N40\n"
            "3 :1700000001.M1P1.host,S=120:2,Sab\n"
            "5 :1700000002.M2P1.host,S=130:2,FS\n"
            "8 :1700000003.M3P1.host,S=140:2,c\n"
            "9 :1700000004.M4P1.host,S=150:2,RS\n");
  EXPECT_EQ(read_whole(m + "/dovecot-keywords"), "0 $Label1\n1 Project\n2 Later\n");
  EXPECT_TRUE(fs::exists(m + "/cur/1700000003.M3P1.host,S=140:2,c"));
  EXPECT_TRUE(fs::exists(m + "/new/1700000005.M5P1.host,S=160"));
  EXPECT_EQ(read_whole(m + "/.Entw&APw-rfe/dovecot-uidlist"), "3 V1700000500 N2\n1 :1700000010.M10P1.host:2,D\n");
  EXPECT_FALSE(fs::exists(m + "/.Entwürfe"));
  EXPECT_EQ(read_whole(m + "/.Sent/dovecot-uidlist"), "3 V1700000600 N7\n6 :1700000020.M20P1.host:2,S\n");
  EXPECT_EQ(read_whole(m + "/subscriptions"), "V\t2\n\nEntw&APw-rfe\nINBOX\nSent\n");
  // Message content and INTERNALDATE (mtime) are the source's.
  EXPECT_EQ(fs::last_write_time(m + "/cur/1700000001.M1P1.host,S=120:2,Sab"),
            fs::last_write_time(src_home() + "/Maildir/cur/1700000001.M1P1.host,S=120:2,S"));
  // The source is untouched (kept for the grace period, still Courier's).
  EXPECT_TRUE(fs::exists(src_home() + "/Maildir/.Entwürfe/cur/1700000010.M10P1.host:2,D"));
  EXPECT_FALSE(fs::exists(src_home() + "/Maildir/dovecot-uidlist"));
  auto progress = MoveProgress::parse(rec->detail_json);
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ(progress->convert, "courier-to-dovecot");
  EXPECT_EQ(progress->converted_folders, 3);
  std::vector<std::string> order;
  auto steps = journal_->list_steps(rec->id);
  ASSERT_TRUE(steps.ok());
  for (const auto& s : *steps)
    if (s.phase == StepPhase::kBegin) order.push_back(s.step);
  EXPECT_THAT(order, ::testing::Contains("convert"));
}

// `mailshard verify USER` after a converted move finds every message under its
// Dovecot folder name (.Entwürfe is .Entw&APw-rfe now), not "gone".
TEST_F(CourierMoveTest, VerifyAfterTheMoveFindsMessagesInRenamedFolders) {
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  auto report = runner().verify_user("alice");
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_THAT(*report, HasSubstr("7 messages of move " + std::to_string(rec->id) +
                                 " checked: 7 present with identical content, 0 gone since"));
  // UIDs: Courier's (courierimapuiddb in the source copy) against Dovecot's now, folder by
  // folder under the new names: INBOX's 4 listed messages, one in each other folder.
  EXPECT_THAT(*report, HasSubstr("; 6 UIDs in 3 folders as the source copy has them"));
  const std::string entwuerfe = dst_home() + "/Maildir/.Entw&APw-rfe/dovecot-uidlist";
  write_file(entwuerfe, "3 V1700000500 N3\n2 :1700000010.M10P1.host:2,D\n");
  auto renumbered = runner().verify_user("alice");
  ASSERT_FALSE(renumbered.ok());
  EXPECT_EQ(renumbered.error().message(),
            "user alice: UIDs differ from the copy move " + std::to_string(rec->id) +
                " made: .Entw&APw-rfe: 1700000010.M10P1.host has UID 2, was 1");
  write_file(entwuerfe, "3 V1700000500 N2\n1 :1700000010.M10P1.host:2,D\n");
  // A changed message in the renamed folder is found there, too.
  write_file(dst_home() + "/Maildir/.Entw&APw-rfe/cur/1700000010.M10P1.host:2,D", "changed\r\n");
  auto changed = runner().verify_user("alice");
  ASSERT_FALSE(changed.ok());
  EXPECT_THAT(changed.error().message(), HasSubstr("1 message(s) differ"));
}

// Courier to Courier (no conversion): `verify USER` reads Courier's
// courierimapuiddb on both sides.
TEST_F(CourierMoveTest, VerifyAfterACourierToCourierMoveComparesCourierUids) {
  config_.servers[1].mail_location = config_.servers[0].mail_location;
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/dovecot-uidlist")) << "not converted";
  auto report = runner().verify_user("alice");
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_THAT(*report, HasSubstr("; 6 UIDs in 3 folders as the source copy has them"));
  write_file(dst_home() + "/Maildir/.Sent/courierimapuiddb", "1 1700000601 7\n6 1700000020.M20P1.host\n");
  auto bad = runner().verify_user("alice");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message(), HasSubstr(".Sent: UIDVALIDITY 1700000600 became 1700000601"));
}

// What `verify USER` counts as a UID change, and what it does not.
TEST(UidChanges, OnlyTheCopiedMessagesStillThereCount) {
  FolderView was;
  was.uidvalidity = 1700000000;
  was.uids = {{1, "a"}, {2, "b"}, {3, "c"}, {4, "late"}};
  const std::set<std::string> copied = {"a", "b", "c"};  // "late" came after the move's final pass
  FolderView now = was;
  now.uids = {{1, "a"}, {3, "c"}, {9, "late"}, {10, "new"}};  // b expunged, new mail since
  int64_t checked = 0;
  EXPECT_TRUE(uid_changes(was, now, copied, checked).empty());
  EXPECT_EQ(checked, 2);
  // Deleted and made again: a new UIDVALIDITY and none of the copied messages.
  FolderView remade;
  remade.uidvalidity = 1800000000;
  remade.uids = {{1, "other"}};
  EXPECT_TRUE(uid_changes(was, remade, copied, checked).empty());
  // Renumbered.
  FolderView renumbered = now;
  renumbered.uidvalidity = 1800000000;
  renumbered.uids = {{1, "c"}, {2, "a"}};
  checked = 0;
  EXPECT_EQ(uid_changes(was, renumbered, copied, checked),
            (std::vector<std::string>{"UIDVALIDITY 1700000000 became 1800000000", "a has UID 2, was 1",
                                      "c has UID 1, was 3"}));
  EXPECT_EQ(checked, 2);
}

// A late delivery into a folder whose name the conversion changed is swept
// into the folder's Dovecot name, not into a new folder with Courier's name.
TEST_F(CourierMoveTest, LateDeliveryToARenamedFolderIsSweptIntoItsDovecotName) {
  bool delivered = false;
  deliver_after_the_flip(
      [&] { write_file(src_home() + "/Maildir/.Entwürfe/new/1800000001.M1P1.late", "Subject: late\r\n\r\nx\r\n"); },
      &delivered);
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_TRUE(delivered);
  EXPECT_TRUE(fs::exists(dst_home() + "/Maildir/.Entw&APw-rfe/new/1800000001.M1P1.late"));
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/.Entwürfe"));
}

TEST_F(CourierMoveTest, KilledAnywhereInTheConvertStepResumeRollsBackAndTheNextMoveEndsTheSame) {
  kill_anywhere_in_convert_then_resume();
}

TEST_F(CourierMoveTest, ApplyingTheConversionTwiceEndsInTheSameTree) { apply_twice_after_every_cut(); }

// The convert step reads Courier's files from the listing the mirror check
// took under the freeze: the same mailbox as listing the Maildir itself.
TEST_F(CourierMoveTest, ReadingFromTheHomesListingReadsTheSameMailbox) {
  auto src = make_local_transport(root_ + "/store1", 1, "store1");
  ASSERT_TRUE(src.ok());
  auto home = (*src)->list_tree("example.org/alice");
  ASSERT_TRUE(home.ok()) << home.error().message();
  auto listed = read_courier_mailbox(**src, "example.org/alice/Maildir", "Maildir");
  ASSERT_TRUE(listed.ok()) << listed.error().message();
  ASSERT_GE(listed->folders.size(), 3u);
  ASSERT_TRUE(listed->folders[0].uiddb.has_value());
  auto given = read_courier_mailbox(**src, "example.org/alice/Maildir", "Maildir", sub_listing(*home, "Maildir"));
  ASSERT_TRUE(given.ok()) << given.error().message();
  EXPECT_TRUE(*given == *listed);
}

TEST(SubListing, KeepsWhatIsUnderTheDirectoryRelativeToIt) {
  TreeListing home{{"", {}, {{"Maildir", EntryType::kDir}, {"Maildir.old", EntryType::kDir}}},
                   {"Maildir", {}, {{"cur", EntryType::kDir}}},
                   {"Maildir/cur", {}, {{"1.a:2,S", EntryType::kFile}}},
                   {"Maildir.old", {}, {}},
                   {"Maildir.old/cur", {}, {}}};
  auto sub = sub_listing(home, "Maildir");
  ASSERT_EQ(sub.size(), 2u);
  EXPECT_EQ(sub[0].path, "");
  EXPECT_EQ(sub[0].entries.size(), 1u);
  EXPECT_EQ(sub[1].path, "cur");
  EXPECT_EQ(sub[1].entries[0].name, "1.a:2,S");
  EXPECT_EQ(sub_listing(home, "").size(), home.size());
  EXPECT_TRUE(sub_listing(home, "Mail").empty());
}

// A destination with LAYOUT=fs and UTF-8 (Dovecot's nested directories,
// names as UTF-8): Courier's ".Entwürfe" is "Entwürfe/", ".Archiv.2024" is
// "Archiv/2024/" under a made "Archiv/" (no cur/: a parent, as Dovecot makes
// it). Courier's keyword directories go, since LAYOUT=fs lists every directory
// as a folder. Verify, `verify USER` and the sweep use the new names.
TEST_F(CourierMoveTest, ConvertsIntoLayoutFsWithUtf8Names) {
  config_.servers[1].mail_location = "maildir:~/Maildir:LAYOUT=fs:UTF-8";
  add_nested_folder();
  bool delivered = false;
  deliver_after_the_flip(
      [&] { write_file(src_home() + "/Maildir/.Archiv.2024/new/1800000001.M1P1.late", "Subject: late\r\n\r\nx\r\n"); },
      &delivered);
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  const std::string m = dst_home() + "/Maildir";
  EXPECT_EQ(read_whole(m + "/Entwürfe/dovecot-uidlist"), "3 V1700000500 N2\n1 :1700000010.M10P1.host:2,D\n");
  EXPECT_EQ(read_whole(m + "/Sent/dovecot-uidlist"), "3 V1700000600 N7\n6 :1700000020.M20P1.host:2,S\n");
  EXPECT_EQ(read_whole(m + "/Archiv/2024/dovecot-uidlist"), "3 V1700000700 N4\n3 :1700000030.M30P1.host:2,Sa\n");
  EXPECT_EQ(read_whole(m + "/Archiv/2024/dovecot-keywords"), "0 Archived\n");
  EXPECT_TRUE(fs::is_directory(m + "/Archiv"));
  EXPECT_FALSE(fs::exists(m + "/Archiv/cur")) << "a parent only";
  EXPECT_EQ(read_whole(m + "/dovecot-uidlist").substr(0, 17), "3 V1700000000 N40");
  EXPECT_EQ(read_whole(m + "/subscriptions"), "V\t2\n\nEntwürfe\nINBOX\nSent\n");
  // No Courier folder and no directory Dovecot would list as a folder is left.
  std::set<std::string> dirs;
  for (const auto& e : fs::recursive_directory_iterator(m))
    if (e.is_directory()) dirs.insert(fs::relative(e.path(), m).string());
  EXPECT_EQ(dirs, (std::set<std::string>{"cur", "new", "tmp", "Entwürfe", "Entwürfe/cur", "Entwürfe/new", "Entwürfe/tmp",
                                         "Sent", "Sent/cur", "Sent/new", "Sent/tmp", "Archiv", "Archiv/2024",
                                         "Archiv/2024/cur", "Archiv/2024/new", "Archiv/2024/tmp"}));
  // The late delivery went to the folder's new name.
  EXPECT_TRUE(delivered);
  EXPECT_TRUE(fs::exists(m + "/Archiv/2024/new/1800000001.M1P1.late"));
  auto report = runner().verify_user("alice");
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_THAT(*report, HasSubstr("8 present with identical content, 0 gone since"));
  EXPECT_THAT(*report, HasSubstr("; 7 UIDs in 4 folders as the source copy has them"));  // Archiv/2024 nested
}

// A folder made on the old server after the final pass (an MDA's fileinto
// :create) whose late mail is swept into LAYOUT=fs: its Dovecot name is
// nested, and the parent it lacks is made too.
TEST_F(CourierMoveTest, IntoLayoutFsLateMailInANewNestedFolderGetsItsParentsMade) {
  config_.servers[1].mail_location = "maildir:~/Maildir:LAYOUT=fs";
  bool delivered = false;
  deliver_after_the_flip(
      [&] {
        const std::string f = src_home() + "/Maildir/.Neu.Sub";
        for (const char* d : {"cur", "new", "tmp"}) fs::create_directories(f + "/" + d);
        write_file(f + "/new/1800000002.M2P1.late", "Subject: late\r\n\r\nx\r\n");
      },
      &delivered);
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_TRUE(delivered);
  const std::string m = dst_home() + "/Maildir";
  EXPECT_TRUE(fs::exists(m + "/Neu/Sub/new/1800000002.M2P1.late"));
  EXPECT_TRUE(fs::is_directory(m + "/Neu/Sub/cur"));
  EXPECT_FALSE(fs::exists(m + "/Neu/cur")) << "a parent only";
  EXPECT_FALSE(fs::exists(m + "/.Neu.Sub"));
}

TEST_F(CourierMoveTest, IntoLayoutFsKilledAnywhereInTheConvertStepResumeRollsBackAndTheNextMoveEndsTheSame) {
  config_.servers[1].mail_location = "maildir:~/Maildir:LAYOUT=fs";
  add_nested_folder();
  kill_anywhere_in_convert_then_resume();
}

TEST_F(CourierMoveTest, IntoLayoutFsApplyingTheConversionTwiceEndsInTheSameTree) {
  config_.servers[1].mail_location = "maildir:~/Maildir:LAYOUT=fs";
  add_nested_folder();
  apply_twice_after_every_cut();
}

// Naming options the conversion cannot write, and a directory LAYOUT=fs would
// list as a folder, stop the move in preflight, in one line, nothing copied.
TEST_F(CourierMoveTest, WhatTheConversionCannotNameIsRefusedInPreflight) {
  config_.servers[1].mail_location = "maildir:~/Maildir:LAYOUT=index";
  auto idx = runner().move("alice", "store2", {});
  ASSERT_FALSE(idx.ok());
  EXPECT_EQ(idx.error().message(), "user alice: store2's mail_location has LAYOUT=index: the conversion names folders "
                                   "by LAYOUT=Maildir++ or LAYOUT=fs and UTF-8 only, not by LAYOUT=index");
  config_.servers[1].mail_location = "maildir:~/Maildir:DIRNAME=mbox";
  auto dirname = runner().move("alice", "store2", {});
  ASSERT_FALSE(dirname.ok());
  EXPECT_THAT(dirname.error().message(), HasSubstr("not by DIRNAME=mbox"));
  config_.servers[1].mail_location = "maildir:~/Maildir:LAYOUT=FS";
  fs::create_directories(src_home() + "/Maildir/shared-folders/x");
  auto other = runner().move("alice", "store2", {});
  ASSERT_FALSE(other.ok());
  EXPECT_THAT(other.error().message(), HasSubstr("Maildir/shared-folders: is a directory but no folder; Dovecot's "
                                                 "LAYOUT=fs would list it as a folder"));
  EXPECT_FALSE(fs::exists(dst_home()));
  EXPECT_FALSE(any_staging());
  EXPECT_EQ(dir_.account("alice").host, "store1");
}

TEST_F(CourierMoveTest, BadCourierFilesAreRefusedInPreflightInOneLine) {
  write_file(src_home() + "/Maildir/.Sent/courierimapuiddb", "1 1700000600 7\n6 1700000020.M20P1.host\n6 x\n");
  auto rec = runner().move("alice", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().message(), "store1: user alice: Maildir/.Sent/courierimapuiddb: line 3: UID 6 appears twice");
  EXPECT_FALSE(fs::exists(dst_home()));
  EXPECT_FALSE(any_staging());
  EXPECT_EQ(dir_.account("alice").host, "store1");
}

TEST_F(CourierMoveTest, BadCourierFilesAppearingUnderTheFreezeRollBackWithNothingLost) {
  // Under the freeze, before the frozen pass: a keyword update that is not
  // a keyword.
  bool broke = false;
  env_.at_boundary = [&](const std::string& at) {
    if (at != "freeze.end") return;
    write_file(src_home() + "/Maildir/courierimapkeywords/.7.1700000001.M1P1.host,S=120", "Wo rk\n");
    broke = true;
  };
  auto moved = runner().move("alice", "store2", {});
  ASSERT_TRUE(moved.ok()) << moved.error().message();
  EXPECT_TRUE(broke);
  EXPECT_EQ(moved->state, MoveState::kRolledBack);
  EXPECT_EQ(moved->error, "store1: user alice: Maildir/courierimapkeywords/.7.1700000001.M1P1.host,S=120: line 1: "
                          "'Wo rk' is not a keyword");
  EXPECT_EQ(dir_.account("alice").host, "store1");
  EXPECT_FALSE(freeze_.frozen());
  EXPECT_FALSE(any_staging());
  EXPECT_FALSE(fs::exists(dst_home()));
  EXPECT_TRUE(fs::exists(src_home() + "/Maildir/cur/1700000001.M1P1.host,S=120:2,S"));
}


// POP3: the INBOX's courierpop3dsizelist becomes P and O fields of its
// dovecot-uidlist, so "leave mail on the server" clients see the same UIDLs.
const char* kSizelist =
    "/2 30 1690000000\n"
    "1700000002.M2P1.host,S=130:2,FS 130 11:1690000000\n"
    "1699999999.M0P1.host,S=99 99 10:1690000000\n"  // expunged since
    "1700000005.M5P1.host,S=160 160 13:1690000000\n"  // no IMAP UID yet: gets 40
    "1700000001.M1P1.host,S=120:2,S 120 12:1690000000\n";

TEST_F(CourierMoveTest, Pop3UidlsAndOrderAreCarriedIntoTheInboxUidlist) {
  write_file(src_home() + "/Maildir/courierpop3dsizelist", kSizelist);
  auto rec = runner().move("alice", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  const std::string m = dst_home() + "/Maildir";
  EXPECT_EQ(read_whole(m + "/dovecot-uidlist"),
            "3 V1700000000 N41\n"
            "3 PUID12-1690000000 O4 :1700000001.M1P1.host,S=120:2,Sab\n"
            "5 PUID11-1690000000 O1 :1700000002.M2P1.host,S=130:2,FS\n"
            "8 :1700000003.M3P1.host,S=140:2,c\n"
            "9 :1700000004.M4P1.host,S=150:2,RS\n"
            "40 PUID13-1690000000 O3 :1700000005.M5P1.host,S=160\n");
  // The other folders are not POP3's.
  EXPECT_EQ(read_whole(m + "/.Sent/dovecot-uidlist"), "3 V1700000600 N7\n6 :1700000020.M20P1.host:2,S\n");
}

TEST_F(CourierMoveTest, BrokenPop3SizelistIsRefusedInPreflightInOneLine) {
  write_file(src_home() + "/Maildir/courierpop3dsizelist", "/2 30 1690000000\n1700000002.M2P1.host,S=130 x\n");
  auto rec = runner().move("alice", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().message(), "store1: user alice: Maildir/courierpop3dsizelist: line 2: malformed entry "
                                   "'1700000002.M2P1.host,S=130 x' (want '<file name> <size> "
                                   "[<uid>[:<uidvalidity>[:<n>]]]')");
  EXPECT_FALSE(fs::exists(dst_home()));
  EXPECT_FALSE(any_staging());
  EXPECT_EQ(dir_.account("alice").host, "store1");
}

// A UIDL that comes out wrong in the copy fails verification like a wrong
// UID: the move rolls back and the user stays on the source.
TEST_F(CourierMoveTest, AWrongPop3UidlInTheCopyRollsTheMoveBack) {
  write_file(src_home() + "/Maildir/courierpop3dsizelist", kSizelist);
  bool spoiled = false;
  env_.at_boundary = [&](const std::string& at) {
    if (at != "convert.end") return;
    for (const auto& e : fs::directory_iterator(root_ + "/store2/example.org")) {
      if (e.path().filename().string().find("mailshard-incoming") == std::string::npos) continue;
      const std::string uidlist = e.path().string() + "/Maildir/dovecot-uidlist";
      std::string text = read_whole(uidlist);
      auto at_p = text.find("PUID12-");
      ASSERT_NE(at_p, std::string::npos) << text;
      text.replace(at_p, 7, "PUID21-");
      write_file(uidlist, text);
      spoiled = true;
    }
  };
  auto moved = runner().move("alice", "store2", {});
  ASSERT_TRUE(moved.ok()) << moved.error().message();
  EXPECT_TRUE(spoiled);
  EXPECT_EQ(moved->state, MoveState::kRolledBack);
  EXPECT_THAT(moved->error, HasSubstr("INBOX: UID 3: POP3 UIDL UID12-1690000000 became UID21-1690000000"));
  EXPECT_EQ(dir_.account("alice").host, "store1");
  EXPECT_FALSE(any_staging());
  EXPECT_TRUE(fs::exists(src_home() + "/Maildir/courierpop3dsizelist"));
}

}  // namespace
}  // namespace mailshard
