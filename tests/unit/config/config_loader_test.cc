#include "config/config_loader.h"

#include <cstdlib>
#include <map>

#include <gtest/gtest.h>

#include "util/fs.h"

namespace mailshard {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string secret_file(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/cfgtest_" + name;
  EXPECT_TRUE(write_file_atomic(path, content, 0600).ok());
  return path;
}

// A minimal valid config; tests append or substitute lines.
std::string base_config(const std::string& extra_server = "") {
  return "[journal]\n"
         "path = \"/tmp/j.sqlite\"\n"
         "[ldap]\n"
         "uri = \"ldap://127.0.0.1:10389\"\n"
         "bind_dn = \"cn=admin,dc=example,dc=org\"\n"
         "bind_password_file = \"" + secret_file("ldap.secret", "adminsecret\n") + "\"\n"
         "base_dn = \"ou=people,dc=example,dc=org\"\n"
         "[[server]]\n"
         "name = \"store1\"\n"
         "mail_root = \"/srv/mail1\"\n" + extra_server;
}

Result<Config> parse(const std::string& text, std::map<std::string, std::string> env = {}) {
  return parse_config(text, "mailshard.toml", env_of(std::move(env)));
}

TEST(ConfigLoader, ExampleConfigDocumentsAndParses) {
  std::string path = std::string(MAILSHARD_SOURCE_DIR) + "/examples/mailshard.toml";
  auto c = load_config(path, env_of({{"MAILSHARD_LDAP_PASSWORD", "x"}}));
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->servers.size(), 2u);
  EXPECT_EQ(c->servers[1].transport, TransportKind::kAgent);
  EXPECT_EQ(c->freeze.max_duration_ms, 600'000);
  EXPECT_EQ(c->move.grace_period_ms, 7ll * 86'400'000);
  EXPECT_EQ(c->move.headroom_bytes, 1ll << 30);
  EXPECT_EQ(c->ldap.home_attribute, "mailMessageStore");
  EXPECT_EQ(c->ldap.bind_password.reveal(), "x");
  EXPECT_EQ(c->plan.max_bytes, 20ll << 40);
  EXPECT_EQ(c->plan.max_moves_per_server, 150);
  EXPECT_EQ(c->plan.max_move_bytes, 10ll << 30);
  EXPECT_EQ(c->plan.nights, 14);
  EXPECT_DOUBLE_EQ(c->plan.load_band, 0.20);
  EXPECT_EQ(c->servers[0].sync_streams, 2);
}

TEST(ConfigLoader, SyncStreamsDefaultAndRange) {
  auto c = parse(base_config());
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->servers[0].sync_streams, 2);
  auto set = parse(base_config("sync_streams = 4\n"));
  ASSERT_TRUE(set.ok()) << set.error().message();
  EXPECT_EQ(set->servers[0].sync_streams, 4);
  auto bad = parse(base_config("sync_streams = 0\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "mailshard.toml:11: server[0].sync_streams: must be at least 1, got 0");
}

TEST(ConfigLoader, MinimalConfigGetsDefaults) {
  auto c = parse(base_config());
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->ldap.bind_password.reveal(), "adminsecret");  // trailing newline stripped
  EXPECT_EQ(c->ldap.user_attribute, "mail");
  EXPECT_EQ(c->servers[0].server_class, "std");
  EXPECT_EQ(c->freeze.method, FreezeMethod::kLdapAttribute);
  EXPECT_NE(c->find_server("store1"), nullptr);
  EXPECT_EQ(c->find_server("store9"), nullptr);
}

TEST(ConfigLoader, UnknownKeyNamesLineAndSuggests) {
  auto c = parse(base_config("capcity_bytes = 5\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(c.error().message(), "mailshard.toml:11: server[0].capcity_bytes: unknown key (did you mean 'capacity_bytes'?)");
}

TEST(ConfigLoader, UnknownSectionSuggests) {
  auto c = parse(base_config() + "[jounral]\npath = \"x\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:11: jounral: unknown section (did you mean 'journal'?)");
}

TEST(ConfigLoader, MissingPasswordFileIsNamed) {
  std::string text = base_config();
  auto pos = text.find("bind_password_file = \"");
  auto end = text.find('\n', pos);
  text.replace(pos, end - pos, "bind_password_file = \"/nonexistent/ldap.secret\"");
  auto c = parse(text);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(),
            "mailshard.toml:6: ldap.bind_password_file: cannot read '/nonexistent/ldap.secret': No such file or directory");
}

TEST(ConfigLoader, EnvironmentPasswordWinsOverFile) {
  std::string text = base_config();
  auto pos = text.find("bind_password_file = \"");
  auto end = text.find('\n', pos);
  text.replace(pos, end - pos, "bind_password_file = \"/nonexistent/ldap.secret\"");
  auto c = parse(text, {{"MAILSHARD_LDAP_PASSWORD", "fromenv"}});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->ldap.bind_password.reveal(), "fromenv");
}

TEST(ConfigLoader, InlineSecretIsRefused) {
  auto c = parse(base_config() + "");
  std::string text = base_config();
  text.insert(text.find("base_dn"), "bind_password = \"adminsecret\"\n");
  c = parse(text);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(),
            "mailshard.toml:7: ldap.bind_password: secrets are not read from the config file; use "
            "bind_password_file or MAILSHARD_LDAP_PASSWORD");
  EXPECT_EQ(c.error().message().find("adminsecret"), std::string::npos);
}

TEST(ConfigLoader, ServerNamedTwice) {
  auto c = parse(base_config("[[server]]\nname = \"store1\"\nmail_root = \"/srv/other\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:12: server[1].name: server 'store1' is defined twice (first at line 9)");
}

TEST(ConfigLoader, WrongTypeNamesExpectation) {
  auto c = parse(base_config("capacity_bytes = true\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(),
            "mailshard.toml:11: server[0].capacity_bytes: expected a byte count such as 1073741824 or \"1GiB\", got a boolean");
}

TEST(ConfigLoader, BadEnumSuggests) {
  auto c = parse(base_config() + "[freeze]\nmethod = \"ldap-atribute\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(),
            "mailshard.toml:12: freeze.method: unknown value 'ldap-atribute' (expected one of: ldap-attribute, http, "
            "command, none); did you mean 'ldap-attribute'?");
}

TEST(ConfigLoader, TomlSyntaxErrorHasLineAndColumn) {
  auto c = parse("[ldap\nuri = 1\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message().rfind("mailshard.toml:1:", 0), 0u) << c.error().message();
}

TEST(ConfigLoader, MissingRequiredKeys) {
  auto c = parse("[ldap]\nuri = \"ldap://x\"\n[[server]]\nname = \"a\"\nmail_root = \"/m\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:1: ldap.base_dn: missing required key");
  auto d = parse("[ldap]\nuri = \"ldap://x\"\nbase_dn = \"dc=x\"\n");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().message(), "mailshard.toml:1: server: no [[server]] defined (add one [[server]] table per storage server)");
}

TEST(ConfigLoader, AgentTransportNeedsCommand) {
  auto c = parse(base_config("transport = \"agent\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:8: server[0].agent_command: required when transport = \"agent\"");
}

TEST(ConfigLoader, RelativeMailRootRejected) {
  std::string text = base_config();
  text.replace(text.find("/srv/mail1"), 10, "srv/mail1");
  auto c = parse(text);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:10: server[0].mail_root: 'srv/mail1' must be an absolute path");
}

TEST(ConfigLoader, DoveadmUrlNeedsPassword) {
  auto c = parse(base_config("doveadm_url = \"http://127.0.0.1:11080/doveadm/v1\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:8: server[0].doveadm_password_file: missing (or set MAILSHARD_DOVEADM_PASSWORD)");
  auto ok = parse(base_config("doveadm_url = \"http://127.0.0.1:11080/doveadm/v1\"\n"),
                  {{"MAILSHARD_DOVEADM_PASSWORD", "pw"}});
  ASSERT_TRUE(ok.ok()) << ok.error().message();
}

TEST(ConfigLoader, MissingFileSaysHowToGiveOne) {
  auto c = load_config("/nonexistent/mailshard.toml", env_of({}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(c.error().message(),
            "cannot read config: cannot read '/nonexistent/mailshard.toml': No such file or directory (give one with "
            "-c FILE or MAILSHARD_CONFIG)");
}

TEST(ConfigLoader, ResolvePathOrder) {
  EXPECT_EQ(resolve_config_path("a.toml", env_of({{"MAILSHARD_CONFIG", "b.toml"}})), "a.toml");
  EXPECT_EQ(resolve_config_path("", env_of({{"MAILSHARD_CONFIG", "b.toml"}})), "b.toml");
  EXPECT_EQ(resolve_config_path("", env_of({})), "/etc/mailshard/mailshard.toml");
}

TEST(ConfigLoader, CommandAcceptsStringOrArray) {
  auto c = parse(base_config() + "[freeze]\nmethod = \"command\"\ncommand = \"/usr/local/bin/gate --fast\"\n");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->freeze.command, (std::vector<std::string>{"/usr/local/bin/gate", "--fast"}));
  auto d = parse(base_config() + "[freeze]\nmethod = \"command\"\ncommand = [\"/bin/gate\", \"a b\"]\n");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->freeze.command, (std::vector<std::string>{"/bin/gate", "a b"}));
}

TEST(ConfigLoader, PlanBudgetsParseAndAreChecked) {
  auto c = parse(base_config() + "[plan]\nband = 0.02\nload_band = 0.1\nmax_bytes = \"2TiB\"\nmax_moves = 500\n"
                                 "max_moves_per_server = 20\nmax_move_size = \"5GiB\"\nnights = 3\n");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_DOUBLE_EQ(c->plan.band, 0.02);
  EXPECT_DOUBLE_EQ(c->plan.load_band, 0.1);
  EXPECT_EQ(c->plan.max_bytes, 2ll << 40);
  EXPECT_EQ(c->plan.max_moves, 500);
  EXPECT_EQ(c->plan.max_moves_per_server, 20);
  EXPECT_EQ(c->plan.max_move_bytes, 5ll << 30);
  EXPECT_EQ(c->plan.nights, 3);
  auto d = parse(base_config());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->plan.max_bytes, 0);  // unlimited unless configured
  EXPECT_EQ(d->plan.nights, 1);
  auto bad = parse(base_config() + "[plan]\nnights = 0\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "mailshard.toml:12: plan.nights: must be at least 1, got 0");
}

}  // namespace
}  // namespace mailshard
