// An IMAP session opened through nginx before the move is kicked, and the next
// login lands on the destination.
#include <fstream>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(MoveLiveSession, OpenSessionIsKickedAndNextLoginLandsOnDestination) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 100, 9);
  const std::string out = lab.dir() + "/hold_session_" + std::to_string(::getpid()) + ".out";
  std::string cmd = "/usr/bin/python3 " + lab.env("LAB_SCRIPTS") + "/hold_session.py --lab " + lab.dir() +
                    " --user " + user + " --max 60 > " + out + " 2>&1; echo rc=$? >> " + out;
  std::thread holder([&] { lab.run({"sh", "-c", cmd}, {}, 90); });
  for (int i = 0; i < 100 && slurp(out).find("ready") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_NE(slurp(out).find("ready store=store1"), std::string::npos) << slurp(out);

  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  holder.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  std::string held = slurp(out);
  EXPECT_NE(held.find("ended after"), std::string::npos) << held;
  EXPECT_NE(held.find("rc=0"), std::string::npos) << held;
  EXPECT_EQ(lab.imap_state(user)["store"], "store2");
}

}  // namespace
}  // namespace mailshard::testing
