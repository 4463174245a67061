// The shipped systemd units and crontab: they pass systemd-analyze verify
// (when it is installed) and run the reviewed plan with a clock-time deadline.
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "util/fs.h"
#include "util/subprocess.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;

std::string example(const std::string& name) {
  auto r = read_file(std::string(MAILSHARD_SOURCE_DIR) + "/examples/" + name);
  EXPECT_TRUE(r.ok()) << name;
  return r.ok() ? *r : std::string();
}

TEST(Examples, TheNightRunsTheApprovedPlanWithAClockTimeDeadline) {
  for (const char* f : {"mailshard-rebalance.service", "crontab"}) {
    std::string text = example(f);
    EXPECT_NE(text.find("rebalance --plan latest"), std::string::npos) << f;
    EXPECT_TRUE(std::regex_search(text, std::regex("--deadline [0-9]{2}:[0-9]{2}"))) << f;
    EXPECT_NE(text.find("--metrics-file"), std::string::npos) << f;
    EXPECT_NE(text.find("--report"), std::string::npos) << f;
  }
}

TEST(Examples, SystemdUnitsPassSystemdAnalyzeVerify) {
  if (::access("/usr/bin/systemd-analyze", X_OK) != 0) GTEST_SKIP() << "systemd-analyze is not installed";
  // The units name /usr/local/bin/mailshard; verify wants an executable there,
  // so check copies that name the binary under test.
  std::string dir = ::testing::TempDir() + "/units_" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<std::string> argv = {"/usr/bin/systemd-analyze", "verify"};
  for (const auto& e : fs::directory_iterator(std::string(MAILSHARD_SOURCE_DIR) + "/examples")) {
    std::string name = e.path().filename();
    if (name.rfind("mailshard-", 0) != 0 || (e.path().extension() != ".service" && e.path().extension() != ".timer"))
      continue;
    std::string text = example(name);
    text = std::regex_replace(text, std::regex("/usr/local/bin/mailshard"), MAILSHARD_BIN);
    std::ofstream(dir + "/" + name) << text;
    argv.push_back(dir + "/" + name);
  }
  ASSERT_GE(argv.size(), 6u) << "the rebalance and resume services and timers";
  auto r = run_process(argv, "", 60'000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->exit_code, 0) << r->out << r->err;
  EXPECT_EQ(r->err.find(dir), std::string::npos) << "a warning about a unit: " << r->err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mailshard
