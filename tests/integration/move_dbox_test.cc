// A user whose Dovecot keeps mail in mdbox with an alternate storage
// (mail_location mdbox:~/mdbox:ALT=ROOT/alt/%d/%n on both stores: the lab's
// split-users userdb gives the user that location), with part of the mail
// moved to the alt storage by doveadm altmove + purge, moves from store1 to
// store2 while LMTP deliveries that ignore the freeze race the move. Over IMAP afterwards: every
// folder's UIDVALIDITY, every UID with its flags and INTERNALDATE are the
// source's, and every delivered message is there exactly once. On disk: the
// alt files are in store2's alt tree, and no staging or sweep directory is
// left. Then the same for an sdbox user; and an sdbox move killed as its
// sweep begins, with late mail on the source, that `resume` finishes.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

std::string dbox_location(const std::string& format, const std::string& root) {
  return format + ":~/" + format + ":ALT=" + root + "/alt/%d/%n";
}

// Gives `user` the dbox location on `store` (Dovecot's side).
void dbox_user(Lab& lab, const std::string& store, const std::string& user, const std::string& format) {
  const std::string root = lab.store_env(store, "MAIL_ROOT");
  const auto at = user.find('@');
  const std::string domain = user.substr(at + 1), name = user.substr(0, at);
  // The alt root as an administrator prepares it: the mail user's, like the mail root.
  RunResult mk = lab.run({"install", "-d", "-o", lab.env("MAIL_UID"), "-g", lab.env("MAIL_GID"), root + "/alt",
                          root + "/alt/" + domain});
  if (mk.rc != 0) throw LabError("install -d " + root + "/alt/" + domain + ": " + mk.describe());
  set_user_mail_location(lab, store, user, format + ":~/" + format + ":ALT=" + root + "/alt/" + domain + "/" + name);
}

// Regular files under `dir` whose name starts with `prefix` (m. or u.).
int count_files(const std::string& dir, const std::string& prefix) {
  int n = 0;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

// Leftovers next to a home: staging ("<home>.mailshard-incoming-<id>") or
// a sweep's side copy ("<home>.mailshard-sweep-<id>").
std::vector<std::string> leftovers(const std::string& home) {
  std::vector<std::string> out = staging_dirs(home);
  std::filesystem::path h(home);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(h.parent_path(), ec))
    if (e.path().filename().string().rfind(h.filename().string() + ".mailshard-sweep-", 0) == 0)
      out.push_back(e.path().string());
  return out;
}

void move_dbox_user(const std::string& format, const std::string& file_prefix) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  dbox_user(lab, "store1", user, format);
  dbox_user(lab, "store2", user, format);
  nlohmann::json fill = lab.fill_mailbox(user, 300, 13);
  ASSERT_EQ(fill["appended"], 300);
  const std::string root1 = lab.store_env("store1", "MAIL_ROOT"), root2 = lab.store_env("store2", "MAIL_ROOT");
  const auto at = user.find('@');
  const std::string rel = user.substr(at + 1) + "/" + user.substr(0, at);
  const std::string home1 = lab.home_path("store1", user), alt1 = root1 + "/alt/" + rel;
  // Dovecot really keeps it as dbox.
  ASSERT_GT(count_files(home1 + "/" + format, file_prefix), 0) << home1;
  ASSERT_FALSE(path_exists(home1 + "/Maildir"));
  // About half of the mail to the alt storage: the INBOX (mdbox moves it at purge).
  RunResult alt = lab.run({lab.dir() + "/bin/doveadm-store1", "altmove", "-u", user, "mailbox", "INBOX"});
  ASSERT_EQ(alt.rc, 0) << alt.describe();
  if (format == "mdbox") {
    RunResult purge = lab.run({lab.dir() + "/bin/doveadm-store1", "purge", "-u", user});
    ASSERT_EQ(purge.rc, 0) << purge.describe();
  }
  const int alt_files = count_files(alt1, file_prefix);
  ASSERT_GT(alt_files, 0) << "altmove put nothing into " << alt1;
  ASSERT_GT(count_files(home1 + "/" + format, file_prefix), 0) << "everything went to the alt storage";

  nlohmann::json before = lab.imap_state(user, "store1", /*detail=*/true);
  const std::string cfg = lab_config(
      "dbox_" + format,
      {{"(name = \"store1\"\n)", "$1mail_location = \"" + dbox_location(format, root1) + "\"\n"},
       {"(name = \"store2\"\n)", "$1mail_location = \"" + dbox_location(format, root2) + "\"\n"}});
  nlohmann::json delivered;
  // An MTA that ignores the freeze (LMTP straight to the store): mail lands
  // before, during and after the frozen pass. The copy's indexes never name
  // mail the copy lacks (they are read before the listing), and what lands
  // after the final pass is swept over by doveadm import.
  std::thread mta([&] {
    delivered = lab.deliver(user, 60, "dbox" + format, {"--interval", "0.02"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  mta.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr(user + " store1 -> store2: done"));
  ASSERT_EQ(delivered["delivered"], 60);
  EXPECT_GT(delivered["stores"].value("store1", 0), 0) << "deliveries raced the move on the source";

  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  expect_uids_kept(before, after);
  auto counts = message_id_counts(after);
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(counts[m["message_id"].get<std::string>()], 1) << m.dump();

  // On disk: the alt files in store2's alt tree, nothing left beside the trees.
  EXPECT_EQ(count_files(root2 + "/alt/" + rel, file_prefix), alt_files);
  for (const std::string& home : {lab.home_path("store2", user), root2 + "/alt/" + rel})
    EXPECT_TRUE(leftovers(home).empty()) << home;
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done");
  ASSERT_EQ(m["detail"]["trees"].size(), 1u) << m["detail"].dump();
  EXPECT_EQ(m["detail"]["trees"][0]["name"], "alt");
  EXPECT_GE(m["detail"]["doveadm_messages_compared"].get<int64_t>(), 300) << m["detail"].dump();

  // Purge sweeps last (through doveadm) and removes both source trees.
  RunResult p = mailshard(cfg, {"purge", "--user", user, "--older-than", "0s"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  EXPECT_FALSE(path_exists(home1));
  EXPECT_FALSE(path_exists(alt1));
  nlohmann::json final_state = lab.imap_state(user, "nginx", /*detail=*/true);
  auto final_counts = message_id_counts(final_state);
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(final_counts[m["message_id"].get<std::string>()], 1) << m.dump();
}

TEST(MoveDbox, MdboxWithAltStorageMovesWithEveryUid) { move_dbox_user("mdbox", "m."); }

TEST(MoveDbox, SdboxWithAltStorageMovesWithEveryUid) { move_dbox_user("sdbox", "u."); }

// kill -9 as the sweep begins, with mail that reached the source after the
// flip (an MTA with a stale route: saved by store1's Dovecot): `resume`
// imports it through doveadm exactly once, and purge's last sweep does not
// import it again. Every UID of the move is kept.
TEST(MoveDbox, KilledAsTheSweepBeginsResumeImportsLateMailOnce) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  dbox_user(lab, "store1", user, "sdbox");
  dbox_user(lab, "store2", user, "sdbox");
  ASSERT_EQ(lab.fill_mailbox(user, 80, 17)["appended"], 80);
  nlohmann::json before = lab.imap_state(user, "store1", /*detail=*/true);
  const std::string root1 = lab.store_env("store1", "MAIL_ROOT"), root2 = lab.store_env("store2", "MAIL_ROOT");
  const std::string cfg = lab_config(
      "dbox_crash",
      {{"(name = \"store1\"\n)", "$1mail_location = \"" + dbox_location("sdbox", root1) + "\"\n"},
       {"(name = \"store2\"\n)", "$1mail_location = \"" + dbox_location("sdbox", root2) + "\"\n"}});
  // The hook: two messages saved on store1, then the mover is killed.
  const std::string tag = "late-" + std::to_string(::getpid());
  const std::string script = lab.dir() + "/" + tag + ".sh";
  std::ofstream(script) << "#!/bin/sh\nset -e\nfor i in 1 2; do\n  printf 'From: late@example.net\\r\\nTo: " << user
                        << "\\r\\nMessage-ID: <" << tag << "-'$i'@example.net>\\r\\nSubject: late '$i'\\r\\n\\r\\n"
                        << "after the flip\\r\\n' | " << lab.dir() << "/bin/doveadm-store1 save -u " << user
                        << "\ndone\nkill -9 $PPID\n";
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=sweep.begin:run:" + script});
  ASSERT_EQ(r.rc, 128 + 9) << "the move should have died as the sweep began: " << r.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2") << "it died after the flip";

  RunResult res = mailshard(cfg, {"resume"});
  ASSERT_EQ(res.rc, 0) << res.describe();
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done") << m.dump();
  EXPECT_EQ(m["detail"]["swept"], 2) << m["detail"].dump();
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");

  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
    ASSERT_EQ(after["store"], "store2");
    expect_uids_kept(before, after, /*internaldate=*/false);
    auto counts = message_id_counts(after);
    for (int i = 1; i <= 2; ++i) EXPECT_EQ(counts["<" + tag + "-" + std::to_string(i) + "@example.net>"], 1) << i;
  };
  check("after resume");
  RunResult p = mailshard(cfg, {"purge", "--user", user, "--older-than", "0s"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  check("after purge");
  EXPECT_TRUE(leftovers(lab.home_path("store2", user)).empty());
}

// A user whose Dovecot keeps mail in mbox, its INBOX a file in the mail path
// (mbox:~/mail:INBOX=~/mail/inbox on both stores), moves from store1 to
// store2 while LMTP deliveries that ignore the freeze append to the INBOX.
// Over IMAP afterwards every UID, flag and keyword is the source's (mbox
// keeps them in X-UID, Status and X-Keywords headers and in .imap/), every
// delivered message is there exactly once, also after purge's last sweep.
TEST(MoveMbox, MboxWithItsInboxInTheMailPathMovesWithEveryUid) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  for (const char* store : {"store1", "store2"})
    set_user_mail_location(lab, store, user, "mbox:~/mail:INBOX=~/mail/inbox");
  ASSERT_EQ(lab.fill_mailbox(user, 200, 19, {}, {"--leaf-folders"})["appended"], 200);
  const std::string home1 = lab.home_path("store1", user);
  ASSERT_TRUE(path_exists(home1 + "/mail/inbox")) << "Dovecot keeps the INBOX as an mbox file";
  ASSERT_TRUE(path_exists(home1 + "/mail/.imap")) << home1;
  ASSERT_FALSE(path_exists(home1 + "/Maildir"));
  nlohmann::json before = lab.imap_state(user, "store1", /*detail=*/true);
  const std::string cfg =
      lab_config("mbox", {{"(name = \"store1\"\n)", "$1mail_location = \"mbox:~/mail:INBOX=~/mail/inbox\"\n"},
                          {"(name = \"store2\"\n)", "$1mail_location = \"mbox:~/mail:INBOX=~/mail/inbox\"\n"}});
  nlohmann::json delivered;
  std::thread mta([&] { delivered = lab.deliver(user, 60, "mbox", {"--interval", "0.02"}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  mta.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr(user + " store1 -> store2: done"));
  ASSERT_EQ(delivered["delivered"], 60);
  EXPECT_GT(delivered["stores"].value("store1", 0), 0) << "deliveries raced the move on the source";

  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  expect_uids_kept(before, after);
  auto counts = message_id_counts(after);
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(counts[m["message_id"].get<std::string>()], 1) << m.dump();
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done");
  EXPECT_GE(m["detail"]["doveadm_messages_compared"].get<int64_t>(), 200) << m["detail"].dump();
  EXPECT_TRUE(leftovers(lab.home_path("store2", user)).empty());

  RunResult p = mailshard(cfg, {"purge", "--user", user, "--older-than", "0s"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  EXPECT_FALSE(path_exists(home1));
  auto final_counts = message_id_counts(lab.imap_state(user, "nginx", /*detail=*/true));
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(final_counts[m["message_id"].get<std::string>()], 1) << m.dump();
}

}  // namespace
}  // namespace mailshard::testing
