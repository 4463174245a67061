#include "config/config_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <utility>
#include <vector>

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
  EXPECT_EQ(c->servers[0].max_moves_out, 2);
  EXPECT_EQ(c->servers[0].max_moves_in, 2);
  EXPECT_FALSE(c->rebalance.require_approval);
  EXPECT_EQ(c->rebalance.max_plan_age_ms, 36ll * 3'600'000);
  EXPECT_EQ(c->rebalance.sample_interval_ms, 30'000);
  EXPECT_EQ(c->rebalance.max_server_failures, 3);
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

TEST(ConfigLoader, FreezeUntilInValue) {
  auto off = parse(base_config());
  ASSERT_TRUE(off.ok()) << off.error().message();
  EXPECT_FALSE(off->freeze.until_in_value);
  auto on = parse(base_config() + "[freeze]\nuntil_in_value = true\n");
  ASSERT_TRUE(on.ok()) << on.error().message();
  EXPECT_TRUE(on->freeze.until_in_value);
  // The deadline follows a ';': a frozen value with one would not parse back.
  auto bad = parse(base_config() + "[freeze]\nuntil_in_value = true\nfrozen_value = \"frozen;x\"\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("freeze.frozen_value: must not contain ';' with until_in_value"), std::string::npos)
      << bad.error().message();
}

TEST(ConfigLoader, FreezeOwnerInValueIsTheDefault) {
  auto on = parse(base_config());
  ASSERT_TRUE(on.ok()) << on.error().message();
  EXPECT_TRUE(on->freeze.owner_in_value);
  auto off = parse(base_config() + "[freeze]\nowner_in_value = false\n");
  ASSERT_TRUE(off.ok()) << off.error().message();
  EXPECT_FALSE(off->freeze.owner_in_value);
  // The move follows a ';' too: with owners on, a frozen value with one is refused.
  auto bad = parse(base_config() + "[freeze]\nfrozen_value = \"frozen;x\"\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("owner_in_value"), std::string::npos) << bad.error().message();
  EXPECT_TRUE(parse(base_config() + "[freeze]\nowner_in_value = false\nfrozen_value = \"frozen;x\"\n").ok());
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

TEST(ConfigLoader, ServerCaFileIsReadAndMustBeAbsolute) {
  std::string text = base_config();
  size_t at = text.find("mail_root = \"/srv/mail1\"");
  ASSERT_NE(at, std::string::npos);
  std::string with = text;
  with.insert(at, "ca_file = \"/etc/ssl/lab-ca.pem\"\n");
  auto ok = parse(with);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->servers[0].ca_file, "/etc/ssl/lab-ca.pem");
  text.insert(at, "ca_file = \"lab-ca.pem\"\n");
  auto c = parse(text);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:10: server[0].ca_file: 'lab-ca.pem' must be an absolute path");
}

// Found by the config fuzzer: U+FC00 where whitespace may go sent toml++ 3.3
// into an "unreachable" branch. Non-ASCII is fine in strings and comments.
TEST(ConfigLoader, NonAsciiOutsideStringsAndCommentsIsRefusedBeforeParsing) {
  auto c = parse("a = 1 \xef\xb0\x80\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:1: a non-ASCII character outside a quoted string or a comment");
  std::string text = base_config();
  text.insert(0, "# Überschrift: ﰀ\n");
  size_t at = text.find("mail_root = \"/srv/mail1\"");
  text.insert(at, "ca_file = \"/etc/ssl/ﰀ-ça.pem\"\n");
  auto ok = parse(text);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->servers[0].ca_file, "/etc/ssl/ﰀ-ça.pem");
}

// Found by the config fuzzer too: a backslash and then U+FD3F inside a """
// string, which toml++ 3.3 tests for whitespace the same broken way. No TOML
// escape is non-ASCII; a literal string keeps its backslashes as they are.
TEST(ConfigLoader, ABackslashBeforeNonAsciiInABasicStringIsRefusedBeforeParsing) {
  for (const char* bad : {"a = \"\"\"x\\\xef\xb4\xbf\"\"\"\n", "a = \"x\\\xc3\xa9\"\n"}) {
    auto c = parse(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.error().message(), "mailshard.toml:1: a backslash followed by a non-ASCII character in a string (not a "
                                   "TOML escape; write \\uXXXX)");
  }
  // And a quote glued to a bare value ("+\"..."), which toml++ scans as part of
  // that value: what follows is outside a string.
  auto glued = parse("[journal]\nn =+\"9m b d\xd0\x80\"\n");
  ASSERT_FALSE(glued.ok());
  EXPECT_EQ(glued.error().message(), "mailshard.toml:2: a non-ASCII character outside a quoted string or a comment");
  // After a line-ending backslash toml++ tests the next line's first character
  // the same way: toml++ only ever sees ASCII, so the value is kept whole.
  std::string text2 = base_config();
  size_t at2 = text2.find("mail_root = \"/srv/mail1\"");
  text2.insert(at2, "ca_file = \"\"\"/etc/ssl/\\\n\n  \xef\xb3\xbf-\xc3\xa7" "a.pem\"\"\"\n");
  auto folded = parse(text2);
  ASSERT_TRUE(folded.ok()) << folded.error().message();
  EXPECT_EQ(folded->servers[0].ca_file, "/etc/ssl/\xef\xb3\xbf-\xc3\xa7" "a.pem");
  // Invalid UTF-8 anywhere is refused with its line.
  auto bad_utf8 = parse("# ok\na = \"\xc3\x28\"\n");
  ASSERT_FALSE(bad_utf8.ok());
  EXPECT_EQ(bad_utf8.error().message(), "mailshard.toml:2: not valid UTF-8");
  auto after_bare = parse("a = 0/'\xd9\xd9'\n");
  ASSERT_FALSE(after_bare.ok());
  EXPECT_EQ(after_bare.error().message(), "mailshard.toml:1: a non-ASCII character outside a quoted string or a comment");
  std::string text = base_config();
  size_t at = text.find("mail_root = \"/srv/mail1\"");
  text.insert(at, "ca_file = '/etc/ssl/x\\é.pem'\n");
  auto ok = parse(text);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->servers[0].ca_file, "/etc/ssl/x\\é.pem");
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

TEST(ConfigLoader, AuthHttpSectionAndServerAddresses) {
  auto c = parse(base_config("imap_address = \"127.0.0.1:11143\"\npop3_address = \"[::1]:110\"\n") +
                 "[auth_http]\nlisten = \"127.0.0.1:9143\"\nworkers = 8\nlogin_attributes = [\"mail\", \"uid\"]\n"
                 "disabled_values = [\"disabled\", \"locked\"]\nauth_wait = \"5s\"\nshared_secret_file = \"" +
                 secret_file("auth.secret", "k3y\n") + "\"\n");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->servers[0].imap_address, "127.0.0.1:11143");
  EXPECT_EQ(c->servers[0].pop3_address, "[::1]:110");
  EXPECT_EQ(c->auth_http.workers, 8);
  EXPECT_EQ(c->auth_http.login_attributes, (std::vector<std::string>{"mail", "uid"}));
  EXPECT_EQ(c->auth_http.disabled_values, (std::vector<std::string>{"disabled", "locked"}));
  EXPECT_EQ(c->auth_http.auth_wait_ms, 5'000);
  EXPECT_EQ(c->auth_http.shared_secret.reveal(), "k3y");
}

TEST(ConfigLoader, AuthHttpBadValuesAreOneLineEach) {
  auto host = parse(base_config("imap_address = \"store1:143\"\n"));
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.error().message(),
            "mailshard.toml:11: server[0].imap_address: 'store1:143' is not IP:PORT (the address must be numeric, e.g. "
            "192.0.2.10:143)");
  auto port = parse(base_config("pop3_address = \"127.0.0.1:70000\"\n"));
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.error().message().find("the port must be a number from 1 to 65535"), std::string::npos);
  auto attr = parse(base_config() + "[auth_http]\nlogin_attributes = [\"mail)(uid=*\"]\n");
  ASSERT_FALSE(attr.ok());
  EXPECT_NE(attr.error().message().find("is not an LDAP attribute name"), std::string::npos);
  auto listen = parse(base_config() + "[auth_http]\nlisten = \"9143\"\n");
  ASSERT_FALSE(listen.ok());
  EXPECT_NE(listen.error().message().find("auth_http.listen: '9143' is not IP:PORT (the port is missing)"), std::string::npos);
  auto inline_secret = parse(base_config() + "[auth_http]\nshared_secret = \"x\"\n");
  ASSERT_FALSE(inline_secret.ok());
  EXPECT_NE(inline_secret.error().message().find("shared_secret_file"), std::string::npos);
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

// Runs fn on a thread and waits at most 10 s for it. A call that blocks on the
// FIFO at `fifo` fails the test instead of hanging it: the FIFO is then opened
// for writing and closed, which ends the blocked read with EOF.
template <typename F>
auto returns_promptly(const std::string& fifo, F fn) {
  auto fut = std::async(std::launch::async, fn);
  if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "blocked on the FIFO " << fifo;
    int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  }
  return fut.get();
}

std::string make_fifo(const std::string& name) {
  std::string path = ::testing::TempDir() + "/cfgtest_fifo_" + name;
  ::unlink(path.c_str());
  EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0);
  return path;
}

TEST(ConfigLoader, DeepDottedKeyIsRefusedBeforeTomlParsesIt) {
  // 100,000 levels overflowed toml++'s stack (SIGSEGV).
  std::string key = "a";
  for (int i = 0; i < 100'000; ++i) key += ".a";
  auto c = parse(base_config() + key + " = 1\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:11: keys or values nested deeper than 32 levels");
  // Numbers, dotted keys of normal depth and dots inside strings are fine.
  auto ok = parse(base_config("load_capacity = 16.5\nagent_command = \"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.1.2.3.4.5.6.7\"\n"));
  EXPECT_TRUE(ok.ok()) << ok.error().message();
  auto deep_header = parse(base_config() + "[" + key.substr(0, 80) + "]\n");
  ASSERT_FALSE(deep_header.ok());
  EXPECT_EQ(deep_header.error().message(), "mailshard.toml:11: keys or values nested deeper than 32 levels");
}

TEST(ConfigLoader, OversizeConfigFileIsRefused) {
  std::string path = ::testing::TempDir() + "/cfgtest_big.toml";
  ASSERT_TRUE(write_file_atomic(path, base_config() + "#" + std::string(2u << 20, 'x') + "\n").ok());
  auto c = load_config(path, env_of({}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "cannot read config: cannot read '" + path +
                                     "': larger than 1048576 bytes (give one with -c FILE or MAILSHARD_CONFIG)");
}

TEST(ConfigLoader, FifoAsConfigIsRefusedWithoutBlocking) {
  std::string fifo = make_fifo("config");
  auto c = returns_promptly(fifo, [&] { return load_config(fifo, env_of({})); });
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "cannot read config: cannot read '" + fifo +
                                     "': not a regular file (give one with -c FILE or MAILSHARD_CONFIG)");
}

TEST(ConfigLoader, FifoAsPasswordFileIsRefusedWithoutBlocking) {
  std::string fifo = make_fifo("secret");
  std::string text = base_config();
  auto pos = text.find("bind_password_file = \"");
  text.replace(pos, text.find('\n', pos) - pos, "bind_password_file = \"" + fifo + "\"");
  auto c = returns_promptly(fifo, [&] { return parse(text); });
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:6: ldap.bind_password_file: cannot read '" + fifo + "': not a regular file");
}

TEST(ConfigLoader, NegativeOrHugeIntegerDurationIsRefused) {
  auto neg = parse(base_config() + "[move]\ngrace_period = -604800\n");
  ASSERT_FALSE(neg.ok());
  EXPECT_EQ(neg.error().message(), "mailshard.toml:12: move.grace_period: must not be negative, got -604800");
  auto huge = parse(base_config() + "[move]\ngrace_period = 9223372036854775\n");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().message(),
            "mailshard.toml:12: move.grace_period: 9223372036854775 seconds is too long (at most 100 years)");
  auto text = parse(base_config() + "[move]\ngrace_period = \"99999999999999999999d\"\n");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().message(),
            "mailshard.toml:12: move.grace_period: duration too long: '99999999999999999999d' (at most 100 years)");
  auto ok = parse(base_config() + "[move]\ngrace_period = 604800\n");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->move.grace_period_ms, 604'800'000);
}

TEST(ConfigLoader, HugeByteCountIsRefused) {
  auto c = parse(base_config() + "[move]\nheadroom = 9223372036854775807\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "mailshard.toml:12: move.headroom: 9223372036854775807 bytes is too large (at most 8 PiB)");
  auto s = parse(base_config() + "[plan]\nmax_bytes = \"99999999999TiB\"\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "mailshard.toml:12: plan.max_bytes: byte size too large: '99999999999TiB' (at most 8 PiB)");
}

TEST(ConfigLoader, GroupReadableSecretIsRefusedUnlessAllowed) {
  // A secret file of its own: ctest runs the other tests (which rewrite
  // cfgtest_ldap.secret 0600 through base_config) in parallel.
  std::string text = base_config();
  const std::string shared = ::testing::TempDir() + "/cfgtest_ldap.secret";
  std::string secret = secret_file("group_readable.secret", "adminsecret\n");
  text.replace(text.find(shared), shared.size(), secret);
  ASSERT_EQ(::chmod(secret.c_str(), 0640), 0);
  auto c = parse(text);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(c.error().message(), "mailshard.toml:6: ldap.bind_password_file: secret file '" + secret +
                                     "' is readable by group or others (mode 0640); chmod 600 it or set [security] "
                                     "allow_group_readable_secrets = true");
  auto allowed = parse("[security]\nallow_group_readable_secrets = true\n" + text);
  ASSERT_TRUE(allowed.ok()) << allowed.error().message();
  EXPECT_TRUE(allowed->security.allow_group_readable_secrets);
  EXPECT_EQ(allowed->ldap.bind_password.reveal(), "adminsecret");
  ASSERT_EQ(::chmod(secret.c_str(), 0644), 0);
  auto others = parse("[security]\nallow_group_readable_secrets = true\n" + text);
  ASSERT_FALSE(others.ok());
  EXPECT_EQ(others.error().message(), "mailshard.toml:8: ldap.bind_password_file: secret file '" + secret +
                                          "' is readable by others (mode 0644); chmod 600 it");
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
  auto typo = parse("[security]\nallow_group_readable_secret = true\n" + text);
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.error().message(),
            "mailshard.toml:2: security.allow_group_readable_secret: unknown key (did you mean "
            "'allow_group_readable_secrets'?)");
}

// [security] file_group: what mailshard writes for itself becomes 0640 in that group.
TEST(ConfigLoader, FileGroupMustExistAndMakesPrivateFilesGroupReadable) {
  auto none = parse(base_config());
  ASSERT_TRUE(none.ok()) << none.error().message();
  EXPECT_EQ(none->security.private_files().mode, 0600);
  EXPECT_EQ(none->security.private_files().group, -1);
  auto daemon = parse("[security]\nfile_group = \"daemon\"\n" + base_config());
  ASSERT_TRUE(daemon.ok()) << daemon.error().message();
  EXPECT_EQ(daemon->security.private_files().mode, 0640);
  EXPECT_EQ(daemon->security.private_files().group, *group_id("daemon"));
  auto unknown = parse("[security]\nfile_group = \"no-such-group-x\"\n" + base_config());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message(), "mailshard.toml:2: security.file_group: no group 'no-such-group-x' on this host");
}

// An agent rooted above mail_root lets `sync store1:x` read a sibling tree.
TEST(ConfigLoader, AgentRootMustBeTheMailRoot) {
  auto above = parse(base_config("transport = \"agent\"\nagent_command = \"ssh -T store1 mailshard agent --stdio --root /srv\"\n"));
  ASSERT_FALSE(above.ok());
  EXPECT_EQ(above.error().message(),
            "mailshard.toml:12: server[0].agent_command: --root '/srv' is not this server's mail_root '/srv/mail1'; "
            "the agent must serve exactly the mail root");
  auto sibling = parse(base_config("transport = \"agent\"\nagent_command = \"ssh store1 mailshard agent --stdio --root=/srv/mail2\"\n"));
  ASSERT_FALSE(sibling.ok());
  EXPECT_EQ(sibling.error().message(),
            "mailshard.toml:12: server[0].agent_command: --root '/srv/mail2' is not this server's mail_root '/srv/mail1'; "
            "the agent must serve exactly the mail root");
  auto ok = parse(base_config("transport = \"agent\"\nagent_command = \"ssh -T store1 mailshard agent --stdio --root=/srv/mail1/\"\n"));
  EXPECT_TRUE(ok.ok()) << ok.error().message();
}

// The direct data path: peer_command is checked like agent_command, and
// both keys need the agent transport.
TEST(ConfigLoader, PeerCommandAndPeerTransport) {
  const std::string agent = "transport = \"agent\"\nagent_command = \"ssh -T store1 mailshard agent --stdio --root /srv/mail1\"\n";
  auto ok = parse(base_config(agent + "peer_command = \"ssh -T store1 mailshard agent --stdio --root /srv/mail1\"\n"
                              "peer_transport = \"direct\"\n"));
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->servers[0].peer_command, "ssh -T store1 mailshard agent --stdio --root /srv/mail1");
  EXPECT_EQ(ok->servers[0].peer_transport, PeerTransport::kDirect);
  auto dflt = parse(base_config());
  ASSERT_TRUE(dflt.ok()) << dflt.error().message();
  EXPECT_EQ(dflt->servers[0].peer_transport, PeerTransport::kAuto);
  EXPECT_EQ(dflt->servers[0].peer_command, "");

  auto root = parse(base_config(agent + "peer_command = \"ssh -T store1 mailshard agent --stdio --root /srv\"\n"));
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.error().message(),
            "mailshard.toml:13: server[0].peer_command: --root '/srv' is not this server's mail_root '/srv/mail1'; "
            "the agent must serve exactly the mail root");
  auto local = parse(base_config("peer_command = \"ssh -T store1 mailshard agent --stdio --root /srv/mail1\"\n"));
  ASSERT_FALSE(local.ok());
  EXPECT_EQ(local.error().message(),
            "mailshard.toml:11: server[0].peer_command: needs transport = \"agent\" (the direct data path runs between "
            "agents)");
  auto bad = parse(base_config(agent + "peer_transport = \"sideways\"\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("server[0].peer_transport"), std::string::npos) << bad.error().message();
}

TEST(ConfigLoader, MoveSlotsDefaultPerDirection) {
  auto c = parse(base_config());
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->servers[0].max_moves_out, 2);
  EXPECT_EQ(c->servers[0].max_moves_in, 2);
  auto set = parse(base_config("max_moves_out = 3\nmax_moves_in = 5\n"));
  ASSERT_TRUE(set.ok()) << set.error().message();
  EXPECT_EQ(set->servers[0].max_moves_out, 3);
  EXPECT_EQ(set->servers[0].max_moves_in, 5);
}

// The older single key sets both directions; an explicit direction wins,
// whatever the order of the keys.
TEST(ConfigLoader, MaxConcurrentMovesSetsBothDirections) {
  auto old = parse(base_config("max_concurrent_moves = 4\n"));
  ASSERT_TRUE(old.ok()) << old.error().message();
  EXPECT_EQ(old->servers[0].max_moves_out, 4);
  EXPECT_EQ(old->servers[0].max_moves_in, 4);
  auto mixed = parse(base_config("max_moves_in = 1\nmax_concurrent_moves = 6\n"));
  ASSERT_TRUE(mixed.ok()) << mixed.error().message();
  EXPECT_EQ(mixed->servers[0].max_moves_out, 6);
  EXPECT_EQ(mixed->servers[0].max_moves_in, 1);
}

TEST(ConfigLoader, MoveSlotsAreChecked) {
  auto zero = parse(base_config("max_moves_out = 0\n"));
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().message(), "mailshard.toml:11: server[0].max_moves_out: must be at least 1, got 0");
  auto many = parse(base_config("max_moves_in = 65\n"));
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.error().message(), "mailshard.toml:11: server[0].max_moves_in: must be at most 64, got 65");
  auto old = parse(base_config("max_concurrent_moves = 0\n"));
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().message(), "mailshard.toml:11: server[0].max_concurrent_moves: must be at least 1, got 0");
  auto typo = parse(base_config("max_moves_inn = 2\n"));
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.error().message(), "mailshard.toml:11: server[0].max_moves_inn: unknown key (did you mean 'max_moves_in'?)");
}

TEST(ConfigLoader, RebalanceDefaults) {
  auto c = parse(base_config());
  ASSERT_TRUE(c.ok()) << c.error().message();
  const RebalanceConfig& rb = c->rebalance;
  EXPECT_FALSE(rb.require_approval);
  EXPECT_EQ(rb.max_plan_age_ms, 36ll * 3'600'000);
  EXPECT_DOUBLE_EQ(rb.max_size_drift, 0.2);
  EXPECT_EQ(rb.sample_interval_ms, 30'000);
  EXPECT_DOUBLE_EQ(rb.max_load_per_cpu, 1.5);
  EXPECT_DOUBLE_EQ(rb.max_disk_busy, 0.8);
  EXPECT_EQ(rb.max_server_failures, 3);
  EXPECT_EQ(rb.metrics_file, "");
  EXPECT_EQ(rb.report_dir, "");
  EXPECT_EQ(rb.line, 0);
}

TEST(ConfigLoader, RebalanceEveryKey) {
  auto c = parse(base_config() +
                 "[rebalance]\n"
                 "require_approval = true\n"
                 "max_plan_age = \"12h\"\n"
                 "max_size_drift = 0.5\n"
                 "sample_interval = \"1m\"\n"
                 "max_load_per_cpu = 2\n"
                 "max_disk_busy = 1.0\n"
                 "max_server_failures = 0\n"
                 "metrics_file = \"/var/lib/node_exporter/mailshard.prom\"\n"
                 "report_dir = \"/var/lib/mailshard/reports\"\n");
  ASSERT_TRUE(c.ok()) << c.error().message();
  const RebalanceConfig& rb = c->rebalance;
  EXPECT_TRUE(rb.require_approval);
  EXPECT_EQ(rb.max_plan_age_ms, 12ll * 3'600'000);
  EXPECT_DOUBLE_EQ(rb.max_size_drift, 0.5);
  EXPECT_EQ(rb.sample_interval_ms, 60'000);
  EXPECT_DOUBLE_EQ(rb.max_load_per_cpu, 2.0);
  EXPECT_DOUBLE_EQ(rb.max_disk_busy, 1.0);
  EXPECT_EQ(rb.max_server_failures, 0);
  EXPECT_EQ(rb.metrics_file, "/var/lib/node_exporter/mailshard.prom");
  EXPECT_EQ(rb.report_dir, "/var/lib/mailshard/reports");
  EXPECT_EQ(rb.line, 11);
  auto seconds = parse(base_config() + "[rebalance]\nmax_plan_age = 3600\n");
  ASSERT_TRUE(seconds.ok()) << seconds.error().message();
  EXPECT_EQ(seconds->rebalance.max_plan_age_ms, 3'600'000);
}

TEST(ConfigLoader, RebalanceBadValuesAreExact) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"require_approval = \"yes\"", "rebalance.require_approval: expected true or false, got a string"},
      {"max_plan_age = \"0s\"", "rebalance.max_plan_age: must be positive"},
      {"max_plan_age = -1", "rebalance.max_plan_age: must not be negative, got -1"},
      {"max_plan_age = true", "rebalance.max_plan_age: expected a duration string such as \"10m\", got a boolean"},
      {"max_size_drift = -0.1", "rebalance.max_size_drift: must be between 0 and 10, got -0.1"},
      {"max_size_drift = 11", "rebalance.max_size_drift: must be between 0 and 10, got 11"},
      {"sample_interval = \"500ms\"", "rebalance.sample_interval: must be at least 1s, got 500ms"},
      {"max_load_per_cpu = 0", "rebalance.max_load_per_cpu: must be greater than 0"},
      {"max_load_per_cpu = \"high\"", "rebalance.max_load_per_cpu: expected a number, got a string"},
      {"max_disk_busy = 0.0", "rebalance.max_disk_busy: must be greater than 0"},
      {"max_disk_busy = 1.5", "rebalance.max_disk_busy: must be between 0 and 1, got 1.5"},
      {"max_server_failures = -1", "rebalance.max_server_failures: must be at least 0, got -1"},
      {"max_server_failures = 1001", "rebalance.max_server_failures: must be at most 1000, got 1001"},
      {"max_server_failures = 2.5", "rebalance.max_server_failures: expected an integer, got a number"},
      {"metrics_file = \"mailshard.prom\"", "rebalance.metrics_file: 'mailshard.prom' must be an absolute path"},
      {"report_dir = \"reports\"", "rebalance.report_dir: 'reports' must be an absolute path"},
      {"require_aproval = true", "rebalance.require_aproval: unknown key (did you mean 'require_approval'?)"},
  };
  for (const auto& [line, want] : cases) {
    auto c = parse(base_config() + "[rebalance]\n" + line + "\n");
    ASSERT_FALSE(c.ok()) << line;
    EXPECT_EQ(c.error().code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(c.error().message(), "mailshard.toml:12: " + want) << line;
  }
  auto not_table = parse("rebalance = 1\n" + base_config());
  ASSERT_FALSE(not_table.ok());
  EXPECT_EQ(not_table.error().message(), "mailshard.toml:1: rebalance: must be a table: write it as [rebalance]");
}

TEST(ConfigLoader, ThawHook) {
  auto none = parse(base_config());
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->thaw.command.empty());
  EXPECT_EQ(none->thaw.timeout_ms, 30'000);
  auto c = parse(base_config() + "[thaw]\ncommand = \"postqueue -c /etc/postfix -f\"\ntimeout = \"10s\"\n");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->thaw.command, (std::vector<std::string>{"postqueue", "-c", "/etc/postfix", "-f"}));
  EXPECT_EQ(c->thaw.timeout_ms, 10'000);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"timeout = \"0s\"", "thaw.timeout: must be positive"},
      {"comand = \"postqueue -f\"", "thaw.comand: unknown key (did you mean 'command'?)"},
  };
  for (const auto& [line, want] : cases) {
    auto bad = parse(base_config() + "[thaw]\n" + line + "\n");
    ASSERT_FALSE(bad.ok()) << line;
    EXPECT_EQ(bad.error().message(), "mailshard.toml:12: " + want) << line;
  }
}

// [router] method = "director": two backends over one mail root (storage group "nfs1"), each
// known to the director by an IP, and a store outside any group.
std::string director_config(const std::string& router_extra = "", const std::string& shared2_extra = "") {
  return base_config() +
         "[[server]]\nname = \"shared1\"\nmail_root = \"/srv/shared\"\nstorage_group = \"nfs1\"\n"
         "director_host = \"10.0.0.21\"\n"
         "[[server]]\nname = \"shared2\"\nmail_root = \"/srv/shared\"\nstorage_group = \"nfs1\"\n" +
         (shared2_extra.empty() ? std::string("director_host = \"10.0.0.22\"\n") : shared2_extra) +
         "[router]\nmethod = \"director\"\ndirector_url = \"http://10.0.0.30:8080/doveadm/v1\"\n"
         "director_password_file = \"" + secret_file("director.secret", "doveadmsecret\n") + "\"\n" + router_extra;
}

TEST(ConfigLoader, RouterDefaultsToMailHost) {
  auto c = parse(base_config());
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->router.method, RouterMethod::kMailHost);
  EXPECT_TRUE(c->servers[0].storage_group.empty());
  EXPECT_FALSE(c->same_storage_group("store1", "store1"));
}

TEST(ConfigLoader, RouterDirector) {
  auto c = parse(director_config("timeout = \"3s\"\n"));
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->router.method, RouterMethod::kDirector);
  EXPECT_EQ(c->router.director_url, "http://10.0.0.30:8080/doveadm/v1");
  EXPECT_EQ(c->router.director_user, "doveadm");
  EXPECT_EQ(c->router.director_password.reveal(), "doveadmsecret");
  EXPECT_EQ(c->router.timeout_ms, 3'000);
  EXPECT_EQ(c->servers[1].storage_group, "nfs1");
  EXPECT_EQ(c->servers[2].director_host, "10.0.0.22");
  EXPECT_TRUE(c->same_storage_group("shared1", "shared2"));
  EXPECT_FALSE(c->same_storage_group("shared1", "store1"));
  EXPECT_FALSE(c->same_storage_group("store1", "store1")) << "no group is no group";
  EXPECT_FALSE(c->same_storage_group("shared1", "nosuch"));
  auto env = parse(director_config(), {{"MAILSHARD_DIRECTOR_PASSWORD", "fromenv"}});
  ASSERT_TRUE(env.ok()) << env.error().message();
  EXPECT_EQ(env->router.director_password.reveal(), "fromenv");
}

TEST(ConfigLoader, RouterDirectorBadInputIsOneExactLine) {
  struct Case {
    std::string text, want;
  };
  const std::vector<Case> cases = {
      {base_config() + "[router]\nmethod = \"directer\"\n",
       "mailshard.toml:12: router.method: unknown value 'directer' (expected one of: mailhost, director); did you "
       "mean 'director'?"},
      {base_config() + "[router]\nmethod = \"director\"\n",
       "mailshard.toml:11: router.director_url: required when method = \"director\" (the director's doveadm HTTP "
       "API)"},
      {director_config("director_password = \"x\"\n"),
       "mailshard.toml:25: router.director_password: secrets are not read from the config file; use "
       "director_password_file or MAILSHARD_DIRECTOR_PASSWORD"},
      {base_config("storage_group = \"nfs1\"\ndirector_host = \"10.0.0.21\"\n"),
       "mailshard.toml:8: server[0].storage_group: needs [router] method = \"director\" (only the director keeps a "
       "shared mail root to one writer)"},
      {director_config("", "\n"),
       "mailshard.toml:19: server[2].director_host: required with storage_group (the IP the director knows this "
       "backend by)"},
      {base_config("director_host = \"10.0.0.21\"\n"), "mailshard.toml:11: server[0].storage_group: required with director_host"},
      {director_config("", "director_host = \"shared2.example.org\"\n"),
       "mailshard.toml:20: server[2].director_host: 'shared2.example.org' is not an IP address (the director knows "
       "its backends by IP)"},
      {director_config("", "director_host = \"10.0.0.21\"\n"),
       "mailshard.toml:16: server[2].director_host: '10.0.0.21' is also the director_host of server 'shared1'"},
      {base_config() + "[router]\nmethod = \"director\"\ndirector_url = \"http://d:8080/doveadm/v1\"\n"
                       "director_password_file = \"" + secret_file("d2.secret", "x\n") + "\"\n",
       "mailshard.toml:11: router.method: \"director\" needs at least one [[server]] with storage_group and "
       "director_host"},
      {director_config("director_url2 = \"x\"\n"),
       "mailshard.toml:25: router.director_url2: unknown key (did you mean 'director_url'?)"},
  };
  for (const auto& k : cases) {
    auto c = parse(k.text);
    ASSERT_FALSE(c.ok()) << k.want;
    EXPECT_EQ(c.error().message(), k.want);
  }
}

TEST(ConfigLoader, MailLocationTreesMustBeInsideTheMailRoot) {
  auto ok = parse(base_config(
      "mail_location = \"maildir:~/Maildir:INDEX=/srv/mail1/index/%d/%n:CONTROL=/srv/mail1/control/%u:LAYOUT=fs\"\n"));
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_TRUE(parse(base_config("mail_location = \"maildir:~/Maildir:INDEX=~/idx:CONTROL=%h/ctl\"\n")).ok());
  EXPECT_TRUE(parse(base_config("mail_location = \"maildir:~/Maildir:INDEX=MEMORY\"\n")).ok());
  auto outside = parse(base_config("mail_location = \"maildir:~/Maildir:INDEX=/var/index/%d/%n\"\n"));
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().message(),
            "mailshard.toml:11: server[0].mail_location: 'maildir:~/Maildir:INDEX=/var/index/%d/%n': "
            "INDEX=/var/index/%d/%n is not inside mail_root '/srv/mail1' (mailshard reads and writes only there; put "
            "the INDEX directories under it)");
  EXPECT_TRUE(parse(base_config("mail_location = \"mbox:~/mail:INBOX=/srv/mail1/spool/%u\"\n")).ok());
  auto spool = parse(base_config("mail_location = \"mbox:~/mail:INBOX=/var/mail/%u\"\n"));
  ASSERT_FALSE(spool.ok());
  EXPECT_EQ(spool.error().message(),
            "mailshard.toml:11: server[0].mail_location: 'mbox:~/mail:INBOX=/var/mail/%u': INBOX=/var/mail/%u is not "
            "inside mail_root '/srv/mail1' (mailshard reads and writes only there; bind-mount the spool directory "
            "under it)");
  auto sibling = parse(base_config("mail_location = \"maildir:~/Maildir:CONTROL=/srv/mail1%n\"\n"));
  ASSERT_FALSE(sibling.ok());
  EXPECT_NE(sibling.error().message().find("CONTROL=/srv/mail1%n is not inside mail_root"), std::string::npos);
  auto unknown = parse(base_config("mail_location = \"maildir:~/Maildir:INDEX=/srv/mail1/i/%x\"\n"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message(), "mailshard.toml:11: server[0].mail_location: "
                                       "'maildir:~/Maildir:INDEX=/srv/mail1/i/%x': INDEX: unknown variable %x");
}

}  // namespace
}  // namespace mailshard

namespace mailshard {
namespace {

std::string with_journal(const std::string& journal_lines) {
  std::string c = base_config();
  c.replace(0, c.find("[ldap]"), "[journal]\n" + journal_lines);
  return c;
}

TEST(ConfigLoader, JournalUrlIsPostgresWithThePasswordFromAFile) {
  auto c = parse(with_journal("url = \"postgresql://mailshard@db1:5432/mailshard\"\n"
                              "password_file = \"" + secret_file("pg.secret", "pgsecret\n") + "\"\n"
                              "max_clock_skew = \"2s\"\n"));
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->journal.url, "postgresql://mailshard@db1:5432/mailshard");
  EXPECT_EQ(c->journal.path, "");
  EXPECT_EQ(c->journal.password.reveal(), "pgsecret");
  EXPECT_EQ(c->journal.max_clock_skew_ms, 2'000);
  auto from_env = parse(with_journal("url = \"postgres://mailshard@db1/mailshard\"\n"),
                        {{"MAILSHARD_JOURNAL_PASSWORD", "fromenv"}});
  ASSERT_TRUE(from_env.ok()) << from_env.error().message();
  EXPECT_EQ(from_env->journal.password.reveal(), "fromenv");
  EXPECT_EQ(from_env->journal.max_clock_skew_ms, 5'000);
  auto libpq_own = parse(with_journal("url = \"postgresql://mailshard@db1/mailshard\"\n"));
  ASSERT_TRUE(libpq_own.ok()) << "no password: libpq's PGPASSFILE or ~/.pgpass";
  EXPECT_TRUE(libpq_own->journal.password.empty());
}

TEST(ConfigLoader, JournalIsEitherPathOrUrlInOneLine) {
  auto both = parse(with_journal("path = \"/tmp/j.sqlite\"\nurl = \"postgresql://db1/mailshard\"\n"));
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.error().message(),
            "mailshard.toml:3: journal.url: give either path (SQLite) or url (PostgreSQL), not both");
  auto not_pg = parse(with_journal("url = \"mysql://db1/mailshard\"\n"));
  ASSERT_FALSE(not_pg.ok());
  EXPECT_EQ(not_pg.error().message(),
            "mailshard.toml:2: journal.url: must be a postgresql:// URL, e.g. "
            "\"postgresql://mailshard@db1:5432/mailshard\"");
  auto skew_without_url = parse(with_journal("path = \"/tmp/j.sqlite\"\nmax_clock_skew = \"1s\"\n"));
  ASSERT_FALSE(skew_without_url.ok());
  EXPECT_EQ(skew_without_url.error().message(),
            "mailshard.toml:3: journal.max_clock_skew: only used with url (PostgreSQL)");
}

// A password in the URL is refused without echoing it.
TEST(ConfigLoader, JournalUrlWithAPasswordIsRefusedWithoutShowingIt) {
  for (const std::string url : {"postgresql://mailshard:hunter2@db1/mailshard",
                                "postgresql://mailshard@db1/mailshard?password=hunter2"}) {
    auto c = parse(with_journal("url = \"" + url + "\"\n"));
    ASSERT_FALSE(c.ok()) << url;
    EXPECT_NE(c.error().message().find("mailshard.toml:2: journal.url: secrets are not read from the config file"),
              std::string::npos)
        << c.error().message();
    EXPECT_EQ(c.error().message().find("hunter2"), std::string::npos) << c.error().message();
  }
  auto inline_pw = parse(with_journal("url = \"postgresql://db1/m\"\npassword = \"hunter2\"\n"));
  ASSERT_FALSE(inline_pw.ok());
  EXPECT_EQ(inline_pw.error().message(),
            "mailshard.toml:3: journal.password: secrets are not read from the config file; use password_file or "
            "MAILSHARD_JOURNAL_PASSWORD");
}

}  // namespace
}  // namespace mailshard
