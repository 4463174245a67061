// Bad input and faults during a move. Each gets a clear one-line report, and
// the rules hold: nothing lost, nobody frozen, one home.
#include <csignal>
#include <fstream>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

TEST(MoveBadInput, UnknownUserServerAndSameServerAreUsageErrors) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  RunResult nouser = mailshard(cfg, {"move", "nosuch@example.org", "--to", "store2"});
  EXPECT_EQ(nouser.rc, 2) << nouser.describe();
  EXPECT_THAT(nouser.err, HasSubstr("mailshard: move nosuch@example.org: unknown user 'nosuch@example.org'"));
  RunResult noserver = mailshard(cfg, {"move", user, "--to", "store9"});
  EXPECT_EQ(noserver.rc, 2);
  EXPECT_EQ(noserver.err, "mailshard: move " + user + ": unknown server 'store9' (configured: store1, store2, store3)\n");
  RunResult same = mailshard(cfg, {"move", user, "--to", "store1"});
  EXPECT_EQ(same.rc, 2);
  EXPECT_EQ(same.err, "mailshard: move " + user + ": user " + user + " is already on store1\n");
  RunResult noarg = mailshard(cfg, {"move", user});
  EXPECT_EQ(noarg.rc, 2);
  EXPECT_THAT(noarg.err, HasSubstr("--to is required"));
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
}

TEST(MoveBadInput, SecondMoveOfTheSameUserIsRefused) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 30, 51);
  // While the first move holds the user frozen, a second move of the same
  // user starts: the journal's fleet-wide claim refuses it.
  const std::string out = lab.dir() + "/second_move.out";
  std::string hook = "kick.end:run:sh -c '" + mailshard_bin() + " -c " + cfg + " move " + user + " --to store3 > " +
                     out + " 2>&1; echo rc=$? >> " + out + "'";
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=" + hook});
  EXPECT_EQ(r.rc, 0) << r.describe();
  std::ifstream in(out);
  std::string second((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(second, HasSubstr("is already being moved (move "));
  EXPECT_THAT(second, HasSubstr("rc=1"));
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
}

TEST(MoveFaults, DoveadmUnreachableAbortsBeforeTheFreezeExpires) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 40, 52);
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  // store1's doveadm API points at a closed port.
  const std::string cfg = lab_config("doveadm_dead", {{"doveadm_url = \"http://127.0.0.1:" + lab.env("STORE1_DOVEADM_PORT"),
                                                       "doveadm_url = \"http://127.0.0.1:1"}});
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("rolled_back"));
  EXPECT_THAT(r.out, HasSubstr("kick on store1"));
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  EXPECT_FALSE(path_exists(lab.home_path("store2", user)));
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_TRUE(m["lockout_ms"].is_number()) << "the short lockout is still measured";
  expect_same_imap_state(before, lab.imap_state(user, "nginx", true));
}

// slapd stops answering between the freeze and the flip (SIGSTOP): the move
// cannot flip and cannot thaw; once LDAP is back, resume settles it.
TEST(MoveFaults, LdapDiesBetweenFreezeAndFlip) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 40, 53);
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  std::ifstream pidf(lab.dir() + "/pids/slapd.pid");
  std::string pid;
  pidf >> pid;
  ASSERT_FALSE(pid.empty());
  struct Cont {
    std::string pid;
    ~Cont() { Lab::get().run({"kill", "-CONT", pid}); }
  } cont{pid};
  const std::string cfg = lab_config("ldap_dies", {{R"((home_attribute = .*))", "$1\ntimeout = \"2s\""}});
  std::ifstream in(cfg);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(text.find("timeout = \"2s\""), std::string::npos);
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=kick.end:run:kill -STOP " + pid}, 180);
  EXPECT_EQ(r.rc, 1) << r.describe();
  lab.run({"kill", "-CONT", pid});
  RunResult res = mailshard(cfg, {"resume"});
  EXPECT_EQ(res.rc, 0) << res.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
  expect_same_imap_state(before, lab.imap_state(user, "nginx", true));
}

TEST(MoveFaults, DestinationFillsMidCopy) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 300, 54);
  const std::string small = lab.dir() + "/small_store2";
  lab.run({"mkdir", "-p", small});
  ASSERT_EQ(lab.run({"mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", small}).rc, 0);
  struct Umount {
    std::string dir;
    ~Umount() { Lab::get().run({"umount", "-l", dir}); }
  } um{small};
  const std::string cfg = lab_config("enospc", {{"mail_root = \"" + lab.env("STORE2_MAIL_ROOT") + "\"",
                                                 "mail_root = \"" + small + "\""}},
                                     "[move]\nheadroom = 0\n");
  // Something else fills the disk right after preflight measured it.
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"},
                          {"MAILSHARD_TEST_AT=precopy.begin:run:dd if=/dev/zero of=" + small + "/filler bs=1M count=15"});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("rolled_back")) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("No space left on device")) << r.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  RunResult left = lab.run({"sh", "-c", "ls -A " + small + "/example.org 2>/dev/null | wc -l"});
  EXPECT_EQ(left.out, "0\n") << "nothing half-written is left";
}

// The mover dies after the freeze and nobody runs resume: the freeze guard
// lifts the freeze when it expires.
TEST(MoveFaults, FreezeExpiresByItselfAfterACrash) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 20, 55);
  const std::string cfg = lab_config("short_freeze", {{R"(max_duration = .*)", "max_duration = \"3s\""}});
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=freeze.end:kill"});
  ASSERT_EQ(r.rc, 128 + 9) << r.describe();
  EXPECT_THAT(lab.ldap_get(user, "mailAccountStatus").value_or(""), ::testing::StartsWith("frozen;move="));
  bool thawed = false;
  for (int i = 0; i < 200 && !thawed; ++i) {
    thawed = lab.ldap_get(user, "mailAccountStatus") == "active";
    if (!thawed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(thawed) << "the guard did not thaw the user within 20 s";
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  for (int i = 0; i < 50 && latest_move(cfg, user)["state"] != "rolled_back"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(latest_move(cfg, user)["state"], "rolled_back");
}

}  // namespace
}  // namespace mailshard::testing
