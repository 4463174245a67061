// Load (issue 13): twenty users move from store1 to store2 at once, each its
// own `mailshard move`, while ten of them receive mail over LMTP the whole
// time (an MTA that ignores the freeze) and five IMAP clients keep changing
// flags through nginx (kicked, refused while frozen, logging in again).
// Every rule holds: every move is done and nobody is frozen; every delivered
// message is there exactly once; UIDVALIDITY and every UID are kept; the
// flags are exactly the last ones each client set; the users nobody touched
// see the same mailbox; and every copy matches its move's manifest.
#include <chrono>
#include <iostream>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kUsers = 20, kReceiving = 10, kFlagging = 5;

// (uid -> flags) of a folder's detail rows.
std::map<int64_t, std::vector<std::string>> flags_by_uid(const nlohmann::json& folder) {
  std::map<int64_t, std::vector<std::string>> out;
  for (const auto& row : folder["detail"]) out[row["uid"].get<int64_t>()] = row["flags"].get<std::vector<std::string>>();
  return out;
}

TEST(MoveLoad, TwentyParallelMovesWhileMailArrivesAndFlagsChange) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  std::vector<std::string> users;
  for (int i = 0; i < kUsers; ++i) {
    users.push_back(lab.add_user("store1"));
    lab.deliver(users.back(), 12, "seed");
  }
  // Users [0, 10) receive mail, [10, 15) are left alone, [15, 20) change flags.
  std::vector<nlohmann::json> before(kUsers);
  for (int i = kReceiving; i < kUsers; ++i) before[i] = lab.imap_state(users[i], "nginx", /*detail=*/true);

  const std::string stop = lab.dir() + "/load-stop";
  lab.run({"sh", "-c", "rm -f " + stop + "*"});
  std::vector<nlohmann::json> delivered(kReceiving);
  std::vector<RunResult> flaggers(kFlagging);
  std::vector<std::thread> background;
  for (int i = 0; i < kReceiving; ++i)
    background.emplace_back([&, i] { delivered[i] = lab.deliver(users[i], 40, "load", {"--interval", "0.1"}); });
  for (int k = 0; k < kFlagging; ++k)
    background.emplace_back([&, k] {
      flaggers[k] = lab.run_script("flag_client.py", {"--user", users[kUsers - kFlagging + k], "--stop-file", stop,
                                                      "--ready-file", stop + "-ready" + std::to_string(k)},
                                   600);
    });
  // Every client is in a session and changing flags before the moves start.
  for (int k = 0; k < kFlagging; ++k) {
    const std::string ready = stop + "-ready" + std::to_string(k);
    for (int tries = 0; tries < 300 && !path_exists(ready); ++tries)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(path_exists(ready)) << "flag client " << k << " never got going";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the deliveries are under way too

  std::vector<RunResult> moves(kUsers);
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::vector<std::thread> movers;
    for (int i = 0; i < kUsers; ++i)
      movers.emplace_back([&, i] { moves[i] = mailshard(cfg, {"move", users[i], "--to", "store2"}, {}, 600); });
    for (auto& t : movers) t.join();
  }
  const double move_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The clients get back in on the destination (a login refused while frozen
  // waits nginx's Auth-Wait, 3 s) and go on a little, then stop.
  std::this_thread::sleep_for(std::chrono::milliseconds(4000));
  lab.run({"touch", stop});
  for (auto& t : background) t.join();
  int to_store1 = 0, stores = 0, logins = 0;
  for (const auto& d : delivered)
    for (const auto& m : d["messages"]) to_store1 += m["store"] == "store1";
  for (const auto& f : flaggers)
    if (f.rc == 0) {
      auto j = nlohmann::json::parse(f.out);
      stores += j["stores"].get<int>();
      logins += j["logins"].get<int>();
    }
  std::cout << "load: " << kUsers << " moves in " << move_s << " s; " << kReceiving * 40 << " deliveries ("
            << to_store1 << " to store1); " << stores << " flag changes over " << logins << " logins\n";

  for (int i = 0; i < kUsers; ++i) {
    SCOPED_TRACE(users[i]);
    EXPECT_EQ(moves[i].rc, 0) << moves[i].describe();
    EXPECT_THAT(moves[i].out, HasSubstr(users[i] + " store1 -> store2: done"));
    EXPECT_EQ(lab.ldap_get(users[i], "mailHost"), "store2");
    EXPECT_EQ(lab.ldap_get(users[i], "mailAccountStatus"), "active");
    EXPECT_EQ(latest_move(cfg, users[i])["state"], "done");
    RunResult v = mailshard(cfg, {"verify", users[i]});
    EXPECT_EQ(v.rc, 0) << v.describe();
    nlohmann::json after = lab.imap_state(users[i], "nginx", /*detail=*/true);
    EXPECT_EQ(after["store"], "store2");
    if (i < kReceiving) {
      // Every message delivered during the moves, exactly once.
      ASSERT_EQ(delivered[i]["delivered"], 40);
      auto counts = message_id_counts(after);
      for (const auto& m : delivered[i]["messages"])
        EXPECT_EQ(counts[m["message_id"].get<std::string>()], 1) << m["message_id"] << " went to " << m["store"];
      EXPECT_EQ(after["folders"]["INBOX"]["messages"], 12 + 40);
    } else if (i < kUsers - kFlagging) {
      expect_same_imap_state(before[i], after);
    } else {
      // Same mailbox, same UIDs; the flags are the last ones the client set.
      const RunResult& fc = flaggers[i - (kUsers - kFlagging)];
      ASSERT_EQ(fc.rc, 0) << fc.describe();
      nlohmann::json client = nlohmann::json::parse(fc.out);
      EXPECT_GT(client["stores"].get<int>(), 20);
      EXPECT_GE(client["ended"].get<int>(), 1) << "the move ended the client's session (the kick)";
      EXPECT_GE(client["logins"].get<int>(), 2) << "and the client got back in";
      const nlohmann::json &b = before[i]["folders"]["INBOX"], &a = after["folders"]["INBOX"];
      EXPECT_EQ(a["uidvalidity"], b["uidvalidity"]);
      EXPECT_EQ(a["uidnext"], b["uidnext"]);
      auto want = flags_by_uid(b);
      for (const auto& [uid, flags] : client["final"].items()) want[std::stoll(uid)] = flags.get<std::vector<std::string>>();
      EXPECT_EQ(flags_by_uid(a), want);
      EXPECT_EQ(message_id_counts(after), message_id_counts(before[i]));
    }
  }
}

}  // namespace
}  // namespace mailshard::testing
