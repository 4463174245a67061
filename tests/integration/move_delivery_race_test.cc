// Deliveries during the whole move go to whatever mailHost says, ignoring the
// freeze (an MTA with no freeze rule). Every delivered message is present
// exactly once at the destination afterwards.
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

}  // namespace
}  // namespace mailshard::testing
