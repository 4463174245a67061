// The nightly job against the real lab: `mailshard rebalance --plan FILE`
// runs a plan's moves through the executor (slots, stops, failing servers).
// Each scenario has its own block of users (its [ldap] filter sees only
// them), its own journal (so the run lease, `status` and `resume` see only
// its moves) and capacity_bytes small enough that the planner balances by
// mailbox bytes. [rebalance] max_load_per_cpu is 1000 so the CI machine's own
// load never backs these runs off (the back-off has its own benchmark).
//
//  a. 60 moves over three stores, 2 out slots per server, while 5 moving
//     users receive mail: all done, every message once, never more than 2
//     moves out of (or into) a server at once. One worker thread
//     ([rebalance] threads = 1) carries both moves of store1's slots, a step
//     at a time.
//  b. SIGTERM once, mid-run: running moves finish, the rest do not start
//     (exit 130); a second rebalance meanwhile is refused, naming the holder.
//  c. A destination becomes unreachable mid-run: its moves fail, then are
//     skipped once it failed max_server_failures times; the others go on.
//  d. `rebalance --stop` from another process: no more moves start.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>

#include "tests/integration/rebalance_test_util.h"

namespace mailshard::testing {
namespace {

namespace fs = std::filesystem;

using ::testing::HasSubstr;
using namespace rebalance_lab;

TEST(Rebalance, SixtyMovesOverThreeStoresWithinTheirSlotsWhileMailArrives) {
  Lab& lab = Lab::get();
  // 90 users of ~400 kB on store1; balanced by bytes, 30 stay and 60 move.
  Scenario s = make_scenario("rebalance_a", 71000, 90, 20, 2, 2, "threads = 1\n");
  nlohmann::json plan = make_plan(s);
  ASSERT_EQ(plan["moves"].size(), 60u) << plan.dump(1).substr(0, 3000);
  const auto planned = planned_moves(plan);

  // Five moving users, spread over the first half of the plan (moves start
  // in plan order), receive mail from before the run until after they moved.
  std::vector<std::string> receivers;
  for (size_t i : {1, 6, 12, 18, 24}) receivers.push_back(plan["moves"][i]["user"].get<std::string>());
  std::vector<nlohmann::json> delivered(receivers.size());
  std::vector<std::thread> deliveries;
  for (size_t k = 0; k < receivers.size(); ++k)
    deliveries.emplace_back([&, k] { delivered[k] = lab.deliver(receivers[k], 60, "live", {"--interval", "0.7"}); });
  // The night starts once each receiver has mail from before it: on a loaded
  // machine the first moves can otherwise finish before the first delivery.
  for (const auto& u : receivers) {
    const fs::path fresh = fs::path(lab.maildir_path("store1", u)) / "new";
    const auto until = Clock::now() + std::chrono::seconds(60);
    auto live = [&] {
      int n = 0;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(fresh, ec)) {
        std::ifstream in(e.path());
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        n += text.find("X-Mlab-Tag: live") != std::string::npos;
      }
      return n;
    };
    while (live() == 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_GT(live(), 0) << u << ": no delivery arrived within 60 s";
  }

  const auto t0 = Clock::now();
  RunResult r = mailshard(s.cfg, {"--json", "rebalance", "--plan", s.dir + "/plan.json"}, {}, 600);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& t : deliveries) t.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  nlohmann::json rep = nlohmann::json::parse(r.out);
  EXPECT_EQ(rep["done"], 60);
  EXPECT_EQ(rep["failed"], 0);
  EXPECT_EQ(rep["skipped"], 0);
  EXPECT_EQ(rep["not_started"], 0);
  ASSERT_EQ(rep["moves"].size(), 60u);
  std::cout << "rebalance_a: 60 moves in " << wall << " s (schedule bound " << rep["schedule_bound_seconds"]
            << " s)\n";

  for (const auto& u : s.users) {
    auto it = planned.find(u);
    EXPECT_EQ(lab.ldap_get(u, "mailHost"), it == planned.end() ? "store1" : it->second) << u;
  }
  // Every message delivered during the run is there exactly once.
  for (size_t k = 0; k < receivers.size(); ++k) {
    SCOPED_TRACE(receivers[k]);
    ASSERT_EQ(delivered[k]["delivered"], 60);
    nlohmann::json state = lab.imap_state(receivers[k], "nginx", /*detail=*/true);
    EXPECT_EQ(state["store"], planned.at(receivers[k]));
    auto counts = message_id_counts(state);
    for (const auto& m : delivered[k]["messages"])
      EXPECT_EQ(counts[m["message_id"].get<std::string>()], 1) << m["message_id"] << " went to " << m["store"];
    EXPECT_EQ(state["folders"]["INBOX"]["messages"], 20 + 60);
    int stores = 0;
    for (const auto& [store, n] : delivered[k]["stores"].items()) stores += n.get<int>() > 0;
    EXPECT_EQ(stores, 2) << "the mail arrived before and after the user's move: " << delivered[k]["stores"];
  }
  // Never more than 2 moves out of, or into, a server at once; store1 (the
  // source of every move) did use both of its out slots.
  auto out = peak_concurrency(rep["moves"], "from");
  auto in = peak_concurrency(rep["moves"], "to");
  for (const auto& [server, n] : out) EXPECT_LE(n, 2) << "moves out of " << server;
  for (const auto& [server, n] : in) EXPECT_LE(n, 2) << "moves into " << server;
  EXPECT_EQ(out["store1"], 2) << "two moves in flight at once on the one worker thread";
  EXPECT_EQ(rep["peak_in_flight"], 2);
  expect_settled(s);
}

TEST(Rebalance, SigtermStopsStartingMovesAndASecondRunIsRefused) {
  Lab& lab = Lab::get();
  Scenario s = make_scenario("rebalance_b", 72000, 30, 20, 2, 2, "");
  nlohmann::json plan = make_plan(s);
  ASSERT_EQ(plan["moves"].size(), 20u);
  const auto planned = planned_moves(plan);
  std::map<std::string, nlohmann::json> before;
  for (const auto& [u, to] : planned) before[u] = lab.imap_state(u, "nginx", /*detail=*/true);

  Background run(s.cfg, {"--json", "rebalance", "--plan", s.dir + "/plan.json"}, s.dir + "/run");
  ASSERT_TRUE(poll_journal(s, 120, [](const nlohmann::json& m) { return count_state(m, "done") >= 2; }))
      << run.err();
  // One run at a time: the second says who holds the lease.
  RunResult second = mailshard(s.cfg, {"rebalance", "--plan", s.dir + "/plan.json"});
  EXPECT_EQ(second.rc, 1) << second.describe();
  EXPECT_THAT(second.err, HasSubstr("another rebalance is running: pid " + std::to_string(run.pid()) + " on host"));
  run.signal(SIGTERM);
  const int rc = run.wait(180);
  ASSERT_EQ(rc, 130) << run.err();
  nlohmann::json rep = summary_json(run.out(), run.err());
  EXPECT_GE(rep["done"].get<int>(), 2);
  EXPECT_GT(rep["not_started"].get<int>(), 0);
  EXPECT_EQ(rep["failed"], 0);
  EXPECT_EQ(rep["deadline_reached"], true);
  EXPECT_EQ(rep["hard_stopped"], false);
  std::cout << "rebalance_b: " << rep["done"] << " done, " << rep["not_started"] << " not started; stop reason "
            << rep["stop_reason"] << "\n";

  expect_settled(s);
  int not_started = 0;
  for (const auto& m : rep["moves"]) {
    const std::string u = m["user"];
    SCOPED_TRACE(u);
    if (m["result"] == "done") {
      EXPECT_EQ(lab.ldap_get(u, "mailHost"), planned.at(u));
    } else {
      EXPECT_EQ(m["result"], "not_started") << m.dump();
      ++not_started;
      EXPECT_EQ(lab.ldap_get(u, "mailHost"), "store1");
      nlohmann::json after = lab.imap_state(u, "nginx", /*detail=*/true);
      EXPECT_EQ(after["store"], "store1");
      expect_same_imap_state(before[u], after);
    }
  }
  EXPECT_EQ(not_started, rep["not_started"].get<int>());
}

TEST(Rebalance, AnUnreachableDestinationIsSkippedAndTheOthersGoOn) {
  Lab& lab = Lab::get();
  const std::string dir = lab.dir() + "/rebalance_c";
  // store3 is reached through the agent transport, as over ssh in
  // production: while DOWN exists its command fails the way ssh to a dead
  // host does (exit 255, nothing on stdout), and the agents that were
  // running are killed, as a dropped network drops their sessions. (The
  // local transport cannot lose a server: it keeps the mail root open, so
  // renaming it aside moves the writes with it; and no step of a move talks
  // to the destination's Dovecot, so stopping that would go unnoticed.)
  const std::string down = dir + "-down", pids = dir + "-agents", agent = dir + "-agent.sh", hook = dir + "-hook.sh";
  struct Restore {
    std::string down;
    ~Restore() { Lab::get().run({"rm", "-f", down}); }
  } restore{down};
  lab.run({"rm", "-f", down, pids});
  const std::string root3 = lab.store_env("store3", "MAIL_ROOT");
  std::ofstream(agent) << "#!/bin/sh\n[ -e " << down
                       << " ] && { echo 'ssh: connect to host store3 port 22: Connection refused' >&2; exit 255; }\n"
                       << "echo $$ >> " << pids << "\nexec " << mailshard_bin() << " agent --stdio --root " << root3
                       << "\n";
  // Run by the mover at the end of each move (MAILSHARD_TEST_AT): once a user
  // of this block is on store3, store3 goes down. With one slot out of
  // store1, the source of every move, nothing else runs at that moment.
  std::ofstream(hook) << "#!/bin/sh\n[ -e " << down << " ] && exit 0\nls " << root3
                      << "/example.org 2>/dev/null | grep -q '^user73' || exit 0\ntouch " << down
                      << "\nfor p in $(cat " << pids << "); do kill -9 $p 2>/dev/null; done\nexit 0\n";
  lab.run({"chmod", "755", agent, hook});

  Scenario s = make_scenario("rebalance_c", 73000, 30, 20, 1, 1, "max_server_failures = 3\n");
  // Planned with the local transport (the agent transport cannot size
  // mailboxes for the inventory); run with store3 behind the agent.
  nlohmann::json plan = make_plan(s);
  s.cfg = s.dir + "/agent.toml";
  std::ofstream(s.cfg) << std::regex_replace(
      slurp(lab.dir() + "/rebalance_c.toml"),
      std::regex("(mail_root = \"" + root3 + "\"[^\\n]*\\n(?:[^\\n]*\\n)*?)transport = \"local\""),
      "$1transport = \"agent\"\nagent_command = \"" + agent + "\"");
  ASSERT_THAT(slurp(s.cfg), HasSubstr("agent_command = \"" + agent + "\""));
  ASSERT_EQ(plan["moves"].size(), 20u);
  const auto planned = planned_moves(plan);
  int to3 = 0;
  for (const auto& [u, to] : planned) to3 += to == "store3";
  ASSERT_GE(to3, 5) << "the plan must send several users to store3";
  std::map<std::string, nlohmann::json> before;
  for (const auto& [u, to] : planned) before[u] = lab.imap_state(u, "nginx", /*detail=*/true);

  RunResult r = mailshard(s.cfg, {"--json", "rebalance", "--plan", s.dir + "/plan.json"},
                          {"MAILSHARD_TEST_AT=done.end:run:" + hook}, 600);
  ASSERT_TRUE(path_exists(down)) << "store3 never went down: " << r.describe();
  ASSERT_EQ(r.rc, 1) << r.describe();
  nlohmann::json rep = summary_json(r.out, r.err);
  int done3 = 0, failed3 = 0, skipped3 = 0;
  for (const auto& m : rep["moves"]) {
    const std::string u = m["user"], result = m["result"], reason = m["reason"];
    SCOPED_TRACE(m.dump());
    if (m["to"] == "store2") {
      EXPECT_EQ(result, "done");
    } else {
      if (result == "done") ++done3;
      if (result == "failed") {
        ++failed3;
        EXPECT_THAT(reason, HasSubstr("store3"));
      }
      if (result == "skipped") {
        ++skipped3;
        EXPECT_THAT(reason, HasSubstr("server store3 failed 3 moves"));
      }
    }
    const std::string host = lab.ldap_get(u, "mailHost").value_or("");
    if (result == "done") {
      EXPECT_EQ(host, planned.at(u));
    } else {
      EXPECT_EQ(host, "store1");
      nlohmann::json after = lab.imap_state(u, "nginx", /*detail=*/true);
      EXPECT_EQ(after["store"], "store1");
      expect_same_imap_state(before[u], after);
    }
  }
  std::cout << "rebalance_c: store3 " << done3 << " done, " << failed3 << " failed, " << skipped3 << " skipped\n";
  EXPECT_EQ(done3, 1);
  EXPECT_EQ(failed3, 3);
  EXPECT_EQ(skipped3, to3 - 4);
  for (const auto& srv : rep["servers"])
    EXPECT_EQ(srv["skipped"], srv["name"] == "store3") << srv.dump();
  expect_settled(s);
}

TEST(Rebalance, StopFromAnotherProcessStartsNoMoreMoves) {
  Lab& lab = Lab::get();
  Scenario s = make_scenario("rebalance_d", 74000, 12, 20, 1, 1, "");
  nlohmann::json plan = make_plan(s);
  ASSERT_EQ(plan["moves"].size(), 8u);
  Background run(s.cfg, {"--json", "rebalance", "--plan", s.dir + "/plan.json"}, s.dir + "/run");
  ASSERT_TRUE(poll_journal(s, 120, [](const nlohmann::json& m) { return count_state(m, "done") >= 1; }))
      << run.err();
  RunResult stop = mailshard(s.cfg, {"rebalance", "--stop"});
  EXPECT_EQ(stop.rc, 0) << stop.describe();
  EXPECT_THAT(stop.out, HasSubstr("to start no more moves"));
  const int rc = run.wait(180);
  EXPECT_EQ(rc, 1) << run.err();
  nlohmann::json rep = summary_json(run.out(), run.err());
  EXPECT_GE(rep["done"].get<int>(), 1);
  EXPECT_GT(rep["not_started"].get<int>(), 0);
  EXPECT_EQ(rep["failed"], 0);
  EXPECT_EQ(rep["deadline_reached"], true);
  for (const auto& m : rep["moves"]) {
    if (m["result"] != "done") {
      EXPECT_EQ(lab.ldap_get(m["user"].get<std::string>(), "mailHost"), "store1");
    }
  }
  expect_settled(s);
  // Once the run has ended, --stop finds nothing to stop.
  RunResult again = mailshard(s.cfg, {"rebalance", "--stop"});
  EXPECT_EQ(again.rc, 1) << again.describe();
  EXPECT_THAT(again.err, HasSubstr("no rebalance is running"));
}

}  // namespace
}  // namespace mailshard::testing
