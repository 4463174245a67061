// Before the flip a move only rolls back: a copy that fails verification, and
// an operator's `mailshard abort` of an interrupted move, both leave the user
// on the source, thawed, with no staging copy and nothing changed for the
// client; after the flip `abort` refuses and `resume` rolls forward.
#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

// A script (path returned) that runs `body` with sh.
std::string script(const std::string& name, const std::string& body) {
  Lab& lab = Lab::get();
  const std::string path = lab.dir() + "/" + name + ".sh";
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  lab.run({"chmod", "755", path});
  return path;
}

void expect_rolled_back(const std::string& cfg, const std::string& user, const nlohmann::json& before) {
  Lab& lab = Lab::get();
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_EQ(latest_move(cfg, user)["state"], "rolled_back");
  EXPECT_FALSE(path_exists(lab.home_path("store2", user)));
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
  nlohmann::json after = lab.imap_state(user, "nginx", true);
  EXPECT_EQ(after["store"], "store1");
  expect_same_imap_state(before, after);
}

TEST(MoveRollback, ACopyThatFailsVerificationIsNeverFlipped) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 60, 41);
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  // Under the freeze, after the final pass: the uidlist the pass wrote into
  // the staging copy gets a line more (a disk, a bug or a person changed it).
  // (Messages copied by earlier passes were verified when copied; the frozen
  // check re-hashes what the final pass wrote and every uidlist.)
  const std::string tamper =
      script("tamper_copy", "for f in " + lab.home_path("store2", user) +
                                ".mailshard-incoming-*/Maildir/dovecot-uidlist; do echo '99999 :x' >> \"$f\"; exit 0; "
                                "done; exit 1");
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=verify.begin:run:" + tamper});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("rolled_back"));
  EXPECT_THAT(r.out + r.err, HasSubstr("differ"));
  expect_rolled_back(cfg, user, before);
  EXPECT_THAT(latest_move(cfg, user)["error"].get<std::string>(), HasSubstr("verify"));
}

TEST(MoveRollback, AbortRollsBackAnInterruptedMoveAndRefusesAFlippedOne) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 40, 43);
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  // Killed under the freeze, before the final pass: the user is locked out
  // until someone acts; the operator aborts.
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=final_sync.begin:kill"});
  EXPECT_NE(r.rc, 0);
  EXPECT_THAT(lab.ldap_get(user, "mailAccountStatus").value_or(""), ::testing::StartsWith("frozen;move="));
  const std::string id = std::to_string(latest_move(cfg, user)["id"].get<int64_t>());
  RunResult a = mailshard(cfg, {"abort", id});
  EXPECT_EQ(a.rc, 0) << a.describe();
  EXPECT_THAT(a.out, HasSubstr("rolled_back"));
  expect_rolled_back(cfg, user, before);
  // Aborting it again changes nothing.
  RunResult again = mailshard(cfg, {"abort", id});
  EXPECT_EQ(again.rc, 2) << again.describe();
  EXPECT_EQ(again.err, "mailshard: abort move " + id + ": move " + id + " is already rolled_back\n");
  EXPECT_EQ(latest_move(cfg, user)["state"], "rolled_back");

  // Killed after the flip: abort refuses (the destination is the mailbox
  // now), resume rolls forward and thaws.
  RunResult r2 = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=thaw.begin:kill"});
  EXPECT_NE(r2.rc, 0);
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
  const std::string id2 = std::to_string(latest_move(cfg, user)["id"].get<int64_t>());
  RunResult refused = mailshard(cfg, {"abort", id2});
  EXPECT_EQ(refused.rc, 1) << refused.describe();
  EXPECT_THAT(refused.err, HasSubstr("flipped"));
  RunResult res = mailshard(cfg, {"resume"});
  EXPECT_EQ(res.rc, 0) << res.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_EQ(latest_move(cfg, user)["state"], "done");
  nlohmann::json after = lab.imap_state(user, "nginx", true);
  EXPECT_EQ(after["store"], "store2");
  expect_same_imap_state(before, after);
}

}  // namespace
}  // namespace mailshard::testing
