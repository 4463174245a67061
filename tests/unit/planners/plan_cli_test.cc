// `mailshard plan` end to end: the real binary on small snapshot folders.
// Exit codes, the exact one-line errors for bad input, the outputs, the
// journal copy and determinism.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/plan.h"
#include "journal/sqlite_journal.h"
#include "util/fs.h"
#include "util/subprocess.h"

namespace mailshard {
namespace {

const char* kServers =
    "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n"
    "0,std,1000,0,16.0,0\n"
    "1,std,1000,0,16.0,0\n"
    "2,std,1000,0,16.0,0\n";

// The fleet of GoldenPlan.ShedsToTheEmptyServer (golden_plan_test.cc).
const char* kUsers =
    "user_id,server_id,class,size_bytes,activity,pinned\n"
    "0,0,std,300,0.0,0\n1,0,std,200,0.0,0\n2,0,std,150,0.0,0\n3,0,std,100,0.0,0\n"
    "4,1,std,100,0.0,0\n5,1,std,100,0.0,0\n6,1,std,100,0.0,0\n7,1,std,100,0.0,0\n8,1,std,100,0.0,0\n9,1,std,100,0.0,0\n"
    "10,2,std,50,0.0,0\n";

std::string dir_with(const std::string& name, const std::string& servers, const std::string& users) {
  std::string d = ::testing::TempDir() + "/plan_cli_" + name;
  EXPECT_TRUE(make_dirs(d).ok());
  EXPECT_TRUE(write_file_atomic(d + "/servers.csv", servers).ok());
  EXPECT_TRUE(write_file_atomic(d + "/users.csv", users).ok());
  ::unlink((d + "/meta.json").c_str());
  return d;
}

// Runs the binary without any config in the environment.
ProcessResult run(std::vector<std::string> args) {
  args.insert(args.begin(), {"env", "-u", "MAILSHARD_CONFIG", MAILSHARD_BIN});
  auto r = run_process(args, "", 60'000);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : ProcessResult{};
}

bool default_config_exists() { return ::access("/etc/mailshard/mailshard.toml", F_OK) == 0; }

TEST(PlanCli, WithoutSnapshotNeedsAConfigForTheLiveFleet) {
  if (default_config_exists()) GTEST_SKIP() << "/etc/mailshard/mailshard.toml exists on this machine";
  auto r = run({"plan"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "mailshard: cannot read config: cannot read '/etc/mailshard/mailshard.toml': No such file or directory "
            "(give one with -c FILE or MAILSHARD_CONFIG)\n");
}

TEST(PlanCli, SnapshotWorksWithoutConfigAndWritesEveryOutput) {
  if (default_config_exists()) GTEST_SKIP() << "/etc/mailshard/mailshard.toml exists on this machine";
  std::string d = dir_with("ok", kServers, kUsers);
  auto r = run({"--json", "plan", "--snapshot", d, "--csv", d + "/plan.csv", "--output", d + "/plan.json", "--report",
                d + "/report.md", "--replan-check"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("not stored in the journal: no config file"), std::string::npos) << r.err;
  auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["moves"], 3);
  EXPECT_EQ(summary["bytes"], 400);
  EXPECT_EQ(summary["partial"], false);
  EXPECT_EQ(summary["replan_moves"], 0);
  EXPECT_EQ(*read_file(d + "/plan.csv"),
            "user_id,from_server,to_server,size_bytes\n1,0,2,200\n3,0,2,100\n4,1,2,100\n");
  // The plan file parses back to the plan whose hash the summary names.
  auto text = read_file(d + "/plan.json");
  ASSERT_TRUE(text.ok());
  auto back = plan_from_json(*text);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(plan_hash(*back), summary["plan_hash"].get<std::string>());
  EXPECT_EQ(nlohmann::json::parse(*text)["plan_hash"], summary["plan_hash"]);
  auto md = read_file(d + "/report.md");
  ASSERT_TRUE(md.ok());
  EXPECT_NE(md->find("## Against the lower bounds"), std::string::npos);
  EXPECT_NE(md->find("| bytes moved | 400 B | 366 B | 1.093 |"), std::string::npos) << *md;
}

TEST(PlanCli, SameSnapshotSameHash) {
  std::string d = dir_with("det", kServers, kUsers);
  auto a = run({"--json", "plan", "--snapshot", d, "--no-journal"});
  auto b = run({"--json", "plan", "--snapshot", d, "--no-journal"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(nlohmann::json::parse(a.out)["plan_hash"], nlohmann::json::parse(b.out)["plan_hash"]);
  EXPECT_NE(a.err.find("not stored in the journal (--no-journal)"), std::string::npos);
}

TEST(PlanCli, StoresThePlanInTheJournalUnderItsHash) {
  std::string d = dir_with("journal", kServers, kUsers);
  std::string secret = d + "/ldap.secret";
  ASSERT_TRUE(write_file_atomic(secret, "x\n", 0600).ok());
  std::string cfg = d + "/mailshard.toml";
  ASSERT_TRUE(write_file_atomic(cfg, "[journal]\npath = \"" + d + "/journal.sqlite\"\n[ldap]\nuri = \"ldap://127.0.0.1:1\"\n"
                                     "bind_dn = \"cn=a\"\nbind_password_file = \"" + secret + "\"\nbase_dn = \"dc=x\"\n"
                                     "[[server]]\nname = \"a\"\nmail_root = \"/srv/a\"\n[plan]\nband = 0.05\n"
                                     "[move]\nheadroom = 0\n").ok());
  ::unlink((d + "/journal.sqlite").c_str());
  auto r = run({"-c", cfg, "--json", "plan", "--snapshot", d, "--output", d + "/plan.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string hash = nlohmann::json::parse(r.out)["plan_hash"];
  SystemClock clock;
  auto j = SqliteJournal::open(d + "/journal.sqlite", clock);
  ASSERT_TRUE(j.ok()) << j.error().message();
  auto rec = (*j)->find_plan(hash);
  ASSERT_TRUE(rec.ok()) << rec.error().message();
  EXPECT_EQ(rec->status, "planned");
  EXPECT_EQ(rec->strategy, "balance");
  // The journal holds the canonical text: executing "exactly this plan" is
  // re-hashing it.
  auto stored = plan_from_json(rec->plan_json);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(plan_hash(*stored), hash);
  EXPECT_EQ(plan_to_json(*stored), rec->plan_json);
}

TEST(PlanCli, ConfigBandIsTheDefaultAndTheFlagWins) {
  std::string d = dir_with("band", kServers, kUsers);
  std::string secret = d + "/ldap.secret";
  ASSERT_TRUE(write_file_atomic(secret, "x\n", 0600).ok());
  std::string cfg = d + "/mailshard.toml";
  ASSERT_TRUE(write_file_atomic(cfg, "[ldap]\nuri = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=a\"\nbind_password_file = \"" +
                                     secret + "\"\nbase_dn = \"dc=x\"\n[[server]]\nname = \"a\"\nmail_root = \"/srv/a\"\n"
                                     "[plan]\nband = 0.3\n[move]\nheadroom = 0\n").ok());
  auto wide = run({"-c", cfg, "plan", "--snapshot", d, "--no-journal", "--output", d + "/wide.json"});
  ASSERT_EQ(wide.exit_code, 0) << wide.err;
  auto p = nlohmann::json::parse(*read_file(d + "/wide.json"));
  EXPECT_EQ(p["constraints"]["band"], 0.3);
  // Only s2 (5 %) is outside mean +- 30 pp: every move fills it.
  ASSERT_FALSE(p["moves"].empty());
  for (const auto& m : p["moves"]) EXPECT_EQ(m["to"], 2);
  auto narrow = run({"-c", cfg, "plan", "--snapshot", d, "--no-journal", "--band", "0.05", "--output", d + "/n.json"});
  ASSERT_EQ(narrow.exit_code, 0) << narrow.err;
  EXPECT_EQ(nlohmann::json::parse(*read_file(d + "/n.json"))["constraints"]["band"], 0.05);
}

// Bad input: one line naming the file, the line and what is wrong; exit 2.
TEST(PlanCli, MissingColumnIsExact) {
  std::string d = dir_with("missing", kServers, "user_id,server_id,class,size_bytes,pinned\n0,0,std,5,0\n");
  auto r = run({"plan", "--snapshot", d});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "mailshard: " + d + ": users.csv:1: missing column 'activity' (expected "
                   "user_id,server_id,class,size_bytes,activity,pinned)\n");
}

TEST(PlanCli, NegativeSizeIsExact) {
  std::string d = dir_with("negative", kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,-5,0.1,0\n");
  auto r = run({"plan", "--snapshot", d});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "mailshard: " + d + ": users.csv:2: size_bytes '-5' is negative\n");
}

TEST(PlanCli, UnknownServerIdIsExact) {
  std::string d = dir_with("unknown", kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,9,std,5,0.1,0\n");
  auto r = run({"plan", "--snapshot", d});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "mailshard: " + d + ": users.csv:2: server_id 9 is not in servers.csv\n");
}

// A user on a server of another class is not an error: it stays where it is,
// the plan says why and is marked partial.
TEST(PlanCli, ClassMismatchIsPlannedAroundAndReported) {
  std::string users = kUsers;
  users += "11,2,ssd,20,0.0,0\n";
  std::string d = dir_with("class", kServers, users);
  auto r = run({"--json", "plan", "--snapshot", d, "--no-journal"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["partial"], true);
  EXPECT_EQ(j["partial_reasons"][0],
            "the snapshot has 1 problem (see the warnings); the users concerned stay where they are");
  EXPECT_EQ(j["warnings"][0], "snapshot: users.csv:13: user 11 is class 'ssd' but server 2 is 'std'; treated as pinned");
  EXPECT_EQ(j["moves"], 3);
}

TEST(PlanCli, BadOptionsAreExact) {
  std::string d = dir_with("opts", kServers, kUsers);
  auto drain = run({"plan", "--snapshot", d, "--drain", "store9"});
  EXPECT_EQ(drain.exit_code, 2);
  EXPECT_EQ(drain.err, "mailshard: --drain: no server 'store9' in the snapshot (it has 3 servers, ids 0..2)\n");
  auto strategy = run({"plan", "--snapshot", d, "--strategy", "balanse"});
  EXPECT_EQ(strategy.exit_code, 2);
  EXPECT_EQ(strategy.err, "mailshard: unknown strategy 'balanse', did you mean 'balance'? (known: balance, drain, fill)\n");
  auto band = run({"plan", "--snapshot", d, "--band", "1.5"});
  EXPECT_EQ(band.exit_code, 2);
  EXPECT_EQ(band.err, "mailshard: band 1.5 must be between 0 and 1\n");
  auto report = run({"plan", "--snapshot", d, "--report", d + "/r.pdf"});
  EXPECT_EQ(report.exit_code, 2);
  EXPECT_EQ(report.err, "mailshard: --report " + d + "/r.pdf: the file name must end in .md or .html\n");
  auto bytes = run({"plan", "--snapshot", d, "--max-bytes", "lots"});
  EXPECT_EQ(bytes.exit_code, 2);
  EXPECT_EQ(bytes.err.rfind("mailshard: --max-bytes: ", 0), 0u) << bytes.err;
}

// 99999999999 TiB overflowed int64 (UBSan in capacity.cc); sizes are bounded by 8 PiB.
TEST(PlanCli, HugeMaxBytesIsExact) {
  std::string d = dir_with("huge_bytes", kServers, kUsers);
  auto r = run({"plan", "--snapshot", d, "--max-bytes", "99999999999TiB"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "mailshard: --max-bytes: byte size too large: '99999999999TiB' (at most 8 PiB)\n");
}

TEST(PlanCli, SnapshotSizeNear2To63IsExact) {
  std::string d = dir_with("huge_size", kServers,
                           "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,9223372036854775000,0.0,0\n");
  auto r = run({"plan", "--snapshot", d});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "mailshard: " + d + ": users.csv:2: size_bytes 9223372036854775000 is larger than 2^53\n");
}

// Everything mailshard writes is private: plan outputs were created 0644.
// (The temp-file safety of the one writer is tested in util/fs_test.cc.)
TEST(PlanCli, OutputsAreCreatedPrivate) {
  std::string d = dir_with("private_out", kServers, kUsers);
  for (const char* f : {"/plan.json", "/plan.csv", "/report.md"}) ::unlink((d + f).c_str());
  auto r = run({"plan", "--snapshot", d, "--output", d + "/plan.json", "--csv", d + "/plan.csv", "--report",
                d + "/report.md"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"/plan.json", "/plan.csv", "/report.md"}) {
    struct stat st;
    ASSERT_EQ(::lstat((d + f).c_str(), &st), 0) << f;
    EXPECT_TRUE(S_ISREG(st.st_mode)) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
}

// Infeasible constraints: the plan says exactly why, plans what it can and is
// marked partial (exit 0: a partial plan is still a plan).
TEST(PlanCli, BudgetTooSmallIsPartialWithTheReason) {
  std::string d = dir_with("budget", kServers, kUsers);
  auto r = run({"--json", "plan", "--snapshot", d, "--no-journal", "--max-moves", "1", "--csv", d + "/p.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["partial"], true);
  EXPECT_EQ(j["partial_reasons"],
            nlohmann::json::array({"budget too small to reach the band: --max-moves 1 per night over 1 night leaves 2 moves "
                                   "(200 B) unplanned",
                                   "2 servers stay above the band: 0, 1", "1 server stays below the band: 2"}));
  EXPECT_EQ(*read_file(d + "/p.csv"), "user_id,from_server,to_server,size_bytes\n1,0,2,200\n");
}

TEST(PlanCli, DrainWithNowhereToGoIsPartialWithTheReason) {
  // Both servers are nearly full: the drained users fit nowhere under the hard cap.
  std::string servers =
      "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n"
      "0,std,1000,0,16.0,1\n1,std,1000,0,16.0,0\n";
  std::string users = "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,500,1.0,0\n1,0,std,400,1.0,0\n"
                      "2,1,std,800,1.0,0\n";
  std::string d = dir_with("drain", servers, users);
  auto r = run({"--json", "plan", "--snapshot", d, "--no-journal"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["moves"], 0);
  EXPECT_EQ(j["partial_reasons"],
            nlohmann::json::array({"class 'std' does not fit its band: it holds 1.7 KiB and its 1 active server can hold "
                                   "850 B below the band's upper edge and the hard cap",
                                   "drain of server 0 is incomplete: 900 B of movable mail stay on it",
                                   "1 server stays below the band: 1"}));
}

}  // namespace
}  // namespace mailshard
