// Least privilege, as the lab runs every test: mailshard binds as
// cn=mailshard, which reads accounts (not their passwords) and may write only
// the host, home and freeze attributes (the ACL docs/operations.md shows);
// and a move whose destination agent runs as the mail owner, not root, keeps
// every UID and flag.
#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

RunResult ldapmodify_as_mailshard(const std::string& dn, const std::string& ldif) {
  Lab& lab = Lab::get();
  return lab.run({"ldapmodify", "-x", "-H", lab.env("LDAP_URI"), "-D", lab.env("LDAP_MAILSHARD_DN"), "-y",
                  lab.env("LDAP_MAILSHARD_PW_FILE")},
                 "dn: " + dn + "\nchangetype: modify\n" + ldif);
}

TEST(LeastPrivilege, TheLabBindsAsAnAccountThatMayWriteOnlyHostHomeAndStatus) {
  Lab& lab = Lab::get();
  RunResult cfg = lab.run({"grep", "-E", "^bind_dn", lab.env("MAILSHARD_CONFIG")});
  EXPECT_EQ(cfg.out, "bind_dn = \"" + lab.env("LDAP_MAILSHARD_DN") + "\"\n");

  const std::string user = lab.add_user("store1");
  const std::string dn = lab.user_dn(user);
  // Allowed: the three attributes a move writes.
  const std::vector<std::pair<std::string, std::string>> allowed = {
      {"mailHost", "store1"}, {"mailAccountStatus", "active"}, {"mailMessageStore", *lab.ldap_get(user, "mailMessageStore")}};
  for (const auto& [attr, value] : allowed) {
    RunResult r = ldapmodify_as_mailshard(dn, "replace: " + attr + "\n" + attr + ": " + value + "\n");
    EXPECT_EQ(r.rc, 0) << attr << ": " << r.describe();
  }
  // Refused: anything else (50 = insufficientAccessRights).
  for (const char* ldif : {"replace: mail\nmail: thief@example.org\n", "replace: userPassword\nuserPassword: x\n",
                           "add: description\ndescription: x\n"}) {
    RunResult r = ldapmodify_as_mailshard(dn, ldif);
    EXPECT_EQ(r.rc, 50) << ldif << r.describe();
  }
  // It reads the account, but not the password.
  RunResult s = lab.run({"ldapsearch", "-x", "-LLL", "-H", lab.env("LDAP_URI"), "-D", lab.env("LDAP_MAILSHARD_DN"),
                         "-y", lab.env("LDAP_MAILSHARD_PW_FILE"), "-b", dn, "-s", "base", "*"});
  ASSERT_EQ(s.rc, 0) << s.describe();
  EXPECT_THAT(s.out, HasSubstr("mailHost: store1"));
  EXPECT_THAT(s.out, Not(HasSubstr("userPassword")));
}

TEST(LeastPrivilege, AMoveThroughAnAgentRunningAsTheMailOwner) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 150, 11);
  nlohmann::json before = lab.imap_state(user, "nginx", /*detail=*/true);
  // store2 through an agent that drops to the mail owner before it starts.
  const std::string agent = "setpriv --reuid=" + lab.env("MAIL_UID") + " --regid=" + lab.env("MAIL_GID") +
                            " --clear-groups " + mailshard_bin() + " agent --stdio --root " +
                            lab.store_env("store2", "MAIL_ROOT");
  const std::string cfg = lab_config(
      "agent-as-mail-owner",
      {{"(mail_root = \"" + lab.store_env("store2", "MAIL_ROOT") + "\"[^\\n]*\\n(?:[^\\n]*\\n)*?)transport = \"local\"",
        "$1transport = \"agent\"\nagent_command = \"" + agent + "\""}});
  RunResult grep = lab.run({"grep", "-c", "agent_command = \"setpriv", cfg});
  ASSERT_EQ(grep.out, "1\n") << "the config edit did not apply";

  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr(user + " store1 -> store2: done"));
  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  EXPECT_EQ(after["store"], "store2");
  expect_same_imap_state(before, after);
  // Every file of the new home belongs to the mail owner.
  RunResult foreign = lab.run({"find", lab.home_path("store2", user), "!", "-uid", lab.env("MAIL_UID")});
  EXPECT_EQ(foreign.rc, 0) << foreign.describe();
  EXPECT_EQ(foreign.out, "");
}

}  // namespace
}  // namespace mailshard::testing
