// kill -9 at every step boundary of a move, then `mailshard resume`: nothing is
// lost, nobody is left frozen, and there is no double home: LDAP points at
// exactly one copy, which holds every message, and no staging copy is left.
// Each crash point runs with the journal in SQLite (the lab's mailshard.toml)
// and in the lab's PostgreSQL (mailshard-pg.toml: the killed mover's lease is
// its database session, which the server ends when the process dies).
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

struct CrashPoint {
  const char* at;       // "<step>.<begin|end>"
  bool rolls_forward;   // after resume the user is on store2 (else back on store1)
};

enum class Backend { kSqlite, kPostgres };

// The lab's config with the journal in `backend`.
std::string config_for(Backend backend) {
  Lab& lab = Lab::get();
  return backend == Backend::kSqlite ? lab.dir() + "/mailshard.toml" : lab.env("PG_CONFIG");
}

class MoveCrash : public ::testing::TestWithParam<std::tuple<CrashPoint, Backend>> {};

TEST_P(MoveCrash, ResumeSettlesTheMove) {
  const CrashPoint p = std::get<0>(GetParam());
  Lab& lab = Lab::get();
  const std::string cfg = config_for(std::get<1>(GetParam()));
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 120, 21);
  lab.deliver(user, 5, "pre");
  nlohmann::json before = lab.imap_state(user, "nginx", true);

  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {std::string("MAILSHARD_TEST_AT=") + p.at + ":kill"});
  ASSERT_EQ(r.rc, 128 + 9) << "the move should have died at " << p.at << ": " << r.describe();

  RunResult res = mailshard(cfg, {"resume"});
  ASSERT_EQ(res.rc, 0) << res.describe();

  const std::string want = p.rolls_forward ? "store2" : "store1";
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), want);
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active") << "nobody stays frozen";
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], p.rolls_forward ? "done" : "rolled_back") << m.dump();
  // A move that reached the flip recounts the destination's quota (step
  // quota_recalc), also when a crash cut it short: resume runs it.
  if (p.rolls_forward) {
    EXPECT_EQ(m["detail"]["quota_recalc"], "done") << m.dump();
  }

  const std::string src = lab.home_path("store1", user), dst = lab.home_path("store2", user);
  EXPECT_TRUE(staging_dirs(dst).empty()) << "no partial copy is left";
  if (p.rolls_forward) {
    EXPECT_TRUE(path_exists(dst));
  } else {
    EXPECT_FALSE(path_exists(dst)) << "a rolled-back move leaves no second home";
    EXPECT_TRUE(path_exists(src));
  }
  nlohmann::json after = lab.imap_state(user, "nginx", true);
  EXPECT_EQ(after["store"], want);
  expect_same_imap_state(before, after);

  // Mail after recovery lands where LDAP says and is readable there.
  nlohmann::json late = lab.deliver(user, 1, "post");
  EXPECT_EQ(late["messages"][0]["store"], want);
  auto counts = message_id_counts(lab.imap_state(user, "nginx", true));
  EXPECT_EQ(counts[late["messages"][0]["message_id"].get<std::string>()], 1);
  // The freeze guard of the killed mover exits once the move is settled.
  for (int i = 0; i < 50; ++i) {
    RunResult ps = lab.run({"pgrep", "-f", "guard-until"});
    if (ps.rc != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryStep, MoveCrash,
    ::testing::Combine(::testing::Values(CrashPoint{"preflight.end", false}, CrashPoint{"precopy.begin", false},
                      CrashPoint{"precopy.end", false}, CrashPoint{"freeze.begin", false},
                      CrashPoint{"freeze.end", false}, CrashPoint{"kick.begin", false}, CrashPoint{"kick.end", false},
                      CrashPoint{"final_sync.begin", false}, CrashPoint{"final_sync.end", false},
                      CrashPoint{"verify.begin", false}, CrashPoint{"verify.end", false},
                      CrashPoint{"flip.begin", false}, CrashPoint{"flip.end", true}, CrashPoint{"thaw.begin", true},
                      CrashPoint{"thaw.end", true}, CrashPoint{"sweep.begin", true}, CrashPoint{"sweep.end", true},
                      CrashPoint{"quota_recalc.begin", true}, CrashPoint{"quota_recalc.end", true},
                      CrashPoint{"done.begin", true}),
                       ::testing::Values(Backend::kSqlite, Backend::kPostgres)),
    [](const ::testing::TestParamInfo<std::tuple<CrashPoint, Backend>>& info) {
      std::string n = std::get<0>(info.param).at;
      for (auto& ch : n)
        if (ch == '.') ch = '_';
      return n + (std::get<1>(info.param) == Backend::kSqlite ? "_sqlite" : "_postgres");
    });

// kill -9 in the middle of the rollback itself: resume completes it.
TEST(MoveCrashDuringRollback, ResumeFinishesTheRollback) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 60, 22);
  // A kick command that fails makes the move roll back after the freeze.
  const std::string cfg = lab_config("crash_rollback", {{R"(\[freeze\])", "[kick]\nmethod = \"command\"\ncommand = \"/bin/false\"\n[freeze]"}});
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=rollback.begin:kill"});
  ASSERT_EQ(r.rc, 128 + 9) << r.describe();
  EXPECT_THAT(lab.ldap_get(user, "mailAccountStatus").value_or(""), ::testing::StartsWith("frozen;move="));  // the crash left the freeze
  RunResult res = mailshard(cfg, {"resume"});
  ASSERT_EQ(res.rc, 0) << res.describe();
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  EXPECT_TRUE(staging_dirs(lab.home_path("store2", user)).empty());
  EXPECT_EQ(latest_move(cfg, user)["state"], "rolled_back");
}

}  // namespace
}  // namespace mailshard::testing
