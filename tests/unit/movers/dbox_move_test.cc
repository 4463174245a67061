// A move of a Dovecot mdbox whose alternate storage (mail_location ALT=)
// lies outside the home, with real local transports and fakes for LDAP, the
// freeze, the kicker and Dovecot's view (doveadm): both trees arrive byte for
// byte at their own paths on the destination; the destination's doveadm is
// asked with the copy in place and before LDAP changes, and a view that
// differs from the source's rolls the move back; an m.* file rewritten
// under the freeze rolls back naming the file and the user; a kill at every
// step boundary rolls back before the flip and forward after it; and moves
// that would change the format, or lack doveadm, are refused in one line.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>

#include <fmt/format.h>
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

// Dovecot's view of each server, as doveadm would list it, set by the test.
class FakeDovecotView : public MailboxStatusSource {
 public:
  std::map<std::string, std::vector<MailboxContents>> by_server;
  std::function<void(const std::string&)> on_ask;
  // Called as an import begins (what Dovecot's import writes on the server).
  std::function<void(const std::string& server)> on_import;
  std::vector<std::string> asked;
  struct Import {
    std::string server, location, mailbox, uids;
    std::vector<std::string> side_files;  // what the side copy held when imported
  };
  std::vector<Import> imports;
  std::string root;  // the stores' parent, to list the side copy
  Result<std::vector<MailboxStatusInfo>> mailbox_status(const std::string&, const std::string& server) override {
    std::vector<MailboxStatusInfo> out;
    for (const auto& b : by_server[server]) out.push_back(b.status);
    return out;
  }
  Result<std::vector<MailboxContents>> mailbox_contents(const std::string&, const std::string& server) override {
    asked.push_back(server);
    if (on_ask) on_ask(server);
    return by_server[server];
  }
  Result<std::vector<MailboxMessage>> messages_from(const std::string&, const std::string& server,
                                                    const std::string& mailbox, int64_t from_uid) override {
    for (const auto& b : by_server[server])
      if (b.status.mailbox == mailbox) {
        std::vector<MailboxMessage> out;
        for (const auto& m : b.messages)
          if (m.uid >= from_uid) out.push_back(m);
        return out;
      }
    return Error::not_found("doveadm fetch: exit code 68 (not found)");
  }
  // Dovecot's import, as far as the move can see it: the messages appear in
  // the mailbox there with new UIDs.
  Status import_messages(const std::string&, const std::string& server, const std::string& location,
                         const std::string& mailbox, const std::string& uids) override {
    if (on_import) on_import(server);
    Import im{server, location, mailbox, uids, {}};
    for (const auto& e : fs::recursive_directory_iterator(root))
      if (e.is_regular_file() && e.path().string().find("mailshard-sweep") != std::string::npos)
        im.side_files.push_back(fs::relative(e.path(), root).string());
    std::sort(im.side_files.begin(), im.side_files.end());
    imports.push_back(im);
    std::vector<MailboxMessage> src;
    for (const auto& b : by_server["store1"])
      if (b.status.mailbox == mailbox) src = b.messages;
    for (auto& b : by_server[server])
      if (b.status.mailbox == mailbox)
        for (const auto& m : src)
          if (uids.find(std::to_string(m.uid)) != std::string::npos) {
            b.messages.push_back({b.status.uidnext++, m.guid});
            ++b.status.messages;
          }
    return {};
  }
};

std::vector<MailboxContents> alice_view() {
  MailboxContents inbox, sent;
  inbox.status = {"INBOX", 2, 1700000123, 3};
  inbox.guid = "4f1c";
  inbox.messages = {{1, "g-one"}, {2, "g-two"}};
  sent.status = {"Sent", 1, 1700000124, 2};
  sent.messages = {{1, "g-sent"}};
  return {inbox, sent};
}

constexpr uid_t kMail = 4242;  // the mail's owner in the tests that need root

class DboxMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/dbox_move_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    testing::make_two_stores(root_, 2, config_, env_.t);
    for (auto& s : config_.servers) {
      s.mail_location = "mdbox:~/mdbox:ALT=" + s.mail_root + "/alt/%d/%n";
      fs::create_directories(s.mail_root + "/alt");  // the alt disk's mount point
      s.doveadm_url = "http://" + s.name + ".invalid/doveadm/v1";  // FakeDovecotView answers instead
    }
    make_source();
    view_.by_server["store1"] = view_.by_server["store2"] = alice_view();
    view_.root = root_;
    dir_.accounts = {{"uid=alice,ou=people", "alice@example.org", "store1", "example.org/alice", "example.org/alice",
                      "active", 0}};
    auto j = SqliteJournal::open(root_ + "/journal.sqlite", clock_);
    ASSERT_TRUE(j.ok()) << j.error().message();
    journal_ = std::move(*j);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string tree(const std::string& store, const std::string& name) const {
    if (name == "home") return root_ + "/" + store + "/example.org/alice";
    return root_ + "/" + store + "/" + name + "/example.org/alice";
  }

  // An mdbox as Dovecot lays it out: storage/ with the m.* files and the map
  // index, mailboxes/<box>/dbox-Mails/ with each folder's index; the older
  // m.* file moved to the alt storage (doveadm altmove).
  static void put(const std::string& path, const std::string& data, int64_t mtime_ns) {
    fs::create_directories(fs::path(path).parent_path());
    write_file(path, data, mtime_ns);
  }
  void make_source() {
    const std::string m = tree("store1", "home") + "/mdbox";
    const int64_t t0 = 1'700'000'000'000'000'000;
    put(m + "/storage/m.2", "\x02\x01 dbox header\nmessage two\n" + std::string(3000, 'b'), t0 + 2);
    put(m + "/storage/dovecot.map.index", std::string(600, 'I'), t0 + 3);
    put(m + "/storage/dovecot.map.index.log", std::string(900, 'L'), t0 + 3);
    put(m + "/mailboxes/INBOX/dbox-Mails/dovecot.index", std::string(400, 'i'), t0 + 4);
    put(m + "/mailboxes/INBOX/dbox-Mails/dovecot.index.log", std::string(700, 'l'), t0 + 4);
    put(m + "/mailboxes/Sent/dbox-Mails/dovecot.index.log", std::string(200, 's'), t0 + 5);
    put(m + "/dovecot.list.index.log", std::string(100, 'x'), t0 + 5);
    put(m + "/subscriptions", "V\t2\n\nSent\n", t0 + 5);
    const std::string alt = tree("store1", "alt");
    fs::create_symlink(alt, m + "/dbox-alt-root");  // Dovecot's record of its ALT path
    put(alt + "/storage/m.1", "\x02\x01 dbox header\nmessage one\n" + std::string(5000, 'a'), t0 + 1);
  }

  MoveRunner runner() {
    return MoveRunner(MoveDeps{config_, dir_, freeze_, kicker_, &view_, *journal_, clock_, env_, SyncOptions{}});
  }
  // The destination's quota limits come from doveadm quota get (the fake).
  MoveRunner runner_with_quota() {
    return MoveRunner(
        MoveDeps{config_, dir_, freeze_, kicker_, &view_, *journal_, clock_, env_, SyncOptions{}, &quota_});
  }
  static std::map<std::string, std::string> files(const std::string& dir) { return testing::tree_files(dir); }
  std::vector<std::string> stagings() const { return testing::staging_names(root_ + "/store2"); }
  // Dovecot's view of the source after a delivery that ignored the freeze:
  // the INBOX holds UID 3 ("g-late").
  void late_message_in_source_inbox() {
    auto& inbox = view_.by_server["store1"][0];
    inbox.messages.push_back({3, "g-late"});
    inbox.status.uidnext = 4;
    ++inbox.status.messages;
  }

  // kill -9 at every step boundary, then resume, for each: `check(at,
  // flipped, record)` looks at the outcome and puts things back for the next
  // boundary (then the move is marked purged).
  void kill_at_every_step_then_resume(
      const std::function<void(const std::string&, bool, const MoveRecord&)>& check) {
    const std::vector<std::string> boundaries = {"precopy.begin", "precopy.end",    "freeze.end",  "kick.end",
                                                 "final_sync.begin", "final_sync.end", "verify.end",  "flip.begin",
                                                 "flip.end",      "thaw.end",       "sweep.end"};
    for (const auto& at : boundaries) {
      SCOPED_TRACE(at);
      env_.die_at = at;
      freeze_.calls.clear();
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
      const int64_t id = moves->front().id;
      auto rec = runner().resume(id);
      ASSERT_TRUE(rec.ok()) << rec.error().message();
      EXPECT_THAT(stagings(), ::testing::IsEmpty());
      const bool flipped = at == "flip.end" || at == "thaw.end" || at == "sweep.end";
      EXPECT_EQ(rec->state, flipped ? MoveState::kDone : MoveState::kRolledBack) << rec->error;
      EXPECT_EQ(dir_.accounts[0].host, flipped ? "store2" : "store1");
      check(at, flipped, *rec);
      if (flipped) {
        dir_.accounts[0].host = "store1";
        ASSERT_TRUE(journal_->update_move([&] {
                      auto m = *journal_->get_move(id);
                      m.state = MoveState::kPurged;
                      return m;
                    }())
                        .ok());
      }
      EXPECT_FALSE(freeze_.frozen());
    }
  }

  // The source's mail owned by kMail, as Dovecot's mail user's (needs
  // root), but for mdbox/admin-note, which stays root's.
  void mail_owned_by_mail_user() {
    for (const std::string& t : {tree("store1", "home"), tree("store1", "alt")}) {
      ASSERT_EQ(::lchown(t.c_str(), kMail, kMail), 0);
      for (const auto& e : fs::recursive_directory_iterator(t)) ASSERT_EQ(::lchown(e.path().c_str(), kMail, kMail), 0);
    }
    put(tree("store1", "home") + "/mdbox/admin-note", "placed by root\n", 1'700'000'000'000'000'007);
  }

  // At thaw.end: a late message in the source's INBOX (storage/m.2 grows),
  // owned by the mail user like the rest of the mail.
  void late_mail_at_thaw_owned_by_mail_user() {
    env_.at_boundary = [this](const std::string& at) {
      if (at != "thaw.end") return;
      late_message_in_source_inbox();
      const std::string m2 = tree("store1", "home") + "/mdbox/storage/m.2";
      write_file(m2, read_whole(m2) + "late message\n", 1'700'000'000'000'000'011);
      ASSERT_EQ(::lchown(m2.c_str(), kMail, kMail), 0);
      ::usleep(20'000);  // past the copy's last ctime tick
    };
  }

  std::string root_;
  Config config_;
  testing::FakeDirectory dir_;
  testing::RecordingFreeze freeze_;
  testing::RecordingKicker kicker_;
  FakeDovecotView view_;
  testing::FakeQuota quota_;
  DyingEnv env_;
  testing::FakeClock clock_;
  std::unique_ptr<SqliteJournal> journal_;
};

// dbox keeps no file per message, so the preflight's quota check counts
// what the source's Dovecot counts (every mailbox's messages and virtual
// size): a mailbox over the destination's limit is refused before anything
// is written, one within it moves.
TEST_F(DboxMoveTest, TheQuotaCheckCountsTheSourcesMessagesAsDovecotDoes) {
  for (auto& b : view_.by_server["store1"]) b.status.vsize = 40'000;  // 2 mailboxes: 80,000 bytes, 3 messages
  quota_.roots = {{"User quota", 0, 50, 0, -1}};                       // 50 KiB
  auto rec = runner_with_quota().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), ErrorCode::kNoSpace);
  EXPECT_THAT(rec.error().message(),
              HasSubstr("user alice@example.org has 78.1 KiB of mail (3 messages) but the quota 'User quota' on store2 "
                        "allows 50.0 KiB"));
  EXPECT_EQ(dir_.accounts[0].host, "store1");
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
  EXPECT_THAT(stagings(), ::testing::IsEmpty());

  // Dovecot opens the user's storage there to answer, which makes an empty
  // mdbox (its list index and the dbox-alt-root link): only that is removed.
  quota_.roots = {{"User quota", 0, 100, 0, 3}};  // 100 KiB, 3 messages
  quota_.on_get = [&] {
    if (fs::exists(tree("store2", "home"))) return;  // asked again after the move (its usage there)
    put(tree("store2", "home") + "/mdbox/dovecot.list.index.log", "log", 1'700'000'000'000'000'000);
    fs::create_symlink(tree("store2", "alt"), tree("store2", "home") + "/mdbox/dbox-alt-root");
  };
  rec = runner_with_quota().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(dir_.accounts[0].host, "store2");
  EXPECT_EQ(files(tree("store2", "home")), files(tree("store1", "home")));
}

// The destination's alt storage is a disk of its own: its directory (the
// ALT= value before the user's part) missing there (not mounted, misspelt)
// stops the move in preflight, naming it; the copy would otherwise have put
// the alt tier's mail on whatever disk holds its parent.
TEST_F(DboxMoveTest, AnAltDirectoryMissingOnTheDestinationIsRefusedInPreflight) {
  config_.servers[1].mail_location = "mdbox:~/mdbox:ALT=" + config_.servers[1].mail_root + "/sata/%d/%n";
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_THAT(rec.error().message(), ::testing::StartsWith("user alice@example.org: store2: the alt tree's directory /"));
  EXPECT_THAT(rec.error().message(), ::testing::EndsWith("/store2/sata does not exist there (from its mail_location); "
                                                         "mount or create it, then move again"));
  EXPECT_EQ(dir_.accounts[0].host, "store1");
  EXPECT_FALSE(fs::exists(config_.servers[1].mail_root + "/sata"));
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_TRUE(freeze_.calls.empty());

  fs::create_directories(config_.servers[1].mail_root + "/sata");  // mounted
  rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(files(config_.servers[1].mail_root + "/sata/example.org/alice"), files(tree("store1", "alt")));
}

TEST_F(DboxMoveTest, BothTreesArriveAndDovecotSeesTheCopyBeforeLdapChanges) {
  const auto home = files(tree("store1", "home")), alt = files(tree("store1", "alt"));
  struct Seen {
    bool home_in_place = false, alt_in_place = false;
    std::string host;
  } seen;
  view_.on_ask = [&](const std::string& server) {
    if (server != "store2") return;
    seen.home_in_place = fs::exists(tree("store2", "home") + "/mdbox/storage/dovecot.map.index");
    seen.alt_in_place = fs::exists(tree("store2", "alt") + "/storage/m.1");
    seen.host = dir_.accounts[0].host;
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(files(tree("store2", "home")), home);
  EXPECT_EQ(files(tree("store2", "alt")), alt);
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_EQ(dir_.accounts[0].host, "store2");
  EXPECT_EQ(fs::read_symlink(tree("store2", "home") + "/mdbox/dbox-alt-root").string(), tree("store2", "alt"))
      << "Dovecot's ALT link names the destination's alt tree";
  EXPECT_EQ(fs::read_symlink(tree("store1", "home") + "/mdbox/dbox-alt-root").string(), tree("store1", "alt"));
  EXPECT_EQ(view_.asked, (std::vector<std::string>{"store1", "store2"}));
  EXPECT_TRUE(seen.home_in_place && seen.alt_in_place) << "asked with the copy at its paths";
  EXPECT_EQ(seen.host, "store1") << "asked before the LDAP modify";
  auto p = MoveProgress::parse(rec->detail_json);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->trees.size(), 1u);
  EXPECT_EQ(p->trees[0].name, "alt");
  EXPECT_EQ(p->trees[0].src, "alt/example.org/alice");
  EXPECT_EQ(p->doveadm_mailboxes_compared, 2);
  EXPECT_EQ(p->doveadm_messages_compared, 3);
  // `mailshard verify` checks one file per message: for dbox it says so
  // instead of passing on nothing.
  auto v = runner().verify_user("alice@example.org");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code(), ErrorCode::kInvalidInput);
  EXPECT_THAT(v.error().message(), ::testing::HasSubstr("mdbox mail is in Dovecot's storage files"));
  // Purge removes both source trees.
  clock_.advance(1000);
  auto purged = runner().purge(rec->id, 0);
  ASSERT_TRUE(purged.ok()) << purged.error().message();
  EXPECT_FALSE(fs::exists(tree("store1", "home")));
  EXPECT_FALSE(fs::exists(tree("store1", "alt")));
}

// sdbox keeps a file per message (u.<uid>, never rewritten): the side copy
// for the import holds the late mail's files and the indexes, not the
// message files the move's last pass already copied.
TEST_F(DboxMoveTest, AnSdboxSideCopyLeavesOutTheMessagesTheMoveCopied) {
  fs::remove_all(tree("store1", "home"));
  fs::remove_all(tree("store1", "alt"));
  for (auto& sc : config_.servers) sc.mail_location = "sdbox:~/sdbox:ALT=" + sc.mail_root + "/alt/%d/%n";
  const std::string box = tree("store1", "home") + "/sdbox/mailboxes/INBOX/dbox-Mails/";
  const int64_t t0 = 1'700'000'000'000'000'000;
  put(box + "u.1", "message one\n", t0 + 1);
  put(box + "u.2", "message two\n", t0 + 2);
  put(box + "dovecot.index.log", std::string(300, 'l'), t0 + 3);
  put(tree("store1", "alt") + "/mailboxes/Sent/dbox-Mails/u.1", "sent one\n", t0 + 1);
  env_.at_boundary = [&](const std::string& at) {
    if (at != "thaw.end") return;
    late_message_in_source_inbox();
    put(box + "u.3", "late message\n", t0 + 9);
    put(box + "dovecot.index.log", std::string(400, 'l'), t0 + 9);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_EQ(view_.imports.size(), 1u);
  const std::string side = "store2/example.org/alice.mailshard-sweep-" + std::to_string(rec->id);
  EXPECT_EQ(view_.imports[0].side_files,
            (std::vector<std::string>{side + "/home/sdbox/mailboxes/INBOX/dbox-Mails/dovecot.index.log",
                                      side + "/home/sdbox/mailboxes/INBOX/dbox-Mails/u.3"}));
  EXPECT_EQ(view_.imports[0].uids, "3");
  EXPECT_EQ(MoveProgress::parse(rec->detail_json).value().swept, 1);
}

// mbox: the late mail grew the INBOX file; the side copy holds it and the
// indexes, not the folder files the move's last pass copied unchanged.
TEST_F(DboxMoveTest, AnMboxSideCopyLeavesOutTheFoldersTheMoveCopied) {
  fs::remove_all(tree("store1", "home"));
  fs::remove_all(tree("store1", "alt"));
  for (auto& sc : config_.servers) sc.mail_location = "mbox:~/mail:INBOX=~/mail/inbox";
  const std::string mail = tree("store1", "home") + "/mail/";
  const int64_t t0 = 1'700'000'000'000'000'000;
  const std::string from = "From alice@example.org Thu Jan  1 00:00:00 2026\n";
  put(mail + "inbox", from + "message one\n\n" + from + "message two\n\n", t0 + 1);
  put(mail + "Sent", from + "sent one\n\n", t0 + 2);
  put(mail + ".imap/INBOX/dovecot.index.log", std::string(300, 'l'), t0 + 3);
  put(mail + ".imap/Sent/dovecot.index.log", std::string(200, 's'), t0 + 3);
  put(mail + ".subscriptions", "Sent\n", t0 + 3);
  env_.at_boundary = [&](const std::string& at) {
    if (at != "thaw.end") return;
    late_message_in_source_inbox();
    put(mail + "inbox", read_whole(mail + "inbox") + from + "late message\n\n", t0 + 9);
    put(mail + ".imap/INBOX/dovecot.index.log", std::string(400, 'l'), t0 + 9);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_EQ(view_.imports.size(), 1u);
  const std::string side = "store2/example.org/alice.mailshard-sweep-" + std::to_string(rec->id) + "/home/mail/";
  EXPECT_EQ(view_.imports[0].side_files,
            (std::vector<std::string>{side + ".imap/INBOX/dovecot.index.log", side + ".imap/Sent/dovecot.index.log",
                                      side + "inbox"}));
  EXPECT_EQ(view_.imports[0].location,
            "mbox:" + config_.servers[1].mail_root + "/example.org/alice.mailshard-sweep-" + std::to_string(rec->id) +
                "/home/mail:INBOX=" + config_.servers[1].mail_root + "/example.org/alice.mailshard-sweep-" +
                std::to_string(rec->id) + "/home/mail/inbox");
}

// An MTA that ignores the freeze delivers to the source after the final
// pass: the sweep finds the message by UID above the frozen UIDNEXT and has
// the destination's Dovecot import it from a side copy, once.
TEST_F(DboxMoveTest, LateMailIsImportedByDovecotOnceFromASideCopy) {
  env_.at_boundary = [&](const std::string& at) {
    if (at != "thaw.end") return;
    late_message_in_source_inbox();
    const std::string m2 = tree("store1", "home") + "/mdbox/storage/m.2";
    write_file(m2, read_whole(m2) + "late message\n", 1'700'000'000'000'000'011);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_EQ(view_.imports.size(), 1u);
  const auto& im = view_.imports[0];
  EXPECT_EQ(im.server, "store2");
  EXPECT_EQ(im.mailbox, "INBOX");
  EXPECT_EQ(im.uids, "3");
  const std::string side = config_.servers[1].mail_root + "/example.org/alice.mailshard-sweep-" + std::to_string(rec->id);
  EXPECT_EQ(im.location, "mdbox:" + side + "/home/mdbox:ALT=" + side + "/alt");
  // The side copy, beside the home, not in it, held the source's indexes
  // and the storage file the late mail grew (storage/m.2), not the alt
  // tier's m.1, which the move's last pass copied and which has not changed.
  const std::string in_side = "store2/example.org/alice.mailshard-sweep-" + std::to_string(rec->id) + "/home/mdbox/";
  EXPECT_EQ(im.side_files, (std::vector<std::string>{
                               in_side + "dovecot.list.index.log",
                               in_side + "mailboxes/INBOX/dbox-Mails/dovecot.index",
                               in_side + "mailboxes/INBOX/dbox-Mails/dovecot.index.log",
                               in_side + "mailboxes/Sent/dbox-Mails/dovecot.index.log",
                               in_side + "storage/dovecot.map.index",
                               in_side + "storage/dovecot.map.index.log",
                               in_side + "storage/m.2",
                               in_side + "subscriptions",
                           }));
  EXPECT_FALSE(fs::exists(side)) << "the side copy is removed";
  auto p = MoveProgress::parse(rec->detail_json);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->swept, 1);
  // The destination's own files were not written by the sweep.
  EXPECT_NE(read_whole(tree("store2", "home") + "/mdbox/storage/m.2"),
            read_whole(tree("store1", "home") + "/mdbox/storage/m.2"));
  // Purge sweeps last: nothing is imported twice, even after the user
  // deleted the imported copy on the destination.
  view_.by_server["store2"][0].messages.pop_back();
  clock_.advance(1000);
  auto purged = runner().purge(rec->id, 0);
  ASSERT_TRUE(purged.ok()) << purged.error().message();
  EXPECT_EQ(view_.imports.size(), 1u);
}

// Dovecot 2.3's doveadm server runs an import as root: what it creates in
// the user's trees (a rewritten dovecot.index, a new m.* file, a mailbox
// directory) is root's, and the user's Dovecot cannot open it. The sweep
// gives those entries the owner of their tree; a file that was root's
// before the sweep stays root's.
TEST_F(DboxMoveTest, WhatTheImportCreatesAsRootGoesBackToTheMailsOwner) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown)";
  mail_owned_by_mail_user();
  late_mail_at_thaw_owned_by_mail_user();
  const std::string home2 = tree("store2", "home") + "/mdbox";
  view_.on_import = [&](const std::string&) {
    const std::string index = home2 + "/mailboxes/INBOX/dbox-Mails/dovecot.index";
    put(index + ".tmp", std::string(500, 'i'), 1'700'000'000'000'000'020);
    fs::rename(index + ".tmp", index);
    put(home2 + "/storage/m.3", "\x02\x01 dbox header\nlate message\n", 1'700'000'000'000'000'020);
    put(home2 + "/mailboxes/Imported/dbox-Mails/dovecot.index.log", std::string(100, 'n'), 1'700'000'000'000'000'020);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_EQ(view_.imports.size(), 1u);
  auto owner = [](const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st.st_uid;
  };
  for (const std::string& p : {home2 + "/mailboxes/INBOX/dbox-Mails/dovecot.index", home2 + "/storage/m.3",
                               home2 + "/mailboxes/Imported", home2 + "/mailboxes/Imported/dbox-Mails",
                               home2 + "/mailboxes/Imported/dbox-Mails/dovecot.index.log"}) {
    EXPECT_EQ(owner(p), kMail) << p;
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_gid, kMail) << p;
  }
  EXPECT_EQ(owner(home2 + "/admin-note"), 0u) << "root's before the sweep: left alone";
  EXPECT_EQ(owner(home2 + "/storage/m.2"), kMail);
}

// A doveadm server that runs as the mail user (service doveadm { user =
// vmail }) reads the side copy as that user: every directory from the side
// directory down to the locations the import names belongs to the mail's
// owner, with the home's mode. (The side directory was root's, mode 0700,
// and such a server failed every import with "Permission denied".)
TEST_F(DboxMoveTest, TheSideCopyBelongsToTheMailsOwnerForADoveadmServerRunningAsThatUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown)";
  mail_owned_by_mail_user();
  ASSERT_EQ(::chmod(tree("store1", "home").c_str(), 0750), 0);
  late_mail_at_thaw_owned_by_mail_user();
  std::vector<std::string> not_the_users;
  std::string side;
  view_.on_import = [&](const std::string&) {
    for (const auto& e : fs::directory_iterator(config_.servers[1].mail_root + "/example.org"))
      if (e.path().filename().string().find(".mailshard-sweep-") != std::string::npos) side = e.path().string();
    for (const std::string& d : {side, side + "/home", side + "/home/mdbox", side + "/alt"}) {
      struct stat st {};
      if (::lstat(d.c_str(), &st) != 0) not_the_users.push_back(d + ": missing");
      else if (st.st_uid != kMail || st.st_gid != kMail) not_the_users.push_back(fmt::format("{}: {}:{}", d, st.st_uid, st.st_gid));
      else if (d == side && (st.st_mode & 07777) != 0750) not_the_users.push_back(fmt::format("{}: mode {:o}", d, st.st_mode & 07777));
    }
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_EQ(view_.imports.size(), 1u);
  EXPECT_THAT(side, HasSubstr("alice.mailshard-sweep-"));
  EXPECT_THAT(not_the_users, ::testing::IsEmpty());
}

// A crash right after an import, before its files were given back: the
// journal still names the time the imports began, and the next sweep
// (here purge's last one, with no late mail) gives them back first.
TEST_F(DboxMoveTest, AfterACrashTheNextSweepGivesTheImportsFilesBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown)";
  mail_owned_by_mail_user();
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ::usleep(20'000);  // past the copy's last ctime tick
  // What the cut-short import wrote, as root, and the journal's note of it.
  const std::string m9 = tree("store2", "home") + "/mdbox/storage/m.9";
  put(m9, "\x02\x01 dbox header\nimported\n", 1'700'000'000'000'000'030);
  struct stat st {};
  ASSERT_EQ(::stat(m9.c_str(), &st), 0);
  const int64_t since = static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  ASSERT_TRUE(journal_->put_blob(rec->id, "dbox_import_owner_check", std::to_string(since)).ok());
  clock_.advance(1000);
  auto purged = runner().purge(rec->id, 0);
  ASSERT_TRUE(purged.ok()) << purged.error().message();
  EXPECT_TRUE(view_.imports.empty()) << "no late mail";
  ASSERT_EQ(::stat(m9.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kMail);
  ASSERT_EQ(::stat((tree("store2", "home") + "/mdbox/admin-note").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "root's before the import: left alone";
  EXPECT_EQ(journal_->get_blob(rec->id, "dbox_import_owner_check").value().value_or("?"), "");
}

// Purge's last sweep has no pass of its own: it reads the move's states
// from the journal, so its side copy leaves out the m.* files the move
// copied (m.2 in the home, m.1 in the alt tier) and holds the new m.3.
TEST_F(DboxMoveTest, PurgesSideCopyLeavesOutTheStorageFilesTheMoveCopied) {
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_TRUE(view_.imports.empty());
  late_message_in_source_inbox();
  const std::string m = tree("store1", "home") + "/mdbox/storage/";
  put(m + "m.3", "\x02\x01 dbox header\nlate message\n", 1'700'000'000'000'000'020);
  put(m + "dovecot.map.index.log", std::string(950, 'L'), 1'700'000'000'000'000'020);
  clock_.advance(1000);
  auto purged = runner().purge(rec->id, 0);
  ASSERT_TRUE(purged.ok()) << purged.error().message();
  EXPECT_EQ(purged->state, MoveState::kPurged);
  ASSERT_EQ(view_.imports.size(), 1u);
  const auto& files = view_.imports[0].side_files;
  const std::string in_side = "store2/example.org/alice.mailshard-sweep-" + std::to_string(rec->id);
  EXPECT_THAT(files, ::testing::Contains(in_side + "/home/mdbox/storage/m.3"));
  EXPECT_THAT(files, ::testing::Contains(in_side + "/home/mdbox/storage/dovecot.map.index.log"));
  EXPECT_THAT(files, ::testing::Not(::testing::Contains(in_side + "/home/mdbox/storage/m.2")));
  EXPECT_THAT(files, ::testing::Not(::testing::Contains(in_side + "/alt/storage/m.1")));
  EXPECT_EQ(view_.imports[0].uids, "3");
  EXPECT_FALSE(fs::exists(tree("store1", "home")));
  EXPECT_FALSE(fs::exists(tree("store1", "alt")));
}

// An import that happened but whose journal write did not (a kill right
// after it): the GUID is in the destination mailbox, so it is not imported again.
TEST_F(DboxMoveTest, AMessageAlreadyOnTheDestinationIsNotImportedAgain) {
  env_.at_boundary = [&](const std::string& at) {
    if (at != "thaw.end") return;
    auto& inbox = view_.by_server["store1"][0];
    inbox.messages.push_back({3, "g-late"});
    inbox.status.uidnext = 4;
    auto& there = view_.by_server["store2"][0];
    there.messages.push_back({3, "g-late"});
    there.status.uidnext = 4;
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_TRUE(view_.imports.empty());
}

TEST_F(DboxMoveTest, ADestinationViewThatDiffersRollsBackWithNothingLost) {
  const auto home = files(tree("store1", "home")), alt = files(tree("store1", "alt"));
  view_.by_server["store2"][0].messages.pop_back();  // UID 2 not seen on store2
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_EQ(rec->error, "user alice@example.org: doveadm on store2 sees the copy differently from store1 under the "
                        "freeze: 'INBOX': UID 2 (GUID g-two) is not on the destination");
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
  EXPECT_FALSE(fs::exists(tree("store2", "alt")));
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_EQ(dir_.accounts[0].host, "store1");
  EXPECT_EQ(files(tree("store1", "home")), home);
  EXPECT_EQ(files(tree("store1", "alt")), alt);
  EXPECT_FALSE(freeze_.frozen());
}

TEST_F(DboxMoveTest, AnMdboxFileRewrittenUnderTheFreezeRollsBackNamingFileAndUser) {
  const std::string m2 = tree("store1", "home") + "/mdbox/storage/m.2";
  env_.at_boundary = [&](const std::string& at) {
    if (at != "final_sync.begin") return;
    std::string data = read_whole(m2);
    data[20] = 'X';  // same size, a byte inside mail already copied
    write_file(m2, data, 1'700'000'000'000'000'009);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_EQ(rec->error, "user alice@example.org: final pass: mdbox storage file 'mdbox/storage/m.2' changed before its "
                        "end since the last pass (3027 bytes then, 3027 now): m.* files are append-only; not copying it");
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
  EXPECT_FALSE(fs::exists(tree("store2", "alt")));
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_EQ(dir_.accounts[0].host, "store1");
  EXPECT_FALSE(freeze_.frozen());
}

TEST_F(DboxMoveTest, AnAltFileTruncatedUnderTheFreezeRollsBackNamingTheAltTree) {
  const std::string m1 = tree("store1", "alt") + "/storage/m.1";
  env_.at_boundary = [&](const std::string& at) {
    if (at == "final_sync.begin") write_file(m1, read_whole(m1).substr(0, 100), 1'700'000'000'000'000'009);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_THAT(rec->error, HasSubstr("user alice@example.org: the alt tree: final pass: mdbox storage file "
                                    "'storage/m.1' changed before its end since the last pass (5027 bytes then, 100 now)"));
  EXPECT_EQ(rec->error.find('\n'), std::string::npos);
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_FALSE(fs::exists(tree("store2", "alt")));
}

TEST_F(DboxMoveTest, AppendedMailUnderTheFreezeIsSentAsATail) {
  const std::string m2 = tree("store1", "home") + "/mdbox/storage/m.2";
  env_.at_boundary = [&](const std::string& at) {
    if (at == "final_sync.begin") write_file(m2, read_whole(m2) + "message three\n", 1'700'000'000'000'000'010);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(read_whole(tree("store2", "home") + "/mdbox/storage/m.2"), read_whole(m2));
}

// kill -9 at every step boundary, then resume: before the flip both trees
// are rolled back, after it both are in place; the source is whole either way.
TEST_F(DboxMoveTest, KilledAtEveryStepThenResumed) {
  const auto home = files(tree("store1", "home")), alt = files(tree("store1", "alt"));
  kill_at_every_step_then_resume([&](const std::string&, bool flipped, const MoveRecord&) {
    EXPECT_EQ(files(tree("store1", "home")), home);
    EXPECT_EQ(files(tree("store1", "alt")), alt);
    if (flipped) {
      EXPECT_EQ(files(tree("store2", "home")), home);
      EXPECT_EQ(files(tree("store2", "alt")), alt);
      for (const char* t : {"home", "alt"}) fs::remove_all(tree("store2", t));
    } else {
      for (const char* t : {"home", "alt"}) EXPECT_FALSE(fs::exists(tree("store2", t))) << t;
    }
  });
}

// mbox with its INBOX in the system spool (INBOX=<mail root>/spool/%u): the
// spool file is a tree of one file. Beside alice's, the source's spool
// directory holds bob's and the destination's holds carol's; neither is
// ever the move's.
class SpoolMoveTest : public DboxMoveTest {
 protected:
  void SetUp() override {
    DboxMoveTest::SetUp();
    fs::remove_all(tree("store1", "home"));
    fs::remove_all(tree("store1", "alt"));
    for (auto& sc : config_.servers) sc.mail_location = "mbox:~/mail:INBOX=" + sc.mail_root + "/spool/%u";
    const std::string mail = tree("store1", "home") + "/mail/";
    put(mail + "Sent", from_ + "sent one\n\n", t0_ + 2);
    put(mail + ".imap/INBOX/dovecot.index.log", std::string(300, 'l'), t0_ + 3);
    put(mail + ".imap/Sent/dovecot.index.log", std::string(200, 's'), t0_ + 3);
    put(mail + ".subscriptions", "Sent\n", t0_ + 3);
    put(spool("store1", "alice@example.org"), from_ + "message one\n\n" + from_ + "message two\n\n", t0_ + 1);
    put(spool("store1", "bob@example.org"), from_ + "bob's own\n\n", t0_ + 1);
    put(spool("store2", "carol@example.org"), from_ + "carol's own\n\n", t0_ + 1);
  }
  std::string spool(const std::string& store, const std::string& user) const {
    return root_ + "/" + store + "/spool/" + user;
  }
  // Every entry of the spool directory there, by name, with its content.
  std::map<std::string, std::string> spools(const std::string& store) const {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(root_ + "/" + store + "/spool"))
      out[e.path().filename().string()] = e.is_regular_file() ? read_whole(e.path().string()) : "(not a file)";
    return out;
  }
  const std::string from_ = "From alice@example.org Thu Jan  1 00:00:00 2026\n";
  const int64_t t0_ = 1'700'000'000'000'000'000;
};

TEST_F(SpoolMoveTest, TheSpoolInboxMovesAsOneFileAndNoOtherSpoolIsTouched) {
  const std::string inbox = read_whole(spool("store1", "alice@example.org"));
  const auto home = files(tree("store1", "home"));
  const auto carol = read_whole(spool("store2", "carol@example.org"));
  env_.at_boundary = [&](const std::string& at) {
    if (at != "thaw.end") return;
    late_message_in_source_inbox();  // an MTA that ignored the freeze appended to the spool
    put(spool("store1", "alice@example.org"), inbox + from_ + "late message\n\n", t0_ + 9);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(files(tree("store2", "home")), home);
  EXPECT_EQ(spools("store2"),
            (std::map<std::string, std::string>{{"alice@example.org", inbox}, {"carol@example.org", carol}}))
      << "alice's spool as it was under the freeze, carol's untouched, bob's not copied";
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  auto p = MoveProgress::parse(rec->detail_json);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->trees.size(), 1u);
  EXPECT_EQ(p->trees[0].name, "inbox");
  EXPECT_EQ(p->trees[0].src, "spool/alice@example.org");
  EXPECT_TRUE(p->trees[0].file && p->trees[0].renamed);
  // The late message: imported by Dovecot from a side copy that holds the
  // spool file alone, named in the import's location.
  ASSERT_EQ(view_.imports.size(), 1u);
  const std::string side = config_.servers[1].mail_root + "/example.org/alice.mailshard-sweep-" + std::to_string(rec->id);
  EXPECT_EQ(view_.imports[0].location,
            "mbox:" + side + "/home/mail:INBOX=" + side + "/inbox/alice@example.org");
  const std::string in_side = "store2/example.org/alice.mailshard-sweep-" + std::to_string(rec->id);
  EXPECT_THAT(view_.imports[0].side_files, ::testing::Contains(in_side + "/inbox/alice@example.org"));
  for (const auto& f : view_.imports[0].side_files)
    EXPECT_THAT(f, ::testing::Not(HasSubstr("bob"))) << "the side copy took another user's spool";
  EXPECT_FALSE(fs::exists(root_ + "/" + in_side));

  // Purge removes alice's spool file on the source, not the spool directory
  // or bob's.
  clock_.advance(1000);
  auto purged = runner().purge(rec->id, 0);
  ASSERT_TRUE(purged.ok()) << purged.error().message();
  EXPECT_EQ(purged->state, MoveState::kPurged);
  EXPECT_FALSE(fs::exists(tree("store1", "home")));
  EXPECT_EQ(spools("store1"), (std::map<std::string, std::string>{{"bob@example.org", from_ + "bob's own\n\n"}}));
  EXPECT_EQ(read_whole(spool("store2", "alice@example.org")), inbox);
}

// kill -9 at every step boundary, then resume: before the flip nothing of
// alice's is left on the destination, after it her spool is in place; the
// other users' spools on both servers are untouched either way.
TEST_F(SpoolMoveTest, KilledAtEveryStepThenResumed) {
  const auto src_spools = spools("store1"), dst_spools = spools("store2");
  const std::string inbox = read_whole(spool("store1", "alice@example.org"));
  kill_at_every_step_then_resume([&](const std::string&, bool flipped, const MoveRecord&) {
    EXPECT_EQ(spools("store1"), src_spools);
    auto want = dst_spools;
    if (flipped) want["alice@example.org"] = inbox;
    EXPECT_EQ(spools("store2"), want);
    if (flipped) {
      fs::remove_all(tree("store2", "home"));
      fs::remove(spool("store2", "alice@example.org"));
    } else {
      EXPECT_FALSE(fs::exists(tree("store2", "home")));
    }
  });
}

// The flip places the spool file first; when the home's rename then fails
// (a mailbox appeared at its path), the rollback removes that one file and
// leaves the spool directory, carol's spool and the foreign home alone.
TEST_F(SpoolMoveTest, AFlipCutShortRemovesOnlyTheSpoolFileItPlaced) {
  const auto dst_spools = spools("store2");
  env_.at_boundary = [&](const std::string& at) {
    if (at != "flip.begin") return;
    put(tree("store2", "home") + "/foreign", "not ours", 0);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_THAT(rec->error, HasSubstr("has a mailbox at example.org/alice that appeared during the move"));
  auto p = MoveProgress::parse(rec->detail_json);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->trees[0].renamed) << "the spool file was in place when the home's rename failed";
  EXPECT_EQ(spools("store2"), dst_spools);
  EXPECT_EQ(read_whole(tree("store2", "home") + "/foreign"), "not ours");
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_EQ(dir_.accounts[0].host, "store1");
}

// A spool file for alice appears on the destination during the move (a
// delivery there despite LDAP): the flip will not rename over it, and the
// rollback leaves it, since it is not the move's.
TEST_F(SpoolMoveTest, ASpoolFileThatAppearsDuringTheMoveIsNeitherReplacedNorRemoved) {
  const std::string theirs = from_ + "delivered there during the move\n\n";
  env_.at_boundary = [&](const std::string& at) {
    if (at == "flip.begin") put(spool("store2", "alice@example.org"), theirs, t0_);
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack);
  EXPECT_THAT(rec->error, HasSubstr("has a inbox file at spool/alice@example.org that appeared during the move"));
  EXPECT_EQ(read_whole(spool("store2", "alice@example.org")), theirs);
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
  EXPECT_EQ(dir_.accounts[0].host, "store1");
}

// On a filesystem without RENAME_NOREPLACE the place is a link, then the
// unlink of the staging name; cut short between the two, both names are one
// inode. The flip that runs again finishes it (the staging name goes) and
// the move completes.
TEST_F(SpoolMoveTest, APlaceCutShortBetweenItsLinkAndUnlinkIsFinished) {
  const std::string inbox = read_whole(spool("store1", "alice@example.org"));
  int linked = 0;
  env_.at_boundary = [&](const std::string& at) {
    if (at != "flip.begin") return;
    for (const auto& s : stagings())
      if (s.find("/spool/") != std::string::npos) {
        fs::create_hard_link(s + "/alice@example.org", spool("store2", "alice@example.org"));
        ++linked;
      }
  };
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  EXPECT_EQ(linked, 1);
  EXPECT_EQ(read_whole(spool("store2", "alice@example.org")), inbox);
  EXPECT_EQ(fs::hard_link_count(spool("store2", "alice@example.org")), 1u);
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
}

// Killed in that very state (both names on one inode), the move is rolled
// back by resume: the file at the spool name is the move's own, and goes
// with the staging directory; carol's spool stays.
TEST_F(SpoolMoveTest, ARollbackAfterAPlaceCutShortRemovesTheMovesOwnLink) {
  const auto dst_spools = spools("store2");
  int linked = 0;
  env_.at_boundary = [&](const std::string& at) {
    if (at != "flip.begin") return;
    for (const auto& s : stagings())
      if (s.find("/spool/") != std::string::npos) {
        fs::create_hard_link(s + "/alice@example.org", spool("store2", "alice@example.org"));
        ++linked;
      }
  };
  env_.die_at = "flip.begin";
  try {
    (void)runner().move("alice@example.org", "store2", {});
    FAIL() << "not killed";
  } catch (const Killed&) {
  }
  ASSERT_EQ(linked, 1);
  env_.die_at.clear();
  env_.at_boundary = nullptr;
  MoveFilter f;
  f.user = "alice@example.org";
  auto moves = journal_->list_moves(f);
  ASSERT_TRUE(moves.ok());
  auto rec = runner().resume(moves->front().id);
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->state, MoveState::kRolledBack) << rec->error;
  EXPECT_EQ(spools("store2"), dst_spools);
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
  EXPECT_EQ(dir_.accounts[0].host, "store1");
}

TEST_F(SpoolMoveTest, ASpoolFileAlreadyOnTheDestinationStopsTheMove) {
  put(spool("store2", "alice@example.org"), from_ + "delivered there somehow\n\n", t0_);
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().message(), "store2 already has a inbox tree of user alice@example.org at "
                                   "spool/alice@example.org that no mailshard move left there; move it aside or "
                                   "remove it first");
  EXPECT_EQ(read_whole(spool("store2", "alice@example.org")), from_ + "delivered there somehow\n\n");
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
}

// The spool directory must be there on the destination: the move would
// otherwise make it, with the source's owner and mode, on whatever disk.
TEST_F(SpoolMoveTest, ASpoolDirectoryMissingOnTheDestinationIsRefused) {
  fs::remove_all(root_ + "/store2/spool");
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_THAT(rec.error().message(), HasSubstr("user alice@example.org: store2: the inbox tree's directory /"));
  EXPECT_THAT(rec.error().message(), HasSubstr("/store2/spool does not exist there (from its mail_location); mount or "
                                               "create it, then move again"));
  EXPECT_FALSE(fs::exists(root_ + "/store2/spool"));
}

// The move reads the mail as laid out when it began: a resume after the
// source's mail_location was edited (here to Maildir) still sweeps the late
// mail of the mdbox it moved, with Dovecot's import from an mdbox side copy.
TEST_F(DboxMoveTest, AResumeAfterAMailLocationEditSweepsTheFormatTheMoveCopied) {
  const std::string mdbox = config_.servers[0].mail_location;
  env_.at_boundary = [&](const std::string& at) {
    if (at != "thaw.end") return;
    late_message_in_source_inbox();
    const std::string m2 = tree("store1", "home") + "/mdbox/storage/m.2";
    write_file(m2, read_whole(m2) + "late message\n", 1'700'000'000'000'000'011);
  };
  env_.die_at = "thaw.end";
  try {
    (void)runner().move("alice@example.org", "store2", {});
    FAIL() << "not killed";
  } catch (const Killed&) {
  }
  env_.die_at.clear();
  env_.at_boundary = nullptr;
  config_.servers[0].mail_location = "maildir:~/Maildir";  // edited meanwhile
  MoveFilter f;
  f.user = "alice@example.org";
  auto moves = journal_->list_moves(f);
  ASSERT_TRUE(moves.ok());
  auto p = MoveProgress::parse(moves->front().detail_json);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->src_location, mdbox);
  auto rec = runner().resume(moves->front().id);
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  ASSERT_EQ(rec->state, MoveState::kDone) << rec->error;
  ASSERT_EQ(view_.imports.size(), 1u) << "the late message was not imported";
  EXPECT_EQ(view_.imports[0].location.rfind("mdbox:", 0), 0u) << view_.imports[0].location;
  EXPECT_EQ(view_.imports[0].uids, "3");
}

TEST_F(DboxMoveTest, AFormatChangeIsRefusedInOneLine) {
  config_.servers[1].mail_location = "sdbox:~/mdbox:ALT=" + config_.servers[1].mail_root + "/alt/%d/%n";
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().message(),
            "user alice@example.org: its mail on store1 is Dovecot mdbox (its files) but store2 reads Dovecot sdbox: "
            "mailshard copies files and never converts between Maildir, sdbox, mdbox and mbox (give both servers' "
            "mail_location the same format, or move the user with dsync)");
  config_.servers[1].mail_location = "maildir:~/Maildir";
  rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_THAT(rec.error().message(), HasSubstr("is Dovecot mdbox (its files) but store2 reads Dovecot Maildir"));
  EXPECT_FALSE(fs::exists(tree("store2", "home")));
  EXPECT_THAT(stagings(), ::testing::IsEmpty());
}

TEST_F(DboxMoveTest, WithoutDoveadmTheMoveIsRefused) {
  config_.servers[1].doveadm_url.clear();
  auto rec = runner().move("alice@example.org", "store2", {});
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().message(), "user alice@example.org: a Dovecot mdbox move needs doveadm_url on both store1 and "
                                   "store2: Dovecot's view of the copy gates the flip");
}

}  // namespace
}  // namespace mailshard
