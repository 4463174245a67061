// A user whose Dovecot keeps mail in mdbox with an alternate storage
// (mail_location mdbox:~/mdbox:ALT=ROOT/alt/%d/%n on both stores: the lab's
// split-users userdb gives the user that location), with part of the mail
// moved to the alt storage by doveadm altmove + purge, moves from store1 to
// store2 while LMTP deliveries that ignore the freeze race the move. Over IMAP afterwards: every
// folder's UIDVALIDITY, every UID with its flags and INTERNALDATE are the
// source's, and every delivered message is there exactly once. Two more
// messages saved on store1 right after the thaw (one into a new folder) are
// imported by the sweep from a side copy without the storage files the move
// copied unchanged, and nothing in store2's trees is left to root (Dovecot's
// doveadm server imports as root). On disk: the alt files are in store2's
// alt tree, and no staging or sweep directory is left. Then the same for an
// sdbox user; and an sdbox move killed as its sweep begins, with late mail
// on the source, that `resume` finishes.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <regex>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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

// Bytes of the regular files under `dir` whose name passes `keep`.
int64_t file_bytes(const std::string& dir, const std::function<bool(const std::filesystem::path&)>& keep) {
  int64_t n = 0;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file() && keep(e.path())) n += static_cast<int64_t>(e.file_size());
  return n;
}

// The bytes of the sweep's side copy, from the move's log line ("side copy
// for the sweep on storeN: N file(s), B byte(s)"); -1 without one.
int64_t side_copy_bytes(const std::string& log) {
  std::smatch m;
  static const std::regex re("side copy for the sweep on store[0-9]: [0-9]+ file\\(s\\), ([0-9]+) byte");
  return std::regex_search(log, m, re) ? std::stoll(m[1]) : -1;
}

// Entries under `dir` owned by root (the lab's mail belongs to dovecot):
// Dovecot's doveadm server imports as root (see give_back_to_tree_owner).
std::vector<std::string> root_owned(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0 && st.st_uid == 0) out.push_back(e.path().string());
  }
  return out;
}

// The sweep's own account of its side copy and imports, for the test log.
void print_sweep_lines(const std::string& log) {
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (line.find("side copy for the sweep") != std::string::npos || line.find("given back") != std::string::npos)
      std::cout << "  [mailshard] " << line << "\n";
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

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Names in `dir` that a move left (staging, side copies: ".mailshard-").
std::vector<std::string> mailshard_names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().find(".mailshard-") != std::string::npos) out.push_back(e.path().string());
  return out;
}

// A script for MAILSHARD_TEST_AT=<point>:run:<script> that saves two messages
// ("<tag>-1@example.net" to the INBOX, "<tag>-2@..." to a new folder "Late")
// for `user` on store1 through its Dovecot, as an MTA with a stale route
// (and a sieve rule filing into a new folder) would after the flip; then,
// with `kill_mover`, kills the mover (its parent). The import of the new
// folder creates files in the destination mailbox.
std::string late_saves_script(Lab& lab, const std::string& user, const std::string& tag, bool kill_mover) {
  const std::string script = lab.dir() + "/" + tag + ".sh";
  const std::string doveadm = lab.dir() + "/bin/doveadm-store1";
  std::ofstream(script) << "#!/bin/sh\nset -e\n"
                        << doveadm << " mailbox create -u " << user << " Late\n"
                        << "for i in 1 2; do\n  box=INBOX; [ $i = 2 ] && box=Late\n"
                        << "  printf 'From: late@example.net\\r\\nTo: " << user
                        << "\\r\\nMessage-ID: <" << tag << "-'$i'@example.net>\\r\\nSubject: late '$i'\\r\\n\\r\\n"
                        << "after the flip\\r\\n' | " << doveadm << " save -u " << user << " -m $box"
                        << "\ndone\n" << (kill_mover ? "kill -9 $PPID\n" : "");
  if (::chmod(script.c_str(), 0755) != 0) throw LabError("chmod " + script);
  return script;
}

// The two messages of late_saves_script(tag) are each there once.
void expect_late_saves_once(const nlohmann::json& state, const std::string& tag) {
  auto counts = message_id_counts(state);
  for (int i = 1; i <= 2; ++i) EXPECT_EQ(counts["<" + tag + "-" + std::to_string(i) + "@example.net>"], 1) << tag << i;
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
  // Two messages saved on store1 right after the thaw: the sweep imports
  // them from a side copy that leaves out the storage files the move copied
  // unchanged (mdbox: the alt tier's m.* files). (Written before the MTA
  // thread forks: a child that inherited the script's open fd would make
  // running it fail with ETXTBSY.)
  const std::string tag = "late-" + format + "-" + std::to_string(::getpid());
  const std::string script = late_saves_script(lab, user, tag, /*kill_mover=*/false);
  nlohmann::json delivered;
  // An MTA that ignores the freeze (LMTP straight to the store): mail lands
  // before, during and after the frozen pass. The copy's indexes never name
  // mail the copy lacks (they are read before the listing), and what lands
  // after the final pass is swept over by doveadm import.
  std::thread mta([&] {
    delivered = lab.deliver(user, 60, "dbox" + format, {"--interval", "0.02"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=thaw.end:run:" + script});
  mta.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr(user + " store1 -> store2: done"));
  EXPECT_THAT(r.err, HasSubstr("side copy for the sweep on store2")) << r.describe();
  print_sweep_lines(r.err);
  EXPECT_THAT(r.err, Not(HasSubstr("MAILSHARD_TEST_AT command failed"))) << r.describe();
  ASSERT_EQ(delivered["delivered"], 60);
  EXPECT_GT(delivered["stores"].value("store1", 0), 0) << "deliveries raced the move on the source";

  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  expect_uids_kept(before, after);
  auto counts = message_id_counts(after);
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(counts[m["message_id"].get<std::string>()], 1) << m.dump();
  expect_late_saves_once(after, tag);

  // On disk: the alt files in store2's alt tree, nothing left beside the trees.
  EXPECT_EQ(count_files(root2 + "/alt/" + rel, file_prefix), alt_files);
  for (const std::string& home : {lab.home_path("store2", user), root2 + "/alt/" + rel}) {
    EXPECT_TRUE(leftovers(home).empty()) << home;
    EXPECT_THAT(root_owned(home), ::testing::IsEmpty()) << "the sweep's import left root's files";
  }
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done");
  ASSERT_EQ(m["detail"]["trees"].size(), 1u) << m["detail"].dump();
  EXPECT_EQ(m["detail"]["trees"][0]["name"], "alt");
  EXPECT_GE(m["detail"]["doveadm_messages_compared"].get<int64_t>(), 300) << m["detail"].dump();
  EXPECT_GE(m["detail"]["swept"].get<int64_t>(), 2) << m["detail"].dump();
  // The side copy left out the alt tier's storage files (unchanged since
  // the move copied them): it is smaller than the source without them.
  const auto any = [](const std::filesystem::path&) { return true; };
  const int64_t alt_storage = file_bytes(alt1, [&](const std::filesystem::path& p) {
    return p.filename().string().rfind(file_prefix, 0) == 0;
  });
  ASSERT_GT(alt_storage, 0);
  const int64_t side = side_copy_bytes(r.err);
  EXPECT_GT(side, 0) << r.err;
  EXPECT_LE(side, file_bytes(home1, any) + file_bytes(alt1, any) - alt_storage) << r.err;
  std::cout << "  side copy " << side << " bytes; the source's trees " << file_bytes(home1, any) + file_bytes(alt1, any)
            << " bytes, of which the alt tier's storage files " << alt_storage << "\n";

  // Purge sweeps last (through doveadm) and removes both source trees.
  RunResult p = mailshard(cfg, {"purge", "--user", user, "--older-than", "0s"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  EXPECT_FALSE(path_exists(home1));
  EXPECT_FALSE(path_exists(alt1));
  nlohmann::json final_state = lab.imap_state(user, "nginx", /*detail=*/true);
  auto final_counts = message_id_counts(final_state);
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(final_counts[m["message_id"].get<std::string>()], 1) << m.dump();
  expect_late_saves_once(final_state, tag);
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
  const std::string script = late_saves_script(lab, user, tag, /*kill_mover=*/true);
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
    expect_late_saves_once(after, tag);
  };
  check("after resume");
  RunResult p = mailshard(cfg, {"purge", "--user", user, "--older-than", "0s"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  check("after purge");
  EXPECT_TRUE(leftovers(lab.home_path("store2", user)).empty());
  EXPECT_THAT(root_owned(lab.home_path("store2", user)), ::testing::IsEmpty()) << "the import left root's files";
}

// A user whose Dovecot keeps mail in mbox, its INBOX a file in the mail path
// (mbox:~/mail:INBOX=~/mail/inbox on both stores), moves from store1 to
// store2 while LMTP deliveries that ignore the freeze append to the INBOX.
// Over IMAP afterwards every UID, flag and keyword is the source's (mbox
// keeps them in X-UID, Status and X-Keywords headers and in .imap/), every
// delivered message is there exactly once, also after purge's last sweep.
//
// With `spool`, the INBOX is a file in a spool directory beside the homes
// (mbox:~/mail:INBOX=<mail root>/spool/%u, a directory of every user's
// spool, as /var/mail is): it moves as a tree of one file, and nothing else
// in either spool directory is touched.
void move_mbox_user(const std::string& to, bool doveadm_as_mail_user, bool spool = false) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  auto spool_dir = [&](const std::string& store) { return lab.store_env(store, "MAIL_ROOT") + "/spool"; };
  // A neighbour's spool on each server, which no move of this user may touch.
  std::map<std::string, std::string> neighbours;
  for (const std::string& store : {std::string("store1"), to}) {
    if (spool) {
      RunResult mk = lab.run({"install", "-d", "-o", lab.env("MAIL_UID"), "-g", lab.env("MAIL_GID"), spool_dir(store)});
      ASSERT_EQ(mk.rc, 0) << mk.describe();
      const std::string other = spool_dir(store) + "/neighbour-of-" + user;
      std::ofstream(other) << "From someone@example.org Thu Jan  1 00:00:00 2026\nSubject: not " << user << "'s\n\nx\n\n";
      neighbours[other] = read_file(other);
    }
    set_user_mail_location(lab, store, user,
                           spool ? "mbox:~/mail:INBOX=" + spool_dir(store) + "/" + user : "mbox:~/mail:INBOX=~/mail/inbox");
  }
  ASSERT_EQ(lab.fill_mailbox(user, 200, 19, {}, {"--leaf-folders"})["appended"], 200);
  const std::string home1 = lab.home_path("store1", user);
  const std::string inbox1 = spool ? spool_dir("store1") + "/" + user : home1 + "/mail/inbox";
  ASSERT_TRUE(path_exists(inbox1)) << "Dovecot keeps the INBOX as an mbox file";
  if (spool) {
    ASSERT_FALSE(path_exists(home1 + "/mail/inbox")) << "the INBOX is in the spool, not the home";
  }
  ASSERT_TRUE(path_exists(home1 + "/mail/.imap")) << home1;
  ASSERT_FALSE(path_exists(home1 + "/Maildir"));
  nlohmann::json before = lab.imap_state(user, "store1", /*detail=*/true);
  auto location = [&](const std::string& store) {
    return spool ? "mbox:~/mail:INBOX=" + spool_dir(store) + "/%u" : std::string("mbox:~/mail:INBOX=~/mail/inbox");
  };
  const std::string cfg =
      lab_config(spool ? "mbox-spool" : "mbox",
                 {{"(name = \"store1\"\n)", "$1mail_location = \"" + location("store1") + "\"\n"},
                  {"(name = \"" + to + "\"\n)", "$1mail_location = \"" + location(to) + "\"\n"}});
  // Two messages saved on store1 after the thaw: imported from a side copy
  // without the folder files the move copied unchanged. (Written before the
  // MTA thread forks; see move_dbox_user.)
  const std::string tag = "late-mbox-" + std::to_string(::getpid());
  const std::string script = late_saves_script(lab, user, tag, /*kill_mover=*/false);
  nlohmann::json delivered;
  std::thread mta([&] { delivered = lab.deliver(user, 60, "mbox", {"--interval", "0.02"}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RunResult r = mailshard(cfg, {"move", user, "--to", to}, {"MAILSHARD_TEST_AT=thaw.end:run:" + script});
  mta.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr(user + " store1 -> " + to + ": done"));
  EXPECT_THAT(r.err, HasSubstr("side copy for the sweep on " + to)) << r.describe();
  print_sweep_lines(r.err);
  EXPECT_THAT(r.err, Not(HasSubstr("MAILSHARD_TEST_AT command failed"))) << r.describe();
  if (doveadm_as_mail_user) {  // the imports write nothing as root, so nothing is given back
    EXPECT_THAT(r.err, Not(HasSubstr("given back"))) << r.describe();
  }
  ASSERT_EQ(delivered["delivered"], 60);
  EXPECT_GT(delivered["stores"].value("store1", 0), 0) << "deliveries raced the move on the source";

  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], to);
  expect_uids_kept(before, after);
  auto counts = message_id_counts(after);
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(counts[m["message_id"].get<std::string>()], 1) << m.dump();
  expect_late_saves_once(after, tag);
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done");
  EXPECT_GE(m["detail"]["doveadm_messages_compared"].get<int64_t>(), 200) << m["detail"].dump();
  EXPECT_GE(m["detail"]["swept"].get<int64_t>(), 2) << m["detail"].dump();
  EXPECT_TRUE(leftovers(lab.home_path(to, user)).empty());
  EXPECT_THAT(root_owned(lab.home_path(to, user)), ::testing::IsEmpty()) << "the sweep's import left root's files";
  if (spool) {
    const std::string inbox2 = spool_dir(to) + "/" + user;
    ASSERT_TRUE(path_exists(inbox2));
    struct stat st {};
    ASSERT_EQ(::stat(inbox2.c_str(), &st), 0);
    EXPECT_EQ(std::to_string(st.st_uid), lab.env("MAIL_UID")) << "the spool file is the mail user's";
    EXPECT_THAT(mailshard_names(spool_dir(to)), ::testing::IsEmpty()) << "a staging directory was left in the spool";
    for (const auto& [path, text] : neighbours) EXPECT_EQ(read_file(path), text) << path;
  }
  // The side copy left out the folders other than the INBOX (the late mail
  // grew only the INBOX file).
  const auto folder = [](const std::filesystem::path& p) {
    const std::string s = p.string(), name = p.filename().string();
    return s.find("/.imap/") == std::string::npos && name != "inbox" && name.rfind("dovecot", 0) != 0;
  };
  const int64_t folders = file_bytes(home1 + "/mail", folder);
  ASSERT_GT(folders, 0);
  const int64_t side = side_copy_bytes(r.err);
  EXPECT_GT(side, 0) << r.err;
  const int64_t all = file_bytes(home1, [](const std::filesystem::path&) { return true; }) +
                      (spool ? static_cast<int64_t>(std::filesystem::file_size(inbox1)) : 0);
  EXPECT_LE(side, all - folders) << r.err;
  std::cout << "  side copy " << side << " bytes; the source's home " << all << " bytes, of which folders other than the INBOX "
            << folders << "\n";

  RunResult p = mailshard(cfg, {"purge", "--user", user, "--older-than", "0s"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  EXPECT_FALSE(path_exists(home1));
  if (spool) {
    EXPECT_FALSE(path_exists(inbox1)) << "purge leaves the old spool file";
    for (const auto& [path, text] : neighbours) EXPECT_EQ(read_file(path), text) << path;
  }
  nlohmann::json final_state = lab.imap_state(user, "nginx", /*detail=*/true);
  auto final_counts = message_id_counts(final_state);
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(final_counts[m["message_id"].get<std::string>()], 1) << m.dump();
  expect_late_saves_once(final_state, tag);
}

TEST(MoveMbox, MboxWithItsInboxInTheMailPathMovesWithEveryUid) { move_mbox_user("store2", false); }

// store3's doveadm server runs as the mail user (service doveadm { user =
// dovecot }, tests/lab/lab.sh), as an operator may harden it: the sweep's
// imports read the side copy as that user, and nothing they write is
// root's, so nothing is given back.
TEST(MoveMbox, MboxMovesThroughADoveadmServerRunningAsTheMailUser) {
  move_mbox_user("store3", /*doveadm_as_mail_user=*/true);
}

// The INBOX in a spool directory of every user's spools (INBOX=/var/mail/%u
// as the lab lays it out: <mail root>/spool/%u), moved as a file of its own.
TEST(MoveMbox, AnInboxInTheSpoolMovesAsOneFileWithEveryUid) {
  move_mbox_user("store2", /*doveadm_as_mail_user=*/false, /*spool=*/true);
}

}  // namespace
}  // namespace mailshard::testing
