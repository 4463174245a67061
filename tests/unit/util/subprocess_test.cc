#include "util/subprocess.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace mailshard {
namespace {

TEST(Subprocess, CapturesOutputAndExitCode) {
  auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(Subprocess, FeedsStdinWithoutShell) {
  // The argument is passed verbatim: no shell ever sees "$(rm -rf /)".
  auto r = run_process({"cat"}, "user$(rm -rf /)@example.org");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "user$(rm -rf /)@example.org");
  auto e = run_process({"echo", "a;b", "$HOME"});
  EXPECT_EQ(e->out, "a;b $HOME\n");
}

TEST(Subprocess, LargeStdinAndStdout) {
  std::string big(1 << 20, 'x');
  auto r = run_process({"cat"}, big);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out.size(), big.size());
}

TEST(Subprocess, TimeoutKillsTheChild) {
  auto r = run_process({"sleep", "30"}, "", 200);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_NE(r->exit_code, 0);
}

TEST(Subprocess, MissingProgramIsNotFound) {
  auto r = run_process({"/nonexistent/mailshard-helper"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.error().message(), "cannot run '/nonexistent/mailshard-helper': No such file or directory");
}

TEST(Subprocess, SplitCommandLine) {
  auto v = split_command_line("ssh -T 'store 1' mailshard agent --root \"/srv/my mail\" a\\ b");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (std::vector<std::string>{"ssh", "-T", "store 1", "mailshard", "agent", "--root", "/srv/my mail", "a b"}));
  EXPECT_FALSE(split_command_line("ssh 'unclosed").ok());
}

TEST(Subprocess, SpawnPipedTalksBothWays) {
  auto c = spawn_piped({"cat"});
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(::write(c->stdin_fd, "ping", 4), 4);
  char buf[4];
  ASSERT_EQ(::read(c->stdout_fd, buf, 4), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
  EXPECT_EQ(reap_child(*c), 0);
}

// Children got our whole environment, secrets included.
class ScrubbedEnvironment : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kSecrets) ::setenv(name, "s3cr3t-value", 1);
    ::setenv("MAILSHARD_CONFIG", "/etc/kept.toml", 1);
  }
  void TearDown() override {
    for (const char* name : kSecrets) ::unsetenv(name);
    ::unsetenv("MAILSHARD_CONFIG");
  }
  void expect_scrubbed(const std::string& env_output) {
    EXPECT_EQ(env_output.find("s3cr3t"), std::string::npos) << env_output;
    for (const char* name : kSecrets) EXPECT_EQ(env_output.find(name), std::string::npos) << name;
    EXPECT_NE(env_output.find("MAILSHARD_CONFIG=/etc/kept.toml\n"), std::string::npos) << "the rest is kept";
  }
  static constexpr const char* kSecrets[] = {"MAILSHARD_LDAP_PASSWORD", "MAILSHARD_DOVEADM_PASSWORD",
                                             "MAILSHARD_FREEZE_TOKEN", "MAILSHARD_SOME_SECRET"};
};

TEST_F(ScrubbedEnvironment, RunProcessChildSeesNoSecrets) {
  auto r = run_process({"env"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
  expect_scrubbed(r->out);
}

TEST_F(ScrubbedEnvironment, SpawnedAgentSeesNoSecrets) {
  auto c = spawn_piped({"env"});
  ASSERT_TRUE(c.ok());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(c->stdout_fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(reap_child(*c), 0);
  expect_scrubbed(out);
}

TEST(Subprocess, SecretEnvNames) {
  EXPECT_TRUE(is_secret_env_name("MAILSHARD_LDAP_PASSWORD"));
  EXPECT_TRUE(is_secret_env_name("MAILSHARD_FREEZE_TOKEN"));
  EXPECT_FALSE(is_secret_env_name("MAILSHARD_CONFIG"));
  EXPECT_FALSE(is_secret_env_name("PASSWORD"));
}

}  // namespace
}  // namespace mailshard
