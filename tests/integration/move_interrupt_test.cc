// Ctrl-C during a move: the step in progress finishes and is journaled; before
// the flip the move rolls back, after it the thaw still happens. Exit 130, and
// nobody stays frozen.
#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

struct InterruptPoint {
  const char* at;
  bool flipped;
};

class MoveInterrupt : public ::testing::TestWithParam<InterruptPoint> {};

TEST_P(MoveInterrupt, FirstCtrlCStopsSafely) {
  const InterruptPoint p = GetParam();
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 60, 61);
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {std::string("MAILSHARD_TEST_AT=") + p.at + ":int"});
  EXPECT_EQ(r.rc, 130) << r.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), p.flipped ? "store2" : "store1");
  nlohmann::json m = latest_move(cfg, user);
  if (!p.flipped) {
    EXPECT_EQ(m["state"], "rolled_back");
    EXPECT_FALSE(path_exists(lab.home_path("store2", user)));
  }
  // resume settles whatever is left.
  RunResult res = mailshard(cfg, {"resume"});
  EXPECT_EQ(res.rc, 0) << res.describe();
  EXPECT_EQ(latest_move(cfg, user)["state"], p.flipped ? "done" : "rolled_back");
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
  expect_same_imap_state(before, lab.imap_state(user, "nginx", true));
}

INSTANTIATE_TEST_SUITE_P(Steps, MoveInterrupt,
                         ::testing::Values(InterruptPoint{"precopy.begin", false}, InterruptPoint{"freeze.end", false},
                                           InterruptPoint{"final_sync.begin", false},
                                           InterruptPoint{"verify.end", false}, InterruptPoint{"flip.end", true},
                                           InterruptPoint{"thaw.end", true}),
                         [](const ::testing::TestParamInfo<InterruptPoint>& info) {
                           std::string n = info.param.at;
                           for (auto& ch : n)
                             if (ch == '.') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace mailshard::testing
