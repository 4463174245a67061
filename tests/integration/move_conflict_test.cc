// Someone changes the user's entry by hand in the middle of a move: the flip's
// assertion fails and the move rolls back cleanly. A user frozen by another
// controller's move is neither taken over nor thawed. And a move that would
// change the mail format without converting it (Dovecot -> Courier) is
// refused before anything is written.
#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

TEST(MoveConflict, EntryChangedMidMoveAbortsCleanly) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 80, 31);
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  const std::string dn = lab.user_dn(user);
  // After verify, an operator points the user at store3 by hand.
  std::string ldif = "dn: " + dn + "\nchangetype: modify\nreplace: mailHost\nmailHost: store3\n";
  std::string script = lab.dir() + "/conflict_edit.sh";
  lab.run({"sh", "-c", "printf '%s' '" + ldif + "' > " + script + ".ldif"});
  lab.run({"sh", "-c",
           "printf '#!/bin/sh\\nexec ldapmodify -x -H " + lab.env("LDAP_URI") + " -D " + lab.env("LDAP_ADMIN_DN") +
               " -y " + lab.env("LDAP_ADMIN_PW_FILE") + " -f " + script + ".ldif\\n' > " + script + "; chmod +x " + script});
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=verify.end:run:" + script});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("rolled_back"));
  EXPECT_THAT(r.out, HasSubstr("changed underneath us"));
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store3") << "the operator's change stands";
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "rolled_back");
  EXPECT_THAT(m["error"].get<std::string>(), HasSubstr("changed underneath us"));
  EXPECT_FALSE(path_exists(lab.home_path("store2", user)));
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
  // The source copy is untouched: pointing the user back finds every message.
  ASSERT_EQ(lab.ldap_modify_assert(dn, "replace: mailHost\nmailHost: store1\n", "(mailHost=store3)"), 0);
  expect_same_imap_state(before, lab.imap_state(user, "nginx", true));
}

// A Dovecot mailbox onto a store declared Courier-IMAP: mailshard converts
// only Courier to Dovecot, so this move would renumber every UID under
// Courier. Refused in preflight, in one line, before anything is written.
TEST(MoveConflict, DovecotMailOntoACourierStoreIsRefusedBeforeAnythingIsWritten) {
  Lab& lab = Lab::get();
  const std::string cfg = lab_config(
      "conflict_courier_dst", {{"(name = \"store2\"\n)", "$1mail_location = \"courier:~/Maildir\"\n"}});
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 20, 32);
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  EXPECT_EQ(r.rc, 2) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("its mail on store1 is Dovecot Maildir (its files) but store2 reads Courier-IMAP "
                               "Maildir++: moved unconverted"));
  EXPECT_THAT(r.err, HasSubstr("mailshard converts only Courier to Dovecot"));
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_FALSE(path_exists(lab.home_path("store2", user)));
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "rolled_back");
}

// Another controller (its own journal) holds the user frozen for its move: the
// freeze value names that move. This controller's move copies, then cannot
// freeze: it rolls back without touching the other freeze (its rollback's
// thaw leaves it), and says whose freeze it met.
TEST(MoveConflict, AUserFrozenByAnotherControllersMoveIsNeitherTakenOverNorThawed) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 30, 33);
  const std::string theirs = "frozen;move=9.0badc0de";
  ASSERT_EQ(lab.ldap_modify_assert(lab.user_dn(user), "replace: mailAccountStatus\nmailAccountStatus: " + theirs + "\n",
                                   "(mailAccountStatus=active)"),
            0);
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_THAT(r.out + r.err, HasSubstr("frozen by move 9.0badc0de: refusing to freeze")) << r.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), theirs) << "the other move's freeze stands";
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "rolled_back");
  EXPECT_FALSE(path_exists(lab.home_path("store2", user)));
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
  // When the other controller thaws, this one's next move goes through, and its own
  // freeze named its own move while it held (the flip asserted exactly that value).
  ASSERT_EQ(lab.ldap_modify_assert(lab.user_dn(user), "replace: mailAccountStatus\nmailAccountStatus: active\n",
                                   "(mailAccountStatus=" + theirs + ")"),
            0);
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  RunResult again = mailshard(cfg, {"move", user, "--to", "store2"});
  ASSERT_EQ(again.rc, 0) << again.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  expect_same_imap_state(before, lab.imap_state(user, "nginx", true));
}

}  // namespace
}  // namespace mailshard::testing
