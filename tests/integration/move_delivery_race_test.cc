// Deliveries during the whole move go to whatever mailHost says, ignoring the
// freeze (an MTA with no freeze rule). Every delivered message is present
// exactly once at the destination afterwards.
#include <cstdio>
#include <fstream>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

TEST(MoveDeliveryRace, EveryMessageArrivesExactlyOnce) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 1500, 5);

  // A steady stream of deliveries for the whole move, from another thread.
  nlohmann::json delivered;
  std::thread mta([&] { delivered = lab.deliver(user, 150, "race", {"--interval", "0.01"}); });
  // Let the stream start, then move while it runs; also disturb the move
  // right before its final pass with a burst that lands on the source.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string burst = "run:/usr/bin/python3 " + lab.env("LAB_SCRIPTS") + "/deliver.py --lab " + lab.dir() +
                      " --user " + user + " --count 5 --tag burst";
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=kick.end:" + burst});
  mta.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  ASSERT_EQ(delivered["delivered"], 150);
  // Deliveries that raced past the flip to the source were swept by the
  // move, including one routed just before the flip that landed after the
  // first sweep (the settle round, [move] sweep_settle). Nothing else sweeps
  // here: every message must already be at the destination.
  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  auto counts = message_id_counts(after);
  int seen = 0;
  for (const auto& m : delivered["messages"]) {
    std::string id = m["message_id"];
    EXPECT_EQ(counts[id], 1) << id << " delivered to " << m["store"];
    seen += counts[id] == 1;
  }
  EXPECT_EQ(seen, 150);
  int burst_seen = 0;
  for (const auto& [id, n] : counts)
    if (id.find("mlab.burst.") != std::string::npos) {
      EXPECT_EQ(n, 1) << id;
      ++burst_seen;
    }
  EXPECT_EQ(burst_seen, 5);
  // Some deliveries really did go to the source during the move.
  EXPECT_GT(delivered["stores"].value("store1", 0), 0);
}

// Mail that reaches the old home after the final pass and is read and
// flagged there (a session that raced the freeze, an MDA that sets flags)
// arrives on the destination with its flags and its INTERNALDATE, not as a
// new unread message.
TEST(MoveDeliveryRace, LateMailFlaggedOnTheOldHomeKeepsItsFlagsAndDate) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 40, 9);
  const std::string src = lab.home_path("store1", user);
  // After verify (the final pass is over; the user is frozen, mailHost still
  // store1): one delivery to store1, flagged \Seen \Flagged there, and its
  // file's mtime (Dovecot's INTERNALDATE) set to a known instant in the past.
  const std::string script = lab.dir() + "/late-flagged-" + std::to_string(::getpid()) + ".sh";
  std::ofstream(script) << "set -e\n"
                        << "/usr/bin/python3 " << lab.env("LAB_SCRIPTS") << "/deliver.py --lab " << lab.dir()
                        << " --user " << user << " --count 1 --tag lateflag >/dev/null\n"
                        << lab.dir() << "/bin/doveadm-store1 flags add -u " << user
                        << " '\\Seen \\Flagged' mailbox INBOX header Message-ID mlab.lateflag\n"
                        << "f=$(grep -rl mlab.lateflag " << src << "/Maildir/cur " << src << "/Maildir/new)\n"
                        << "case \"$f\" in *:2,FS) ;; *) echo \"not flagged on store1: $f\" >&2; exit 1;; esac\n"
                        << "touch -m -d @1700049600 \"$f\"\n";  // 2023-11-15 12:00:00 UTC
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=verify.end:run:/bin/sh " + script});
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.err, ::testing::Not(::testing::HasSubstr("MAILSHARD_TEST_AT command failed"))) << r.err;
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["detail"]["swept"], 1) << m.dump();

  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  int found = 0;
  for (const auto& row : after["folders"]["INBOX"]["detail"]) {
    if (row["message_id"].get<std::string>().find("mlab.lateflag.") == std::string::npos) continue;
    ++found;
    EXPECT_EQ(row["flags"], nlohmann::json::array({"\\Flagged", "\\Seen"})) << row.dump();
    // Dovecot prints INTERNALDATE in the server's zone: the day is the same
    // in any zone within 12 hours of UTC.
    EXPECT_THAT(row["internaldate"].get<std::string>(), ::testing::StartsWith("15-Nov-2023")) << row.dump();
  }
  EXPECT_EQ(found, 1);
  // The destination has it in cur/ with its flags, never in new/.
  const std::string dst = lab.home_path("store2", user);
  RunResult g = lab.run({"grep", "-rl", "mlab.lateflag", dst + "/Maildir/cur", dst + "/Maildir/new"});
  EXPECT_THAT(g.out, ::testing::HasSubstr("/Maildir/cur/")) << g.describe();
  EXPECT_THAT(g.out, ::testing::HasSubstr(":2,FS")) << g.describe();
  std::remove(script.c_str());
}

}  // namespace
}  // namespace mailshard::testing
