#include "util/subprocess.h"

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

}  // namespace
}  // namespace mailshard
