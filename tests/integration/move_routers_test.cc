// A move behind each login router the lab runs besides nginx: perdition (LDAP popmap, frozen
// accounts left out and sent to a parking Dovecot that answers NO [UNAVAILABLE]) and a Dovecot
// proxy (LDAP passdbs per store, a Lua passdb refusing frozen accounts). Their configs are
// examples/perdition/ and examples/dovecot-proxy/. While a client keeps logging in through the
// router and mail is delivered, the user moves: logins land on the old store, are refused with
// a temporary error during the freeze (never an authentication failure), then land on the new
// store; no message is lost.
#include <chrono>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

constexpr int kMessages = 100;         // delivered during the move
constexpr int kFilled = 20;            // in the mailbox before it
constexpr int kAfterMoveProbeMs = 2000;  // the prober keeps logging in this long after the move

int total_messages(const nlohmann::json& state) {
  int n = 0;
  for (const auto& [name, f] : state["folders"].items()) n += f.value("messages", 0);
  return n;
}

// One login through ROUTER; returns the prober's record of it.
nlohmann::json login_once(const std::string& user, const std::string& router) {
  RunResult r = Lab::get().run_script("router_probe.py", {"--user", user, "--via", router, "--count", "1"}, 60);
  if (r.rc != 0) throw LabError("router_probe.py: " + r.describe());
  return nlohmann::json::parse(r.out)["attempts"][0];
}

// "until=" value of a freeze whose deadline lies OFFSET_S from now (UTC, the [freeze] format).
std::string frozen_until(int offset_s) {
  std::time_t t = std::time(nullptr) + offset_s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return std::string("frozen;until=") + buf;
}

void set_status(const std::string& user, const std::string& value) {
  Lab& lab = Lab::get();
  ASSERT_EQ(lab.ldap_modify_assert(lab.user_dn(user),
                                   "replace: mailAccountStatus\nmailAccountStatus: " + value + "\n", ""),
            0);
}

void move_behind(const std::string& router) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, kFilled, 90);
  const nlohmann::json before = lab.imap_state(user, router, /*detail=*/true);
  ASSERT_EQ(before["store"], "store1") << router << " routed a store1 account elsewhere";

  // A client logging in through the router all along, and mail delivered to whatever mailHost
  // says (no freeze rule), both from other threads.
  const std::string stop = lab.dir() + "/probe-stop-" + router;
  std::remove(stop.c_str());
  RunResult probe;
  std::thread client([&] {
    probe = lab.run_script("router_probe.py", {"--user", user, "--via", router, "--stop-file", stop, "--interval",
                                               "0.1", "--max-seconds", "120"},
                           180);
  });
  nlohmann::json delivered;
  std::thread mta([&] { delivered = lab.deliver(user, kMessages, "rt-" + router, {"--interval", "0.05"}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // A 20-message final pass is too short for a client logging in every ~0.1 s to meet the
  // freeze reliably: hold it 3 s longer, as a bigger mailbox's final pass would.
  const auto t0 = std::chrono::steady_clock::now();
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=kick.end:run:/bin/sleep 3"});
  const double move_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  mta.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(kAfterMoveProbeMs));
  { std::ofstream(stop) << "stop\n"; }
  client.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  ASSERT_EQ(probe.rc, 0) << probe.describe();
  ASSERT_EQ(delivered["delivered"], kMessages);

  // The client's view: store1, then only temporary refusals, then store2.
  const nlohmann::json attempts = nlohmann::json::parse(probe.out)["attempts"];
  int on_store1 = 0, unavailable = 0, on_store2 = 0;
  double longest_refusal_s = 0;
  std::string phase = "store1";
  for (const auto& a : attempts) {
    const std::string outcome = a["outcome"];
    ASSERT_TRUE(outcome == "ok" || outcome == "unavailable" || outcome == "kicked")
        << router << ": a login during the move was " << a.dump() << " (want only ok, [UNAVAILABLE] or kicked)";
    if (outcome == "kicked") {
      // A session that logged in on store1 just before the freeze, ended by the move's kick.
      EXPECT_NE(phase, "store2") << router << ": a session kicked after the routing reached store2: " << a.dump();
      continue;
    }
    if (outcome == "unavailable") {
      EXPECT_NE(phase, "store2") << router << ": refused after it had routed to store2: " << a.dump();
      phase = "frozen";
      ++unavailable;
      longest_refusal_s = std::max(longest_refusal_s, a["secs"].get<double>());
      continue;
    }
    const std::string store = a["store"];
    if (store == "store1") {
      EXPECT_EQ(phase, "store1") << router << ": back on store1 after the freeze: " << a.dump();
      ++on_store1;
    } else {
      EXPECT_EQ(store, "store2") << a.dump();
      phase = "store2";
      ++on_store2;
    }
  }
  EXPECT_GT(on_store1, 0) << router << ": no login before the freeze";
  EXPECT_GT(unavailable, 0) << router << ": no login met the freeze";
  EXPECT_GT(on_store2, 0) << router << ": no login after the move";
  EXPECT_EQ(attempts.back()["store"], "store2");

  // Nothing lost or doubled, as a client sees it through the router.
  const nlohmann::json after = lab.imap_state(user, router, /*detail=*/true);
  EXPECT_EQ(after["store"], "store2");
  EXPECT_EQ(total_messages(after), total_messages(before) + kMessages);
  auto counts = message_id_counts(after);
  int seen = 0;
  for (const auto& m : delivered["messages"]) seen += counts[m["message_id"].get<std::string>()] == 1;
  EXPECT_EQ(seen, kMessages);
  std::printf("%s: move %.1f s; %zu logins through it: %d on store1, %d refused [UNAVAILABLE] (longest %.1f s), "
              "%d on store2; %d messages delivered during the move (%d via store1), %d lost\n",
              router.c_str(), move_s, attempts.size(), on_store1, unavailable, longest_refusal_s, on_store2,
              kMessages, delivered["stores"].value("store1", 0), seen == kMessages ? 0 : kMessages - seen);
}

TEST(MoveRouters, Perdition) { move_behind("perdition"); }

TEST(MoveRouters, DovecotProxy) { move_behind("dproxy"); }

// A freeze with its deadline in the value ([freeze] until_in_value): the Dovecot proxy's Lua
// passdb lets the user in once the deadline has passed; perdition's LDAP filter cannot compare
// it with the clock and keeps refusing until the freeze guard or resume writes "active".
// (Each refusal costs 2-5 s: Dovecot's auth_failure_delay, perdition's fixed 3 s sleep.)
TEST(MoveRouters, ExpiredFreezeDeadline) {
  const std::string user = Lab::get().add_user("store3");
  set_status(user, frozen_until(600));
  EXPECT_EQ(login_once(user, "dproxy")["outcome"], "unavailable");

  set_status(user, frozen_until(-60));
  nlohmann::json d = login_once(user, "dproxy");
  EXPECT_EQ(d["outcome"], "ok") << d.dump();
  EXPECT_EQ(d["store"], "store3");
  nlohmann::json p = login_once(user, "perdition");
  EXPECT_EQ(p["outcome"], "unavailable") << "perdition cannot compare the deadline; documented as such: " << p.dump();

  set_status(user, "frozen;until=garbage");
  EXPECT_EQ(login_once(user, "dproxy")["outcome"], "unavailable") << "an unparsable deadline stays frozen";
  set_status(user, "active");
  EXPECT_EQ(login_once(user, "dproxy")["store"], "store3");
  EXPECT_EQ(login_once(user, "perdition")["store"], "store3");
  // A wrong password is an authentication failure through both, not a temporary error.
  for (const std::string router : {"dproxy", "perdition"}) {
    RunResult bad = Lab::get().run_script(
        "router_probe.py", {"--user", user, "--via", router, "--count", "1", "--password", "wrong"}, 60);
    ASSERT_EQ(bad.rc, 0) << bad.describe();
    EXPECT_EQ(nlohmann::json::parse(bad.out)["attempts"][0]["outcome"], "authfailed") << router << " " << bad.out;
  }
}

}  // namespace
}  // namespace mailshard::testing
