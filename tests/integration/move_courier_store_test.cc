// Courier-IMAP stores (issue 11, item 2). The lab's Courier stores (courier1, courier2) are mail
// roots that Courier-IMAP's own imapd reads on a pipe (tests/lab/labcommon.py courier_session);
// DIR/mailshard-courier.toml declares them `mail_location = "courier:~/Maildir"` and kicks with
// examples/courier/kick-courier-user. A mailbox written by Courier itself (fill_mailbox.py through
// Courier's imapd: courierimapuiddb, courierimapkeywords/, courierimapsubscribed, a UTF-8 folder
// name on disk) moves from courier1 to courier2 while an MDA delivers to it by LDAP (deferring
// while the user is frozen) and a Courier session is open. Afterwards Courier reports, over IMAP,
// the same UIDVALIDITY, UIDs, flags, keywords and subscriptions, every delivered message is
// there once, and the session was ended by the kick command; the folders' ACLs (GETACL) are
// Courier's as before. The stores also listen on IMAP
// (Courier's imapd behind tests/lab/courier_imaplogin.py, an LDAP login), and nginx routes their
// users there by mailHost; the last test logs in through nginx before, during and after a move.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

constexpr int kMessages = 300;
constexpr int kDeliveries = 40;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// (uid, flags) of every message of a folder, by Message-ID; messages without one by "uid:N".
std::map<std::string, std::pair<int64_t, nlohmann::json>> messages_of(const nlohmann::json& folder) {
  std::map<std::string, std::pair<int64_t, nlohmann::json>> out;
  for (const auto& m : folder.value("detail", nlohmann::json::array())) {
    std::string id = m["message_id"].get<std::string>();
    if (id.empty()) id = "uid:" + std::to_string(m["uid"].get<int64_t>());
    out[id] = {m["uid"].get<int64_t>(), m["flags"]};
  }
  return out;
}

// DIR/mailshard-courier.toml (the Courier stores) plus the Dovecot store2, written to DIR/NAME.
std::string courier_and_store2_config(const std::string& name, const std::string& store2_location = "maildir:~/Maildir") {
  Lab& lab = Lab::get();
  std::ifstream in(lab.env("COURIER_CONFIG"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text += "\n[[server]]\nname = \"store2\"\nmail_root = \"" + lab.store_env("store2", "MAIL_ROOT") +
          "\"\nmail_location = \"" + store2_location + "\"\ncapacity_bytes = 10737418240\ndoveadm_url = "
          "\"http://127.0.0.1:" + lab.store_env("store2", "DOVEADM_PORT") + "/doveadm/v1\"\ndoveadm_password_file = \"" +
          lab.dir() + "/secrets/doveadm.secret\"\ntransport = \"local\"\nclass = \"courier\"\n";
  const std::string cfg = lab.dir() + "/" + name;
  std::ofstream(cfg) << text;
  return cfg;
}

// What Dovecot shows (AFTER) against what Courier showed (BEFORE), folder for folder: Courier's
// "INBOX.a.b" is Dovecot's "a/b" in the lab's namespace. Same UIDVALIDITY, and every message
// keeps its UID, flags and keywords.
void expect_dovecot_shows_what_courier_showed(const nlohmann::json& before, const nlohmann::json& after) {
  for (const auto& [name, b] : before["folders"].items()) {
    std::string dname = name == "INBOX" ? name : name.substr(std::string("INBOX.").size());
    std::replace(dname.begin(), dname.end(), '.', '/');
    SCOPED_TRACE(name + " -> " + dname);
    ASSERT_TRUE(after["folders"].contains(dname)) << after["folders"].dump().substr(0, 1500);
    const auto& a = after["folders"][dname];
    EXPECT_EQ(a["uidvalidity"], b["uidvalidity"]);
    auto was = messages_of(b), now = messages_of(a);
    EXPECT_EQ(now.size(), was.size());
    for (const auto& [id, m] : was) {
      auto it = now.find(id);
      ASSERT_NE(it, now.end()) << id << " (uid " << m.first << ") is gone";
      EXPECT_EQ(it->second.first, m.first) << id << " changed UID";
      EXPECT_EQ(it->second.second, m.second) << id << " changed flags or keywords";
    }
  }
}

TEST(MoveCourierStore, CourierToCourierKeepsWhatCourierReportsWithDeliveriesAndASessionRacing) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.env("COURIER_CONFIG");
  const std::string user = lab.add_user("courier1");
  const nlohmann::json filled = lab.fill_mailbox(user, kMessages, 21, "courier1");
  ASSERT_EQ(filled["appended"], kMessages) << filled.dump();
  const std::string maildir = lab.home_path("courier1", user) + "/Maildir";
  for (const char* f : {"courierimapuiddb", "courierimapsubscribed", "courierimapkeywords", ".Entwürfe"})
    ASSERT_TRUE(path_exists(maildir + "/" + f)) << "Courier did not write " << f << " in " << maildir;
  const nlohmann::json before = lab.imap_state(user, "courier1", /*detail=*/true);
  ASSERT_EQ(before["store"], "courier1");
  // fill_mailbox.py shared folders with SETACL (courierimapacl files).
  ASSERT_EQ(before["folders"]["INBOX.Lists"].value("acl", nlohmann::json::object()).value("bob@example.org", ""), "lr")
      << before["folders"]["INBOX.Lists"].dump();
  ASSERT_TRUE(path_exists(maildir + "/.Lists/courierimapacl"));

  // A Courier session, open across the move.
  const std::string out = lab.dir() + "/courier_session_" + std::to_string(::getpid()) + ".out";
  std::string cmd = "/usr/bin/python3 " + lab.env("LAB_SCRIPTS") + "/hold_session.py --lab " + lab.dir() +
                    " --user " + user + " --via courier1 --max 90 > " + out + " 2>&1; echo rc=$? >> " + out;
  std::thread holder([&] { lab.run({"sh", "-c", cmd}, {}, 120); });
  for (int i = 0; i < 100 && slurp(out).find("ready") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_NE(slurp(out).find("ready store=courier1"), std::string::npos) << slurp(out);

  // Deliveries by LDAP route throughout the move.
  RunResult delivered;
  std::thread mda([&] {
    delivered = lab.run_script("maildir_deliver.py", {"--user", user, "--count", std::to_string(kDeliveries), "--tag",
                                                      "courier-race", "--interval", "0.1"},
                               180);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // some land before the move starts
  RunResult r = mailshard(cfg, {"move", user, "--to", "courier2"});
  mda.join();
  holder.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  ASSERT_EQ(delivered.rc, 0) << delivered.describe();
  const nlohmann::json mda_out = nlohmann::json::parse(delivered.out);

  const std::string held = slurp(out);
  EXPECT_NE(held.find("ended after"), std::string::npos) << "the kick command did not end the session: " << held;
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "courier2");
  EXPECT_EQ(latest_move(cfg, user)["state"], "done");

  const nlohmann::json after = lab.imap_state(user, "courier2", /*detail=*/true);
  EXPECT_EQ(after["subscriptions"], before["subscriptions"]);
  ASSERT_EQ(after["folders"].size(), before["folders"].size()) << after.dump().substr(0, 2000);
  for (const auto& [name, b] : before["folders"].items()) {
    ASSERT_TRUE(after["folders"].contains(name)) << name;
    const auto& a = after["folders"][name];
    EXPECT_EQ(a["uidvalidity"], b["uidvalidity"]) << name;
    EXPECT_EQ(a.value("acl", nlohmann::json()), b.value("acl", nlohmann::json())) << name << ": GETACL differs";
    // Every message Courier reported before keeps its UID and flags (keywords included).
    auto was = messages_of(b), now = messages_of(a);
    for (const auto& [id, m] : was) {
      auto it = now.find(id);
      ASSERT_NE(it, now.end()) << name << ": " << id << " (uid " << m.first << ") is gone";
      EXPECT_EQ(it->second.first, m.first) << name << ": " << id << " changed UID";
      EXPECT_EQ(it->second.second, m.second) << name << ": " << id << " changed flags";
    }
    if (name != "INBOX") {
      EXPECT_EQ(a["hash"], b["hash"]) << name;
    }
  }
  // Every delivery is in the new INBOX exactly once.
  std::map<std::string, int> seen;
  for (const auto& m : after["folders"]["INBOX"]["detail"]) ++seen[m["message_id"].get<std::string>()];
  for (const auto& id : mda_out["message_ids"]) EXPECT_EQ(seen[id.get<std::string>()], 1) << id;
  EXPECT_EQ(after["folders"]["INBOX"]["messages"].get<int>(),
            before["folders"]["INBOX"]["messages"].get<int>() + kDeliveries);
  std::printf("courier move: %s; deliveries by store %s, %d polls deferred\n", r.out.c_str(),
              mda_out["stores"].dump().c_str(), mda_out["deferred_polls"].get<int>());
}

// The kick command on its own: it ends the user's Courier sessions and nobody else's.
TEST(MoveCourierStore, TheKickCommandEndsOnlyThatUsersSessions) {
  Lab& lab = Lab::get();
  const std::string alice = lab.add_user("courier1");
  const std::string bob = lab.add_user("courier1");
  lab.fill_mailbox(alice, 5, 1, "courier1");
  lab.fill_mailbox(bob, 5, 2, "courier1");
  auto hold = [&](const std::string& u, const std::string& file) {
    return "/usr/bin/python3 " + lab.env("LAB_SCRIPTS") + "/hold_session.py --lab " + lab.dir() + " --user " + u +
           " --via courier1 --max 8 > " + file + " 2>&1; echo rc=$? >> " + file;
  };
  const std::string tag = std::to_string(::getpid());
  const std::string fa = lab.dir() + "/kick_a_" + tag + ".out", fb = lab.dir() + "/kick_b_" + tag + ".out";
  std::thread ta([&] { lab.run({"sh", "-c", hold(alice, fa)}, {}, 30); });
  std::thread tb([&] { lab.run({"sh", "-c", hold(bob, fb)}, {}, 30); });
  for (int i = 0; i < 100 && (slurp(fa).find("ready") == std::string::npos || slurp(fb).find("ready") == std::string::npos); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_NE(slurp(fa).find("ready"), std::string::npos) << slurp(fa);
  ASSERT_NE(slurp(fb).find("ready"), std::string::npos) << slurp(fb);
  RunResult k = lab.run({lab.env("LAB_SCRIPTS") + "/../../examples/courier/kick-courier-user", alice, "courier1"});
  EXPECT_EQ(k.rc, 0) << k.describe();
  EXPECT_THAT(k.out, ::testing::HasSubstr("ended 1 session(s) of " + alice));
  ta.join();
  tb.join();
  EXPECT_NE(slurp(fa).find("ended after"), std::string::npos) << slurp(fa);
  EXPECT_NE(slurp(fb).find("still open"), std::string::npos) << "bob's session was ended too: " << slurp(fb);
}

// mbsync as the user's IMAP client, every folder into a Maildir near side: INBOX on one
// channel, the other folders (under Courier's "INBOX." prefix, at Dovecot's top level) on
// another, so the near folder names are the same whichever server is far. mbsync keeps each
// folder's far UIDVALIDITY and UID map; a client that synced before the move and downloads
// nothing after it saw the same UIDVALIDITY and UIDs.
class MbsyncClient {
 public:
  explicit MbsyncClient(const std::string& user) : user_(user) {
    Lab& lab = Lab::get();
    dir_ = lab.dir() + "/mbsync-" + user;
    lab.run({"rm", "-rf", dir_});
    lab.run({"mkdir", "-p", dir_ + "/mail"});
  }
  // From Courier's imapd on the user's home (a Tunnel, as the mail owner).
  RunResult sync_from_courier(const std::string& home) {
    Lab& lab = Lab::get();
    const std::string tunnel = "cd " + home + " && exec env IMAP_KEYWORDS=1 AUTHENTICATED=" + user_ +
                               " setpriv --reuid=" + lab.env("MAIL_UID") + " --regid=" + lab.env("MAIL_GID") +
                               " --clear-groups " + lab.env("COURIER_IMAPD") + " Maildir";
    return sync("Tunnel \"" + tunnel + "\"\n", "INBOX/");  // mbsync writes every delimiter as "/"
  }
  // Through nginx, to wherever mailHost says.
  RunResult sync_through_nginx() {
    return sync("Host 127.0.0.1\nPort " + Lab::get().env("NGINX_IMAP_PORT") + "\nUser " + user_ +
                    "\nPass secret\nSSLType None\nAuthMechs LOGIN\n",
                "");
  }
  // Messages on the near side, all folders.
  int messages() const {
    RunResult n = Lab::get().run(
        {"sh", "-c", "find " + dir_ + "/mail -type f \\( -path '*/cur/*' -o -path '*/new/*' \\) | wc -l"});
    return std::stoi(n.out.empty() ? "0" : n.out);
  }
  // Near folders (paths under the near root that hold cur/).
  std::set<std::string> folders() const {
    RunResult n = Lab::get().run({"sh", "-c", "cd " + dir_ + "/mail && find . -type d -name cur | sed 's|^./||; s|/cur$||'"});
    std::set<std::string> out;
    std::string line;
    for (std::istringstream in(n.out); std::getline(in, line);)
      if (!line.empty()) out.insert(line);
    return out;
  }

 private:
  RunResult sync(const std::string& far, const std::string& prefix) {
    const std::string rc = dir_ + "/mbsyncrc";
    std::ofstream(rc) << "IMAPStore far\n" << far << "\nMaildirStore near\nPath " << dir_ << "/mail/\nInbox " << dir_
                      << "/mail/INBOX\nSubFolders Verbatim\n\n"
                      << "Channel inbox\nFar :far:INBOX\nNear :near:INBOX\nCreate Near\nSync Pull\nSyncState *\n"
                      << "Expunge None\n\n"
                      << "Channel folders\nFar :far:" << prefix << "\nNear :near:\nPatterns * !INBOX\nCreate Near\n"
                      << "Sync Pull\nSyncState *\nExpunge None\n";
    return Lab::get().run({"mbsync", "-c", rc, "-a"}, {}, 120);
  }
  std::string user_, dir_;
};

int messages_in(const nlohmann::json& state) {
  int n = 0;
  for (const auto& [name, f] : state["folders"].items()) n += f["messages"].get<int>();
  return n;
}

// Courier -> Dovecot with Courier itself as the "before" oracle and mbsync as the client: a
// mailbox Courier wrote on courier1 moves to the Dovecot store store2 (converted). Dovecot then
// reports over IMAP (through nginx) the UIDVALIDITY, UIDs, flags and keywords Courier reported,
// folder for folder (Courier's "INBOX.a.b" is Dovecot's "a/b" in the lab's namespace), and an
// mbsync that synced every folder from Courier before the move (through a Tunnel to Courier's
// imapd) downloads nothing from Dovecot after it.
TEST(MoveCourierStore, CourierToDovecotShowsWhatCourierShowedAndMbsyncDownloadsNothing) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("courier1");
  const nlohmann::json filled = lab.fill_mailbox(user, 200, 33, "courier1");
  ASSERT_EQ(filled["appended"], 200) << filled.dump();
  const nlohmann::json before = lab.imap_state(user, "courier1", /*detail=*/true);

  const std::string cfg = courier_and_store2_config("courier_to_dovecot.toml");

  MbsyncClient client(user);
  RunResult first = client.sync_from_courier(lab.home_path("courier1", user));
  ASSERT_EQ(first.rc, 0) << first.describe();
  const int synced = client.messages();
  ASSERT_EQ(synced, messages_in(before));
  ASSERT_GT(client.folders().size(), 3u) << "mbsync synced too few folders from Courier: " << first.describe();

  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  // Courier's shares (fill_mailbox.py's SETACLs) are not converted, and the move says so.
  EXPECT_THAT(r.err, ::testing::HasSubstr("Courier ACLs are not converted to Dovecot's; these shares end with the move: "));
  EXPECT_THAT(r.err, ::testing::HasSubstr("INBOX.Lists (bob@example.org lr)"));
  const nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  expect_dovecot_shows_what_courier_showed(before, after);

  // The same client, now through nginx to Dovecot: nothing to download in any folder.
  const std::set<std::string> folders = client.folders();
  RunResult second = client.sync_through_nginx();
  ASSERT_EQ(second.rc, 0) << second.describe();
  EXPECT_EQ(client.messages(), synced) << "mbsync downloaded mail again after the move: " << second.describe();
  EXPECT_THAT(second.out + second.err, ::testing::Not(::testing::HasSubstr("UIDVALIDITY"))) << second.describe();
  const std::set<std::string> folders_after = client.folders();
  for (const auto& f : folders) EXPECT_TRUE(folders_after.count(f)) << f;
  std::printf("courier -> dovecot: %s; mbsync after the move: %s\n", r.out.c_str(), second.out.c_str());
}

// A mailbox Courier's own imapd wrote (its hierarchy ACLs and keyword directories, folders
// "Q&A", "Lists/dovecot" and a UTF-8 one) into Dovecot's LAYOUT=fs with UTF-8 names: Dovecot
// shows every folder with Courier's UIDVALIDITY, UIDs, flags and keywords, and no folder
// Courier did not have (LAYOUT=fs would list any directory of Courier's left in the copy).
TEST(MoveCourierStore, CourierIntoLayoutFsUtf8ShowsWhatCourierShowedAndNothingElse) {
  Lab& lab = Lab::get();
  const std::string location = "maildir:~/Maildir:LAYOUT=fs:UTF-8";
  const std::string user = lab.add_user("courier1");
  set_user_mail_location(lab, "store2", user, location);
  const nlohmann::json filled = lab.fill_mailbox(user, 120, 35, "courier1");
  ASSERT_EQ(filled["appended"], 120) << filled.dump();
  const nlohmann::json before = lab.imap_state(user, "courier1", /*detail=*/true);
  ASSERT_TRUE(std::filesystem::is_directory(lab.maildir_path("courier1", user) + "/courierimaphieracl"))
      << "Courier's imapd no longer writes hierarchy ACLs: this test checks nothing about them";

  MbsyncClient client(user);
  RunResult first = client.sync_from_courier(lab.home_path("courier1", user));
  ASSERT_EQ(first.rc, 0) << first.describe();
  const int synced = client.messages();
  ASSERT_EQ(synced, messages_in(before));

  RunResult r = mailshard(courier_and_store2_config("courier_to_dovecot_fs.toml", location), {"move", user, "--to", "store2"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  const nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  expect_dovecot_shows_what_courier_showed(before, after);
  // The client that synced every folder from Courier finds nothing new in Dovecot's fs layout.
  RunResult second = client.sync_through_nginx();
  ASSERT_EQ(second.rc, 0) << second.describe();
  EXPECT_EQ(client.messages(), synced) << "mbsync downloaded mail again after the move: " << second.describe();
  EXPECT_THAT(second.out + second.err, ::testing::Not(::testing::HasSubstr("UIDVALIDITY"))) << second.describe();
  std::set<std::string> courier_names;
  for (const auto& [name, b] : before["folders"].items()) {
    std::string dname = name == "INBOX" ? name : name.substr(std::string("INBOX.").size());
    std::replace(dname.begin(), dname.end(), '.', '/');
    courier_names.insert(dname);
  }
  for (const auto& [name, a] : after["folders"].items())
    EXPECT_TRUE(courier_names.count(name) || name == "Drafts" || name == "Sent" || name == "Trash")
        << "a folder Courier did not have: " << name;
  const std::string m = lab.maildir_path("store2", user);
  EXPECT_TRUE(std::filesystem::is_directory(m + "/Entwürfe/cur")) << "UTF-8 on disk";
  EXPECT_TRUE(std::filesystem::is_directory(m + "/Lists/dovecot/cur"));
  EXPECT_FALSE(std::filesystem::exists(m + "/courierimaphieracl"));
  EXPECT_FALSE(std::filesystem::exists(m + "/courierimapkeywords"));
}

// A user who set keywords and logs in again between the last warm pass and the freeze. Courier
// writes a keyword change as a new update file in courierimapkeywords/ and, on the folder's next
// open, renames that file to the message's keyword file (a new name, or over the old one). The
// frozen pass renames (or links) them on the destination too instead of sending each again (with
// an fsync each, under the freeze), and Dovecot then shows every keyword Courier shows.
TEST(MoveCourierStore, KeywordFilesCourierRenamesBeforeTheFreezeAreRenamedNotSent) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("courier1");
  const nlohmann::json filled = lab.fill_mailbox(user, 200, 34, "courier1");
  ASSERT_EQ(filled["appended"], 200) << filled.dump();
  const std::string cfg = courier_and_store2_config("courier_keyword_renames.toml");
  // "store": a session sets $Late on INBOX 1:20 and ends (the update files stay); "open": a
  // session opens INBOX (Courier renames them).
  const std::string script = lab.dir() + "/courier-keywords-" + std::to_string(::getpid()) + ".py";
  std::ofstream(script) << "import sys\nsys.path.insert(0, '" << lab.env("LAB_SCRIPTS") << "')\nimport labcommon\n"
                        << "env = labcommon.load_env('" << lab.dir() << "')\n"
                        << "s = labcommon.courier_session(env, 'courier1', '" << user << "')\n"
                        << "s.examine('INBOX', readonly=False)\n"
                        << "if sys.argv[1] == 'store':\n"
                        << "    s.command('STORE', '1:20', '+FLAGS.SILENT', '($Late)')\n"
                        << "s.logout()\n";
  const std::string keywords = lab.home_path("courier1", user) + "/Maildir/courierimapkeywords";
  auto names = [&] {
    RunResult ls = lab.run({"sh", "-c", "ls -A " + keywords + " | wc -l"});
    return std::stoi(ls.out.empty() ? "0" : ls.out);
  };
  const int settled = names();
  RunResult set = lab.run({"/usr/bin/python3", script, "store"});
  ASSERT_EQ(set.rc, 0) << set.describe();
  const int update_files = names() - settled;
  ASSERT_GT(update_files, 0) << "Courier wrote no keyword update files";

  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"},
                          {"MAILSHARD_TEST_AT=precopy.end:run:/usr/bin/python3 " + script + " open"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  const nlohmann::json fp = latest_move(cfg, user)["detail"]["final_pass"];
  std::printf("%d keyword files, %d update files, %d after the open; frozen pass: %s\n", settled, update_files, names(),
              fp.dump().c_str());
  // The update files renamed to a new name were renamed on the destination too, not sent: what
  // is sent is :list and the keyword files whose content the open changed.
  EXPECT_GE(fp["renames"].get<int64_t>(), 1) << "no keyword file was renamed on the destination";
  EXPECT_LT(fp["metadata_sent"].get<int64_t>(), update_files) << "the renamed keyword files were sent again";

  // What Courier shows on the source (the copy the move left), Dovecot shows after the move.
  const nlohmann::json courier = lab.imap_state(user, "courier1", /*detail=*/true);
  const nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  expect_dovecot_shows_what_courier_showed(courier, after);
  int late = 0;
  for (const auto& m : after["folders"]["INBOX"]["detail"])
    for (const auto& f : m["flags"]) late += f == "$Late";
  EXPECT_EQ(late, 20);
}

// nginx routes a Courier store's users by mailHost like the Dovecot stores' (issue 11): a login
// through nginx lands on courier1 (Courier's imapd behind tests/lab/courier_imaplogin.py) and sees
// what Courier's imapd on a pipe shows; while the move to the Dovecot store2 holds the user
// frozen, nginx refuses the login with [UNAVAILABLE]; afterwards the same login lands on store2
// and sees the same UIDVALIDITY, UIDs and flags.
TEST(MoveCourierStore, NginxRoutesACourierUserToCourierThenRefusesWhileFrozenThenRoutesToDovecot) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("courier1");
  const nlohmann::json filled = lab.fill_mailbox(user, 60, 44, "courier1");
  ASSERT_EQ(filled["appended"], 60) << filled.dump();
  const nlohmann::json on_pipe = lab.imap_state(user, "courier1", /*detail=*/true);
  const nlohmann::json before = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(before["store"], "courier1") << "nginx did not route a courier1 account to courier1";
  EXPECT_THAT(lab.last_auth_decision(user),
              ::testing::HasSubstr("decision=ok store=courier1 port=" + lab.store_env("courier1", "IMAP_PORT")));
  EXPECT_EQ(before["hash"], on_pipe["hash"]) << "Courier behind nginx shows another mailbox than on a pipe";
  EXPECT_EQ(before["subscriptions"], on_pipe["subscriptions"]);

  // A client logging in through nginx all along.
  const std::string stop = lab.dir() + "/probe-stop-courier-" + std::to_string(::getpid());
  std::remove(stop.c_str());
  RunResult probe;
  std::thread client([&] {
    probe = lab.run_script("router_probe.py", {"--user", user, "--via", "nginx", "--stop-file", stop, "--interval",
                                               "0.1", "--max-seconds", "120"},
                           180);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  // A 60-message final pass is over before a client logging in every ~0.1 s meets the freeze
  // reliably: hold it 3 s longer, as a bigger mailbox's would (as move_routers_test does).
  const std::string cfg = courier_and_store2_config("courier_via_nginx.toml");
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=kick.end:run:/bin/sleep 3"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  { std::ofstream(stop) << "stop\n"; }
  client.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  ASSERT_EQ(probe.rc, 0) << probe.describe();

  // The client's view: courier1, then only [UNAVAILABLE] (or a session the kick ended), then store2.
  const nlohmann::json attempts = nlohmann::json::parse(probe.out)["attempts"];
  int on_courier = 0, unavailable = 0, kicked = 0, on_store2 = 0;
  std::string phase = "courier1";
  for (const auto& a : attempts) {
    const std::string outcome = a["outcome"];
    ASSERT_TRUE(outcome == "ok" || outcome == "unavailable" || outcome == "kicked") << a.dump();
    if (outcome == "kicked") {
      EXPECT_NE(phase, "store2") << "a session kicked after the routing reached store2: " << a.dump();
      ++kicked;
    } else if (outcome == "unavailable") {
      EXPECT_NE(phase, "store2") << "refused after nginx had routed to store2: " << a.dump();
      phase = "frozen";
      ++unavailable;
    } else if (a["store"] == "courier1") {
      EXPECT_EQ(phase, "courier1") << "back on courier1 after the freeze: " << a.dump();
      ++on_courier;
    } else {
      EXPECT_EQ(a["store"], "store2") << a.dump();
      phase = "store2";
      ++on_store2;
    }
  }
  EXPECT_GT(on_courier, 0) << "no login reached courier1 before the freeze";
  EXPECT_GT(unavailable, 0) << "no login through nginx met the freeze";
  EXPECT_GT(on_store2, 0) << "no login reached store2 after the move";

  const nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  EXPECT_THAT(lab.last_auth_decision(user),
              ::testing::HasSubstr("decision=ok store=store2 port=" + lab.store_env("store2", "IMAP_PORT")));
  expect_dovecot_shows_what_courier_showed(before, after);
  std::printf("courier -> dovecot through nginx: %s; %zu logins: %d on courier1, %d refused [UNAVAILABLE], %d kicked, "
              "%d on store2\n",
              r.out.c_str(), attempts.size(), on_courier, unavailable, kicked, on_store2);
}

}  // namespace
}  // namespace mailshard::testing
