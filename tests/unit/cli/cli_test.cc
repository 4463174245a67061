// Runs the real binary: exit codes and the exact one-line errors a script or
// an operator sees.
#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "journal/sqlite_journal.h"
#include "tests/support/fakes.h"
#include "util/fs.h"
#include "util/subprocess.h"

namespace mailshard {
namespace {

std::string bin() { return MAILSHARD_BIN; }

ProcessResult run(std::vector<std::string> args) {
  args.insert(args.begin(), bin());
  auto r = run_process(args, "", 30'000);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : ProcessResult{};
}

std::string write_config(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/cli_test_" + name + ".toml";
  EXPECT_TRUE(write_file_atomic(path, text).ok());
  return path;
}

TEST(Cli, HelpIsUsefulAndExitsZero) {
  auto r = run({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("inventory"), std::string::npos);
  EXPECT_NE(r.out.find("Exit codes"), std::string::npos);
  auto sub = run({"config", "check", "--help"});
  EXPECT_EQ(sub.exit_code, 0);
  EXPECT_NE(sub.out.find("--connect"), std::string::npos);
}

TEST(Cli, NoArgumentsIsUsageError) {
  auto r = run({});
  EXPECT_EQ(r.exit_code, 2);
}

TEST(Cli, UnknownCommandIsUsageError) {
  auto r = run({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("mailshard: "), std::string::npos);
}

TEST(Cli, MissingConfigIsOneLineExit2) {
  auto r = run({"-c", "/nonexistent/m.toml", "config", "check"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "mailshard: cannot read config: cannot read '/nonexistent/m.toml': No such file or directory (give one "
            "with -c FILE or MAILSHARD_CONFIG)\n");
  EXPECT_EQ(r.out, "");
}

TEST(Cli, UnreadableConfigIsOneLineExit2) {
  std::string dir = ::testing::TempDir() + "/cli_test_config_dir";
  ASSERT_TRUE(make_dirs(dir).ok());
  auto r = run({"-c", dir, "config", "check"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "mailshard: cannot read config: cannot read '" + dir +
                       "': not a regular file (give one with -c FILE or MAILSHARD_CONFIG)\n");
}

TEST(Cli, InvalidTomlIsOneLineExit2) {
  std::string path = write_config("badtoml", "[ldap]\nuri = \"ldap://x\"\nbase_dn = \n");
  auto r = run({"-c", path, "config", "check"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("mailshard: " + path + ":3:", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line";
}

TEST(Cli, ConfigFromEnvironmentVariable) {
  std::string path = write_config("envbad", "[ldap]\nuri = \"ldap://x\"\nbase_dn = \"dc=x\"\nbogus = 1\n[[server]]\nname=\"a\"\nmail_root=\"/m\"\n");
  std::string cmd = "MAILSHARD_CONFIG=" + path + " " + bin() + " config check";
  auto r = run_process({"sh", "-c", cmd});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_EQ(r->err, "mailshard: " + path + ":4: ldap.bogus: unknown key\n");
}

TEST(Cli, ValidConfigChecksOk) {
  std::string path = write_config("ok", "[ldap]\nuri = \"ldap://x\"\nbase_dn = \"dc=x\"\n[[server]]\nname=\"a\"\nmail_root=\"/m\"\n");
  auto r = run({"-c", path, "config", "check"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "config OK: " + path + " (1 server, freeze method ldap-attribute)\n");
}

// A server behind the agent without metrics_url: its disk and load would be
// this machine's. `config check` refuses it in one line naming the server,
// its line and what to set; with metrics_url it passes.
TEST(Cli, ConfigCheckRefusesAnAgentServerWithoutMetricsUrl) {
  const std::string head = "[ldap]\nuri = \"ldap://x\"\nbase_dn = \"dc=x\"\n[[server]]\nname=\"a\"\nmail_root=\"/m\"\n";
  const std::string store2 =
      "[[server]]\nname=\"store2\"\nmail_root=\"/srv/mail\"\ntransport=\"agent\"\n"
      "agent_command=\"ssh -T store2 mailshard agent --stdio --root /srv/mail\"\n";
  std::string path = write_config("agent_nometrics", head + store2);
  auto r = run({"-c", path, "config", "check"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "mailshard: " + path +
                       ":7: server store2 (transport = \"agent\") has no metrics_url: its disk and load would be read "
                       "on this machine, not on store2; set metrics_url to store2's node_exporter "
                       "(http://HOST:9100/metrics)\n");
  std::string fixed = write_config("agent_metrics", head + store2 + "metrics_url=\"http://store2:9100/metrics\"\n");
  auto ok = run({"-c", fixed, "config", "check"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST(Cli, SecretsNeverPrinted) {
  std::string secret = ::testing::TempDir() + "/cli_test_secret";
  ASSERT_TRUE(write_file_atomic(secret, "s3cr3t-value\n").ok());
  std::string path = write_config("secret", "[ldap]\nuri = \"ldap://x\"\nbind_dn=\"cn=a\"\nbind_password_file=\"" + secret +
                                                "\"\nbase_dn = \"dc=x\"\n[[server]]\nname=\"a\"\nmail_root=\"/m\"\n");
  auto r = run({"-c", path, "--json", "--log-level", "trace", "config", "check"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(r.err.find("s3cr3t"), std::string::npos);
}

TEST(Cli, BadLogLevelIsUsageError) {
  std::string path = write_config("ok2", "[ldap]\nuri = \"ldap://x\"\nbase_dn = \"dc=x\"\n[[server]]\nname=\"a\"\nmail_root=\"/m\"\n");
  auto r = run({"-c", path, "--log-level", "loud", "config", "check"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "mailshard: --log-level: unknown log level 'loud' (use trace, debug, info, warn, error or off)\n");
}

// `plan approve` and `plan list` on a journal seeded with plans of known
// times. The config's LDAP server does not exist: a subcommand that computed
// a live plan (as `plan` alone does) would fail.
class PlanJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cli_plan_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(make_dirs(dir_).ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/ldap.secret", "x\n", 0600).ok());
    cfg_ = dir_ + "/mailshard.toml";
    ASSERT_TRUE(write_file_atomic(cfg_, "[journal]\npath = \"" + journal_path() + "\"\n[ldap]\n"
                                        "uri = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=a\"\nbind_password_file = \"" +
                                        dir_ + "/ldap.secret\"\nbase_dn = \"dc=x\"\n"
                                        "[[server]]\nname = \"a\"\nmail_root = \"/srv/a\"\n[move]\nheadroom = 0\n")
                    .ok());
  }
  std::string journal_path() const { return dir_ + "/journal.sqlite"; }

  // Stores a plan with `moves` moves, created at `created_at_ms`.
  int64_t seed(const std::string& hash, int64_t created_at_ms, int moves, const std::string& strategy = "balance") {
    auto j = SqliteJournal::open(journal_path(), clock_);
    EXPECT_TRUE(j.ok()) << j.error().message();
    PlanRecord p;
    p.hash = hash;
    p.created_at_ms = created_at_ms;
    p.strategy = strategy;
    nlohmann::json doc{{"moves", nlohmann::json::array()}};
    for (int i = 0; i < moves; ++i) doc["moves"].push_back({{"user", i}});
    p.plan_json = doc.dump();
    auto id = (*j)->store_plan(p);
    EXPECT_TRUE(id.ok()) << id.error().message();
    return id.ok() ? *id : 0;
  }
  PlanRecord find(const std::string& hash) {
    auto j = SqliteJournal::open(journal_path(), clock_);
    EXPECT_TRUE(j.ok());
    auto p = (*j)->find_plan(hash);
    EXPECT_TRUE(p.ok()) << p.error().message();
    return p.ok() ? *p : PlanRecord{};
  }
  // Runs the binary as the login `user` (no sudo) with this test's config.
  ProcessResult run_as(const std::string& user, std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "-u", "SUDO_USER", "USER=" + user, bin(), "-c", cfg_};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_process(argv, "", 30'000);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : ProcessResult{};
  }

  testing::FakeClock clock_;
  std::string dir_, cfg_;
};

const std::string kOld = "1111111111111111aaaaaaaaaaaaaaaa";
const std::string kNew = "2222222222222222bbbbbbbbbbbbbbbb";
constexpr int64_t kOldAt = 1'796'446'800'000;  // 2026-12-05T05:00:00Z
constexpr int64_t kNewAt = 1'796'533'200'000;  // 2026-12-06T05:00:00Z

TEST_F(PlanJournalTest, ListIsNewestFirstAndShowsApproval) {
  auto empty = run_as("alice", {"plan", "list"});
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(empty.out, "no plans in the journal\n");
  int64_t old_id = seed(kOld, kOldAt, 3);
  seed(kNew, kNewAt, 12, "drain");
  {
    clock_.set(kNewAt + 60'000);
    auto j = SqliteJournal::open(journal_path(), clock_);
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->approve_plan(old_id, "alice").ok());
  }
  auto r = run_as("alice", {"plan", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "HASH                              CREATED                   STRATEGY  MOVES  STATUS     APPROVED\n"
            "2222222222222222bbbbbbbbbbbbbbbb  2026-12-06T05:00:00.000Z  drain        12  planned    no\n"
            "1111111111111111aaaaaaaaaaaaaaaa  2026-12-05T05:00:00.000Z  balance       3  planned    "
            "2026-12-06T05:01:00.000Z by alice\n");
  auto limited = run_as("alice", {"plan", "list", "--limit", "1"});
  EXPECT_EQ(limited.exit_code, 0) << limited.err;
  EXPECT_EQ(std::count(limited.out.begin(), limited.out.end(), '\n'), 2) << limited.out;

  auto json = run_as("alice", {"--json", "plan", "list"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto doc = nlohmann::json::parse(json.out);
  ASSERT_EQ(doc.size(), 2u);
  EXPECT_EQ(doc[0], nlohmann::json::parse(R"({"hash":"2222222222222222bbbbbbbbbbbbbbbb","created_at":"2026-12-06T05:00:00.000Z",
      "strategy":"drain","moves":12,"status":"planned","approved_at":null,"approved_by":null})"));
  EXPECT_EQ(doc[1]["approved_at"], "2026-12-06T05:01:00.000Z");
  EXPECT_EQ(doc[1]["approved_by"], "alice");

  auto negative = run_as("alice", {"plan", "list", "--limit", "-1"});
  EXPECT_EQ(negative.exit_code, 2);
  EXPECT_EQ(negative.err, "mailshard: plan list: --limit must not be negative, got -1\n");
}

TEST_F(PlanJournalTest, ApproveByPrefixRecordsWhoAndIsIdempotent) {
  seed(kOld, kOldAt, 3);
  auto r = run_as("alice", {"plan", "approve", "11111111"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "approved plan " + kOld + " (3 moves, created 2026-12-05T05:00:00.000Z)\n");
  PlanRecord p = find(kOld);
  EXPECT_EQ(p.approved_by, "alice");
  EXPECT_GT(p.approved_at_ms, 0);

  // Again, by someone else: the first approval stands and is shown.
  auto again = run_as("bob", {"plan", "approve", kOld});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "plan " + kOld + " was already approved: " + format_time_ms(p.approved_at_ms) +
                           " by alice (3 moves, created 2026-12-05T05:00:00.000Z)\n");
  EXPECT_EQ(find(kOld).approved_by, "alice");
}

TEST_F(PlanJournalTest, ApproverIsTheSudoUserFirst) {
  seed(kOld, kOldAt, 3);
  auto r = run_process({"env", "SUDO_USER=carol", "USER=root", bin(), "-c", cfg_, "--json", "plan", "approve", kOld},
                       "", 30'000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  auto doc = nlohmann::json::parse(r->out);
  EXPECT_EQ(doc["approved_by"], "carol");
  EXPECT_EQ(doc["already_approved"], false);
  EXPECT_EQ(doc["moves"], 3);
  EXPECT_EQ(find(kOld).approved_by, "carol");
}

TEST_F(PlanJournalTest, BadHashesAreOneLineExit2) {
  seed(kOld, kOldAt, 3);
  seed("1111111122222222cccccccccccccccc", kNewAt, 1);
  auto unknown = run_as("alice", {"plan", "approve", "deadbeef"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.err, "mailshard: plan approve: no plan with hash 'deadbeef' in the journal\n");
  auto ambiguous = run_as("alice", {"plan", "approve", "11111111"});
  EXPECT_EQ(ambiguous.exit_code, 2);
  EXPECT_EQ(ambiguous.err, "mailshard: plan approve: plan hash prefix '11111111' is ambiguous\n");
  for (std::string bad : {"1111111", "11111111%", "latest"}) {
    auto r = run_as("alice", {"plan", "approve", bad});
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_EQ(r.err, "mailshard: plan approve: '" + bad +
                         "' is not a plan hash (give it, or a unique prefix of at least 8 hex digits)\n");
  }
  auto missing = run_as("alice", {"plan", "approve"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.out, "");
  // An option of `plan` is not silently dropped.
  auto plan_option = run_as("alice", {"plan", "approve", kOld, "--band", "0.1"});
  EXPECT_EQ(plan_option.exit_code, 2);
  EXPECT_EQ(plan_option.err, "mailshard: plan approve: --band is an option of 'mailshard plan', not of 'plan approve'\n");
  EXPECT_EQ(find(kOld).approved_at_ms, 0) << "nothing was approved";
}

// `plan` without a subcommand still computes and journals a plan, which
// `plan approve` then takes by its hash.
TEST_F(PlanJournalTest, PlanAloneStillPlansAndItsHashCanBeApproved) {
  ASSERT_TRUE(write_file_atomic(dir_ + "/servers.csv",
                                "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n"
                                "0,std,1000,0,16.0,0\n1,std,1000,0,16.0,0\n2,std,1000,0,16.0,0\n")
                  .ok());
  ASSERT_TRUE(write_file_atomic(dir_ + "/users.csv",
                                "user_id,server_id,class,size_bytes,activity,pinned\n"
                                "0,0,std,300,0.0,0\n1,0,std,200,0.0,0\n2,0,std,150,0.0,0\n3,0,std,100,0.0,0\n"
                                "4,1,std,100,0.0,0\n5,1,std,100,0.0,0\n6,2,std,50,0.0,0\n")
                  .ok());
  auto plan = run_as("alice", {"--json", "plan", "--snapshot", dir_});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  auto summary = nlohmann::json::parse(plan.out);
  std::string hash = summary["plan_hash"];
  auto list = run_as("alice", {"--json", "plan", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto plans = nlohmann::json::parse(list.out);
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0]["hash"], hash);
  EXPECT_EQ(plans[0]["moves"], summary["moves"]);
  auto approve = run_as("alice", {"plan", "approve", hash.substr(0, 10)});
  EXPECT_EQ(approve.exit_code, 0) << approve.err;
  EXPECT_EQ(approve.out.rfind("approved plan " + hash + " (" + std::to_string(summary["moves"].get<int>()) + " moves, created ", 0),
            0u)
      << approve.out;
}

}  // namespace
}  // namespace mailshard
