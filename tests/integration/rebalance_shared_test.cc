// Shared nights against the real lab: two `mailshard rebalance --shared`
// controllers on one PostgreSQL journal (the lab's server, a database per
// scenario) run one plan's night together.
//
//  a. Both run to the end: every user of the plan ends once on its
//     destination (one done move each in the journal), never more than the
//     slots' moves out of or into a server at once over both controllers
//     (2 out of store1, 1 into store2 and into store3),
//     both did moves (each is bound to one at a time), both exit 0; a plain
//     rebalance meanwhile is refused.
//  b. One controller is killed (SIGKILL, by a hook at its second flip) mid
//     night; the other finishes: the dead one's flipped move is finished, its
//     other moves rolled back and run again. 0 lost messages, 0 double homes
//     (one done move per user, no staging copy left), 0 users frozen.
//  c. PostgreSQL down at start: one line, exit 1, nothing written.
#include "tests/integration/rebalance_test_util.h"

namespace mailshard::testing {
namespace {

namespace fs = std::filesystem;

using ::testing::HasSubstr;
using namespace rebalance_lab;

// The scenario's journal: a fresh database `db` on the lab's PostgreSQL.
void use_pg_journal(Scenario& s, const std::string& db) {
  Lab& lab = Lab::get();
  const std::string port = lab.env("PG_PORT"), secret = lab.env("PG_PASSWORD_FILE");
  auto psql = [&](const std::string& sql) {
    RunResult r = lab.run({"env", "PGPASSWORD=" + slurp(secret), "psql", "-X", "-q", "-h", "127.0.0.1", "-p", port,
                           "-U", "mailshard", "-d", "mailshard", "-c", sql});
    if (r.rc != 0) throw LabError(sql + ": " + r.describe());
  };
  psql("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
  psql("CREATE DATABASE " + db);
  const std::string text = slurp(s.cfg);
  const std::string from = "path = \"" + s.dir + "/journal.sqlite\"";
  const auto at = text.find(from);
  if (at == std::string::npos) throw LabError(s.cfg + ": no journal path to replace");
  std::string edited = text;
  edited.replace(at, from.size(),
                 "url = \"postgresql://mailshard@127.0.0.1:" + port + "/" + db + "\"\npassword_file = \"" + secret + "\"");
  std::ofstream(s.cfg) << edited;
}

// What both scenarios end with: each planned user once on its destination
// with all its mail, the others untouched, nobody frozen, nothing active.
void expect_night_done(const Scenario& s, const std::map<std::string, std::string>& planned, int messages) {
  Lab& lab = Lab::get();
  std::map<std::string, int> done;
  for (const auto& m : journal_moves(s)) done[m["user"].get<std::string>()] += m["state"] == "done";
  for (const auto& u : s.users) {
    SCOPED_TRACE(u);
    auto it = planned.find(u);
    const std::string store = it == planned.end() ? "store1" : it->second;
    EXPECT_EQ(lab.ldap_get(u, "mailHost"), store);
    EXPECT_EQ(done[u], it == planned.end() ? 0 : 1) << "done moves of the user";
    if (it == planned.end()) continue;
    // No second copy in the making anywhere: no staging directory left.
    for (const char* st : {"store1", "store2", "store3"}) {
      const std::string home = fs::path(lab.maildir_path(st, u)).parent_path().string();
      EXPECT_TRUE(staging_dirs(home).empty()) << st;
    }
    nlohmann::json state = lab.imap_state(u, "nginx");
    EXPECT_EQ(state["store"], store);
    EXPECT_EQ(state["folders"]["INBOX"]["messages"], messages);
  }
  expect_settled(s);
}

TEST(RebalanceShared, TwoControllersRunOneNightTogether) {
  // 2 out slots on store1 (the source of every move), 1 in slot on store2
  // and on store3: with each controller at one move at a time, the in slots
  // bind whenever both pick the same destination.
  Scenario s = make_scenario("rebalance_shared_a", 76000, 30, 5, 2, 1, "");
  use_pg_journal(s, "rebalance_shared_a");
  nlohmann::json plan = make_plan(s);
  ASSERT_EQ(plan["moves"].size(), 20u);
  const auto planned = planned_moves(plan);
  // Each controller runs one move at a time (--max-parallel 1: its own
  // bound), store1 has 2 out slots: so both controllers have work.
  const std::vector<std::string> args = {"--json",           "rebalance", "--shared", "--max-parallel", "1",
                                         "--plan",           s.dir + "/plan.json"};
  Background a(s.cfg, args, s.dir + "/a");
  Background b(s.cfg, args, s.dir + "/b");
  ASSERT_TRUE(poll_journal(s, 120, [](const nlohmann::json& m) { return count_state(m, "done") >= 1; }))
      << a.err() << b.err();
  // A plain rebalance cannot run beside a shared night.
  RunResult plain = mailshard(s.cfg, {"rebalance", "--plan", s.dir + "/plan.json"});
  EXPECT_EQ(plain.rc, 1) << plain.describe();
  EXPECT_THAT(plain.err, HasSubstr("another rebalance is running: pid ")) << plain.describe();
  const int rca = a.wait(300), rcb = b.wait(300);
  ASSERT_EQ(rca, 0) << a.err();
  ASSERT_EQ(rcb, 0) << b.err();
  nlohmann::json ra = summary_json(a.out(), a.err()), rb = summary_json(b.out(), b.err());
  std::cout << "rebalance_shared_a: controller a did " << ra["done"] << ", b did " << rb["done"] << "; a "
            << ra["seconds"] << " s, b " << rb["seconds"] << " s\n";
  EXPECT_EQ(ra["done"].get<int>() + rb["done"].get<int>(), 20);
  EXPECT_GT(ra["done"].get<int>(), 0);
  EXPECT_GT(rb["done"].get<int>(), 0);
  for (const auto* r : {&ra, &rb}) {
    EXPECT_EQ((*r)["done"].get<int>() + (*r)["elsewhere_done"].get<int>(), 20) << r->dump().substr(0, 2000);
    EXPECT_EQ((*r)["failed"], 0);
    EXPECT_EQ((*r)["not_started"], 0);
  }
  // The slots hold over both controllers together: from the journal's
  // times of every move (its claim to its end, inside the time it counted
  // against the slots), rolled back ones included.
  const nlohmann::json moves = journal_moves(s);
  for (const auto& [server, n] : peak_concurrency(moves, "from")) EXPECT_LE(n, 2) << "moves out of " << server;
  for (const auto& [server, n] : peak_concurrency(moves, "to")) EXPECT_LE(n, 1) << "moves into " << server;
  expect_night_done(s, planned, 5);
}

TEST(RebalanceShared, AControllerKilledMidNightIsFinishedByTheOther) {
  Lab& lab = Lab::get();
  Scenario s = make_scenario("rebalance_shared_b", 77000, 30, 5, 2, 2, "");
  use_pg_journal(s, "rebalance_shared_b");
  nlohmann::json plan = make_plan(s);
  ASSERT_EQ(plan["moves"].size(), 20u);
  const auto planned = planned_moves(plan);
  // Run by controller a after each flip (MAILSHARD_TEST_AT): at its second,
  // SIGKILL to a (the hook's parent). That move has flipped but not thawed:
  // its user is frozen until someone finishes the move.
  const std::string hook = s.dir + "/kill-at-second-flip.sh", count = s.dir + "/flips";
  std::ofstream(hook) << "#!/bin/sh\necho x >> " << count << "\n[ $(wc -l < " << count
                      << ") -ge 2 ] && kill -9 $PPID\nexit 0\n";
  lab.run({"chmod", "755", hook});
  const std::vector<std::string> args = {"--json", "rebalance", "--shared", "--plan", s.dir + "/plan.json"};
  Background a(s.cfg, args, s.dir + "/a", {"MAILSHARD_TEST_AT=flip.end:run:" + hook});
  // b joins once a has moves running, so a surely gets to its second flip.
  ASSERT_TRUE(poll_journal(s, 120, [](const nlohmann::json& m) { return m.size() >= 2; })) << a.err();
  Background b(s.cfg, args, s.dir + "/b");
  const int rca = a.wait(300);
  ASSERT_EQ(rca, 128 + SIGKILL) << "controller a was not killed: " << a.err();
  const int rcb = b.wait(300);
  ASSERT_EQ(rcb, 0) << b.err();
  nlohmann::json rb = summary_json(b.out(), b.err());
  std::cout << "rebalance_shared_b: the survivor did " << rb["done"] << " moves, " << rb["elsewhere_done"]
            << " were done by the killed one, it took over " << rb["taken_over"] << "\n";
  EXPECT_EQ(rb["done"].get<int>() + rb["elsewhere_done"].get<int>(), 20) << rb.dump().substr(0, 3000);
  EXPECT_GE(rb["taken_over"].get<int>(), 1) << "the flipped move of the killed controller";
  EXPECT_EQ(rb["failed"], 0);
  expect_night_done(s, planned, 5);
}

TEST(RebalanceShared, PostgresqlDownAtStartIsOneLine) {
  Scenario s = make_scenario("rebalance_shared_c", 78000, 3, 1, 2, 2, "");
  // A port nothing listens on (the lab's PostgreSQL port + 1 is unused).
  const std::string port = std::to_string(std::stoi(Lab::get().env("PG_PORT")) + 1);
  std::string text = slurp(s.cfg);
  const std::string from = "path = \"" + s.dir + "/journal.sqlite\"";
  text.replace(text.find(from), from.size(),
               "url = \"postgresql://mailshard@127.0.0.1:" + port + "/nowhere\"\npassword_file = \"" +
                   Lab::get().env("PG_PASSWORD_FILE") + "\"");
  std::ofstream(s.cfg) << text;
  std::ofstream(s.dir + "/plan.json") << "{}";
  RunResult r = mailshard(s.cfg, {"rebalance", "--shared", "--plan", "latest"});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("mailshard: journal postgresql://127.0.0.1:" + port + "/nowhere: connect: "));
}

}  // namespace
}  // namespace mailshard::testing
