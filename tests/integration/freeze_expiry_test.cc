// A freeze that carries its own deadline ([freeze] until_in_value = true):
// the value is "frozen;until=<UTC>", and the routers (the lab's nginx
// auth_http, the LMTP deliverer) let the user in once it has passed, with no
// mailshard process running. The belt to the guard's and resume's braces.
#include <chrono>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string until_config(const std::string& name, const std::string& max_duration) {
  std::string cfg = lab_config(name, {{R"(max_duration = .*)", "max_duration = \"" + max_duration + "\"\nuntil_in_value = true"}});
  std::ifstream in(cfg);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.find("until_in_value = true") == std::string::npos) throw LabError("the lab config has no max_duration line");
  return cfg;
}

TEST(FreezeExpiry, AMoveWithTheDeadlineInTheValueFlipsAndThaws) {
  Lab& lab = Lab::get();
  const std::string cfg = until_config("freeze_until_happy", "10m");
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 30, 71);
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  // The value during the freeze, read by the hook at the end of the freeze step.
  const std::string seen = lab.dir() + "/freeze_until_value";
  const std::string read = "sh -c \"/usr/bin/ldapsearch -x -LLL -H " + lab.env("LDAP_URI") + " -b " + lab.user_dn(user) +
                           " -s base mailAccountStatus > " + seen + "\"";
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=freeze.end:run:" + read});
  ASSERT_EQ(r.rc, 0) << r.describe();
  std::ifstream in(seen);
  std::string ldif((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The move that froze it, then the deadline.
  EXPECT_THAT(ldif, ::testing::ContainsRegex("mailAccountStatus: frozen;move=[0-9]+\\.[0-9a-f]{8};until=20")) << ldif;
  // The flip asserted exactly that value (else it would have refused) and the thaw lifted it.
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  nlohmann::json after = lab.imap_state(user, "nginx", true);
  EXPECT_EQ(after["store"], "store2");
  expect_same_imap_state(before, after);
}

TEST(FreezeExpiry, WithTheMoverAndItsGuardKilledLoginsWorkAgainAtTheDeadline) {
  Lab& lab = Lab::get();
  const std::string cfg = until_config("freeze_until_killed", "8s");
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 20, 72);
  nlohmann::json before = lab.imap_state(user, "nginx", true);

  // kill -9 right after the freeze, and its guard too: no mailshard process is left.
  const auto t0 = std::chrono::steady_clock::now();
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=freeze.end:kill"});
  ASSERT_EQ(r.rc, 128 + 9) << r.describe();
  // (This lab's config path: the other tree's lab runs the same test at once.)
  lab.run({"pkill", "-9", "-f", cfg + " .*--guard-until"});
  ASSERT_NE(lab.run({"pgrep", "-f", cfg}).rc, 0) << "a mailshard process is still running";
  const std::string value = lab.ldap_get(user, "mailAccountStatus").value_or("");
  ASSERT_THAT(value, StartsWith("frozen;move=")) << "the freeze holds, naming its move";
  ASSERT_THAT(value, HasSubstr(";until=")) << "the freeze holds, with its deadline";

  // Frozen now: the proxy refuses with a temporary error.
  RunResult frozen = lab.run_script("imap_state.py", {"--user", user});
  EXPECT_EQ(frozen.rc, 3) << frozen.describe();
  EXPECT_THAT(lab.last_auth_decision(user), HasSubstr("decision=frozen"));

  // At the deadline the proxy lets the user in again, on the source (the
  // move never flipped), with nobody having touched LDAP.
  nlohmann::json after;
  for (int i = 0; i < 60; ++i) {
    RunResult again = lab.run_script("imap_state.py", {"--user", user, "--detail"});
    if (again.rc == 0) {
      after = nlohmann::json::parse(again.out);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(after.is_null()) << "still refused " << waited << " s after the freeze";
  EXPECT_GE(waited, 6.0) << "let in before the deadline";
  EXPECT_EQ(after["store"], "store1");
  EXPECT_THAT(lab.last_auth_decision(user), HasSubstr("decision=ok"));
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus").value_or(""), value) << "LDAP still holds the expired freeze";
  expect_same_imap_state(before, after);
  // Mail is delivered again (an MTA that honours the freeze would have waited).
  nlohmann::json late = lab.deliver(user, 1, "after-deadline", {"--honor-freeze", "--freeze-timeout", "5"});
  EXPECT_EQ(late["messages"][0]["store"], "store1");

  // resume settles the move: rolled back, the expired value lifted.
  RunResult res = mailshard(cfg, {"resume"});
  ASSERT_EQ(res.rc, 0) << res.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  EXPECT_EQ(latest_move(cfg, user)["state"], "rolled_back");
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
}

}  // namespace
}  // namespace mailshard::testing
