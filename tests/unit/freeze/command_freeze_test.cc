#include "freeze/command_freeze.h"

#include <gtest/gtest.h>

#include "util/fs.h"

namespace mailshard {
namespace {

class CommandFreezeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test: ctest runs the tests of this binary as parallel processes.
    dir_ = ::testing::TempDir() + "/command_freeze_test_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(make_dirs(dir_).ok());
    log_ = dir_ + "/calls";
    ::unlink(log_.c_str());
    script_ = dir_ + "/gate.sh";
    ASSERT_TRUE(write_file_atomic(script_,
                                  "#!/bin/sh\n"
                                  "printf '%s|' \"$@\" >> " + log_ + "\n"
                                  "echo >> " + log_ + "\n"
                                  "[ \"$2\" = 'refuse me' ] && { echo 'gate says no' >&2; exit 4; }\n"
                                  "exit 0\n",
                                  0755)
                    .ok());
  }
  std::string dir_, log_, script_;
};

TEST_F(CommandFreezeTest, PassesArgumentsVerbatimWithoutShell) {
  CommandFreeze f({script_, "--site", "a b"});
  // A hostile user name is one argv element, never shell syntax.
  ASSERT_TRUE(f.freeze({"x;rm -rf /$(id)", ""}, 1'700'000'000'999).ok());
  ASSERT_TRUE(f.thaw({"x;rm -rf /$(id)", ""}).ok());
  EXPECT_EQ(*read_file(log_), "--site|a b|freeze|x;rm -rf /$(id)|1700000000|\n--site|a b|thaw|x;rm -rf /$(id)|\n");
}

TEST_F(CommandFreezeTest, FailureCarriesExitCodeAndStderr) {
  CommandFreeze f({script_});
  auto st = f.freeze({"refuse me", ""}, 0);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "freeze refuse me: '" + script_ + "' exited with status 4: gate says no");
}

TEST_F(CommandFreezeTest, KickGetsUserAndServer) {
  CommandKicker k({script_});
  ASSERT_TRUE(k.kick("alice", "store1").ok());
  EXPECT_EQ(*read_file(log_), "alice|store1|\n");
  EXPECT_EQ(k.sessions("alice", "store1").error().code(), ErrorCode::kUnsupported);
}

TEST_F(CommandFreezeTest, MissingProgramIsNamed) {
  CommandFreeze f({"/nonexistent/gate"});
  auto st = f.thaw({"alice", ""});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "thaw alice: cannot run '/nonexistent/gate': No such file or directory");
}

}  // namespace
}  // namespace mailshard
