// Runs the real binary: exit codes and the exact one-line errors a script or
// an operator sees.
#include <algorithm>
#include <cstdlib>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mailshard
