// `mailshard sync` and `mailshard agent` as an operator runs them: exit
// codes, the exact one-line errors, the JSON statistics, and the state file
// that makes the next run incremental.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/movers/maildir_gen.h"
#include "util/subprocess.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;

ProcessResult run(std::vector<std::string> args) {
  args.insert(args.begin(), MAILSHARD_BIN);
  auto r = run_process(args, "", 120'000);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : ProcessResult{};
}

class CmdSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::path(::testing::TempDir()) /
            ("cmd_sync_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(base_);
    fs::create_directories(base_);
  }
  void TearDown() override { fs::remove_all(base_); }
  fs::path base_;
};

TEST_F(CmdSyncTest, UsageErrorsExitTwoWithOneLine) {
  auto rel = run({"sync", "relative/path", "/tmp/x"});
  EXPECT_EQ(rel.exit_code, 2);
  EXPECT_EQ(rel.err, "mailshard: SRC 'relative/path' must be SERVER:RELPATH, /ABS/PATH or agent:/ABS/PATH\n");
  auto dots = run({"sync", "store1:a/../../etc", "/tmp/x", "-c", "/nonexistent.toml"});
  EXPECT_EQ(dots.exit_code, 2);
  EXPECT_EQ(dots.err, "mailshard: SRC: invalid path 'a/../../etc': '..' component\n");
  auto both = run({"sync", "/tmp/a", "/tmp/b", "--final", "--audit"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_EQ(both.err, "mailshard: --final, --metadata-only and --audit exclude each other\n");
  auto missing = run({"sync", (base_ / "nothing").string(), (base_ / "dst").string()});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "mailshard: warm pass: list source local:" + base_.string() +
                             ": cannot open 'nothing': No such file or directory\n");
  auto agent = run({"agent", "--stdio"});
  EXPECT_EQ(agent.exit_code, 2);
}

TEST_F(CmdSyncTest, JsonStatsAndAnIncrementalSecondRun) {
  testing::GenOptions g;
  g.messages = 120;
  testing::generate_home((base_ / "src").string(), g);
  std::string state = (base_ / "state").string();
  auto first = run({"--json", "sync", (base_ / "src").string(), (base_ / "dst").string(), "--state", state,
                    "--verify"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto j = nlohmann::json::parse(first.out);
  EXPECT_GT(j["pass"]["files_copied"].get<int>(), 100);
  EXPECT_GT(j["pass"]["bytes_sent"].get<int64_t>(), 100'000);
  EXPECT_TRUE(j["pass"]["seconds_per_phase"].contains("copy"));
  EXPECT_GT(j["verify"]["uidlists_checked"].get<int>(), 3);
  ASSERT_TRUE(fs::exists(state));

  testing::MutateOptions m;
  testing::mutate_home((base_ / "src").string(), m, g);
  auto second = run({"--json", "sync", (base_ / "src").string(), "agent:" + (base_ / "dst").string(), "--state",
                     state, "--final", "--verify"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  auto k = nlohmann::json::parse(second.out);
  EXPECT_EQ(k["pass"]["kind"], "frozen");
  EXPECT_GT(k["pass"]["renames"].get<int>(), 0);
  EXPECT_LT(k["pass"]["files_copied"].get<int>(), 30);
  auto diffs = testing::compare_trees((base_ / "src").string(), (base_ / "dst").string());
  EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);

  // A state file that is not one is refused, naming it.
  testing::write_file(state, "garbage");
  auto bad = run({"sync", (base_ / "src").string(), (base_ / "dst").string(), "--state", state});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "mailshard: --state '" + state + "': sync state: bad magic\n");
}

}  // namespace
}  // namespace mailshard
