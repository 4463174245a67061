// Bad input for `mailshard inventory` and `mailshard config check --connect`
// on the real lab: LDAP down, a wrong password, a dead and a garbage metrics
// endpoint, a missing mail root, odd files inside a real mailbox (symlink
// loops, a path longer than 4 KB, a 255-byte name, non-UTF-8 names) and
// directory entries that must not be trusted (home outside the root, "..",
// unknown server, no host, control characters, a 4 KB home). Each gets a
// clear message, and the rest of the inventory still comes out.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/inventory_test_util.h"
#include "tests/support/lab.h"
#include "tests/unit/doveadm/tiny_http_server.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

std::string dead_port() { return std::to_string(TinyHttpServer::closed_port()); }

const nlohmann::json* server_in(const nlohmann::json& report, const std::string& name) {
  for (const auto& s : report["servers"])
    if (s["name"] == name) return &s;
  return nullptr;
}

TEST(InventoryBadInput, ConnectCheckPassesOnTheLab) {
  Lab& lab = Lab::get();
  lab.add_user("store1");  // the check reads one entry: not an empty directory, also when run alone
  RunResult r = run_mailshard(lab, {"config", "check", "--connect"});
  ASSERT_EQ(r.rc, 0) << r.describe() << r.out;
  EXPECT_THAT(r.out, HasSubstr("ok   ldap: bound as '" + lab.env("LDAP_MAILSHARD_DN") + "' to " + lab.env("LDAP_URI") + "; read '"));
  for (const auto& s : lab.stores()) {
    EXPECT_THAT(r.out, HasSubstr("ok   " + s + " metrics: " + lab.env("NODE_EXPORTER_URL") + ": filesystem '"));
    EXPECT_THAT(r.out, HasSubstr("ok   " + s + " doveadm: " + lab.store_env(s, "DOVEADM_URL") + ": "));
    EXPECT_THAT(r.out, HasSubstr("ok   " + s + " mail_root: '" + lab.store_env(s, "MAIL_ROOT") + "' is a readable directory"));
  }
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("FAIL")));
}

TEST(InventoryBadInput, LdapDown) {
  Lab& lab = Lab::get();
  TempDir tmp;
  const std::string dead = "ldap://127.0.0.1:" + dead_port();
  std::string cfg = edited_config(lab, tmp.path, {{"[ldap]", lab.env("LDAP_URI"), dead}});
  RunResult r = run_mailshard(lab, {"inventory"}, cfg);
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_EQ(r.err, "mailshard: inventory: LDAP " + dead + ": cannot connect: Can't contact LDAP server\n");
  RunResult c = run_mailshard(lab, {"config", "check", "--connect"}, cfg);
  EXPECT_EQ(c.rc, 2) << c.describe();
  EXPECT_THAT(c.out, HasSubstr("\nFAIL ldap: LDAP " + dead + ": cannot connect: Can't contact LDAP server\n"));
  EXPECT_THAT(c.out, HasSubstr("ok   store1 metrics:"));  // the other checks still ran
}

TEST(InventoryBadInput, WrongLdapPassword) {
  Lab& lab = Lab::get();
  TempDir tmp;
  write_text(tmp.path + "/wrong.secret", "not-the-password\n");
  ASSERT_EQ(lab.run({"chmod", "600", tmp.path + "/wrong.secret"}).rc, 0);  // secrets must be private
  std::string cfg = edited_config(lab, tmp.path, {{"[ldap]", lab.env("LDAP_MAILSHARD_PW_FILE"), tmp.path + "/wrong.secret"}});
  const std::string expected = "LDAP bind as '" + lab.env("LDAP_MAILSHARD_DN") + "' to " + lab.env("LDAP_URI") +
                               ": Invalid credentials (check ldap.bind_dn and the password in bind_password_file or "
                               "$MAILSHARD_LDAP_PASSWORD)";
  RunResult r = run_mailshard(lab, {"inventory"}, cfg);
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_EQ(r.err, "mailshard: inventory: " + expected + "\n");
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("not-the-password")));
  RunResult c = run_mailshard(lab, {"config", "check", "--connect"}, cfg);
  EXPECT_EQ(c.rc, 2);
  EXPECT_THAT(c.out, HasSubstr("\nFAIL ldap: " + expected + "\n"));
}

TEST(InventoryBadInput, DeadMetricsEndpointFailsOnlyThatServer) {
  Lab& lab = Lab::get();
  TempDir tmp;
  const std::string dead = "http://127.0.0.1:" + dead_port() + "/metrics";
  std::string cfg = edited_config(lab, tmp.path, {{"name = \"store2\"", lab.env("NODE_EXPORTER_URL"), dead}});
  const std::string expected = "metrics " + dead + ": GET " + dead + ": Couldn't connect to server (3 attempts)";
  RunResult r = run_mailshard(lab, {"--json", "inventory", "--save", tmp.path + "/snap"}, cfg);
  EXPECT_EQ(r.rc, 1) << r.describe();
  auto report = nlohmann::json::parse(r.out);
  const auto* s2 = server_in(report, "store2");
  ASSERT_NE(s2, nullptr);
  EXPECT_TRUE((*s2)["failed"].get<bool>());
  EXPECT_EQ((*s2)["error"], expected);
  EXPECT_FALSE((*server_in(report, "store1"))["failed"].get<bool>());
  EXPECT_FALSE((*server_in(report, "store3"))["failed"].get<bool>());
  // The snapshot leaves store2 and its users out of planning.
  std::string servers_csv = read_text(tmp.path + "/snap/servers.csv");
  EXPECT_EQ(std::count(servers_csv.begin(), servers_csv.end(), '\n'), 3) << servers_csv;
  auto meta = nlohmann::json::parse(read_text(tmp.path + "/snap/meta.json"));
  EXPECT_EQ(meta["server_names"], nlohmann::json::array({"store1", "store3"}));
  EXPECT_THAT(meta["notes"][0].get<std::string>(), HasSubstr("server store2 left out: " + expected));

  RunResult text = run_mailshard(lab, {"inventory"}, cfg);
  EXPECT_EQ(text.rc, 1);
  EXPECT_THAT(text.out, ::testing::ContainsRegex("\nstore2  std    FAILED: " + std::string("metrics http://127\\.0\\.0\\.1:[0-9]+/metrics: GET ")));
  RunResult c = run_mailshard(lab, {"config", "check", "--connect"}, cfg);
  EXPECT_EQ(c.rc, 2);
  EXPECT_THAT(c.out, HasSubstr("\nFAIL store2 metrics: " + expected + "\n"));
}

TEST(InventoryBadInput, GarbageMetricsEndpoint) {
  Lab& lab = Lab::get();
  TempDir tmp;
  // doveadm's API answers GET with a JSON list of its commands: HTTP 200, not Prometheus text.
  const std::string port = lab.store_env("store3", "DOVEADM_PORT");
  const std::string garbage = "http://doveadm:" + lab.env("DOVEADM_PW") + "@127.0.0.1:" + port + "/doveadm/v1";
  std::string cfg = edited_config(lab, tmp.path, {{"name = \"store3\"", lab.env("NODE_EXPORTER_URL"), garbage}});
  RunResult r = run_mailshard(lab, {"--json", "inventory"}, cfg);
  EXPECT_EQ(r.rc, 1) << r.describe();
  auto report = nlohmann::json::parse(r.out);
  const auto* s3 = server_in(report, "store3");
  ASSERT_NE(s3, nullptr);
  EXPECT_TRUE((*s3)["failed"].get<bool>());
  EXPECT_EQ((*s3)["error"], "metrics http://127.0.0.1:" + port +
                                "/doveadm/v1: not Prometheus text: line 1: invalid metric name '['");
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr(lab.env("DOVEADM_PW"))));
  EXPECT_FALSE((*server_in(report, "store1"))["failed"].get<bool>());
}

TEST(InventoryBadInput, MissingMailRoot) {
  Lab& lab = Lab::get();
  TempDir tmp;
  const std::string root = lab.store_env("store3", "MAIL_ROOT");
  const std::string missing = root + "-does-not-exist";
  std::string cfg = edited_config(lab, tmp.path, {{"name = \"store3\"", "mail_root = \"" + root + "\"",
                                                   "mail_root = \"" + missing + "\""}});
  RunResult r = run_mailshard(lab, {"--json", "inventory"}, cfg);
  EXPECT_EQ(r.rc, 1) << r.describe();
  auto report = nlohmann::json::parse(r.out);
  const auto* s3 = server_in(report, "store3");
  ASSERT_NE(s3, nullptr);
  EXPECT_EQ((*s3)["error"], "mail_root '" + missing + "': No such file or directory");
  EXPECT_FALSE((*server_in(report, "store2"))["failed"].get<bool>());
  RunResult c = run_mailshard(lab, {"config", "check", "--connect"}, cfg);
  EXPECT_EQ(c.rc, 2);
  EXPECT_THAT(c.out, HasSubstr("\nFAIL store3 mail_root: '" + missing + "': No such file or directory\n"));
}

// Odd things inside one real mailbox: the user is still sized exactly like du.
TEST(InventoryBadInput, SymlinkLoopLongPathAndNonUtf8NamesInAMailbox) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  lab.deliver(user, 2, "odd");
  const std::string maildir = lab.maildir_path("store1", user);
  auto must = [](int rc, const std::string& what) { ASSERT_EQ(rc, 0) << what << ": " << std::strerror(errno); };
  must(symlink("loop", (maildir + "/loop").c_str()), "self loop");
  must(symlink("b", (maildir + "/a").c_str()), "a -> b");
  must(symlink("a", (maildir + "/b").c_str()), "b -> a");
  must(symlink("..", (maildir + "/cur/up").c_str()), "cur/up -> ..");
  // A 255-byte message name (the most ext4 allows) and a non-UTF-8 one.
  std::string long_name(255 - std::string(",S=11,W=12:2,S").size(), 'n');
  long_name += ",S=11,W=12:2,S";
  write_text(maildir + "/cur/" + long_name, "hello world");
  write_text(maildir + "/cur/1700000000.M1P1.\xff\xfe,S=5,W=6:2,", "12345");
  must(mkdir((maildir + "/.Caf\xe9").c_str(), 0755), "Latin-1 folder");
  // A directory chain deeper than PATH_MAX (4 KB), built relative to fds.
  int fd = open(maildir.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  const std::string seg(250, 'd');
  for (int i = 0; i < 18; ++i) {
    must(mkdirat(fd, seg.c_str(), 0755), "deep mkdir");
    int next = openat(fd, seg.c_str(), O_RDONLY | O_DIRECTORY);
    close(fd);
    fd = next;
    ASSERT_GE(fd, 0);
  }
  int f = openat(fd, "deep-file", O_WRONLY | O_CREAT, 0644);
  ASSERT_EQ(write(f, "xyz", 3), 3);
  close(f);
  close(fd);
  struct Cleanup {
    std::string maildir, seg;
    ~Cleanup() {
      Lab::get().run({"rm", "-rf", maildir + "/" + seg, maildir + "/loop", maildir + "/a", maildir + "/b",
                      maildir + "/cur/up", maildir + "/.Caf\xe9"});
      Lab::get().run({"find", maildir + "/cur", "-name", "nnnnn*", "-delete"});
      Lab::get().run({"find", maildir + "/cur", "-name", "1700000000.M1P1.*", "-delete"});
    }
  } cleanup{maildir, seg};

  RunResult r = run_mailshard(lab, {"--json", "inventory", "--users"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  auto report = nlohmann::json::parse(r.out);
  const nlohmann::json* found = nullptr;
  for (const auto& u : report["users"])
    if (u["user"] == user) found = &u;
  ASSERT_NE(found, nullptr);
  EXPECT_FALSE(found->contains("error")) << found->dump();
  EXPECT_EQ((*found)["size_bytes"].get<int64_t>(), du_apparent(lab, lab.home_path("store1", user)));
  EXPECT_EQ((*found)["messages"].get<int64_t>(), 4);  // 2 delivered + the long and the non-UTF-8 names
}

// Directory entries that must not be trusted are reported, skipped, and do
// not stop the inventory.
TEST(InventoryBadInput, UntrustworthyDirectoryEntriesAreReportedAndSkipped) {
  Lab& lab = Lab::get();
  const std::string people = lab.env("LDAP_PEOPLE");
  const std::string root1 = lab.store_env("store1", "MAIL_ROOT");
  struct Bad {
    std::string uid, extra_ldif, reason;
  };
  const std::string four_k(4100, 'h');
  std::vector<Bad> bad = {
      {"invbad1", "mailHost: store1\nmailMessageStore: /etc\n",
       "mailMessageStore '/etc' is outside mail_root '" + root1 + "'"},
      {"invbad2", "mailHost: store1\nmailMessageStore: ../../../etc\n", "mailMessageStore '../../../etc' contains '..'"},
      {"invbad3", "mailHost: store9\nmailMessageStore: example.org/invbad3\n", "mailHost 'store9' is not a configured server"},
      {"invbad4", "mailMessageStore: example.org/invbad4\n", "no mailHost attribute"},
      // "example.org/a<TAB>b", base64 in LDIF
      {"invbad5", "mailHost: store2\nmailMessageStore:: ZXhhbXBsZS5vcmcvYQli\n",
       "mailMessageStore 'example.org/a\\x09b' contains control characters"},
      {"invbad6", "mailHost: store2\nmailMessageStore: " + four_k + "\n",
       "mailMessageStore '" + std::string(80, 'h') + "...' is 4100 bytes long (limit 4095)"},
  };
  std::string ldif;
  for (const auto& b : bad)
    ldif += "dn: uid=" + b.uid + "," + people +
            "\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\nobjectClass: mlabMailAccount\n"
            "uid: " + b.uid + "\ncn: " + b.uid + "\nsn: bad\nmail: " + b.uid + "@example.org\n" + b.extra_ldif + "\n";
  struct Cleanup {
    std::vector<std::string> dns;
    ~Cleanup() {
      std::vector<std::string> argv = {"ldapdelete", "-x", "-c", "-H", Lab::get().env("LDAP_URI"), "-D",
                                       Lab::get().env("LDAP_ADMIN_DN"), "-w", Lab::get().env("LDAP_ADMIN_PW")};
      argv.insert(argv.end(), dns.begin(), dns.end());
      Lab::get().run(argv);
    }
  } cleanup;
  for (const auto& b : bad) cleanup.dns.push_back("uid=" + b.uid + "," + people);
  RunResult add = lab.run({"ldapadd", "-x", "-c", "-H", lab.env("LDAP_URI"), "-D", lab.env("LDAP_ADMIN_DN"), "-w",
                           lab.env("LDAP_ADMIN_PW")},
                          ldif);
  ASSERT_EQ(add.rc, 0) << add.describe();

  RunResult r = run_mailshard(lab, {"--json", "inventory", "--users"});
  ASSERT_EQ(r.rc, 0) << r.describe();  // anomalies are data problems, not a failed run
  auto report = nlohmann::json::parse(r.out);
  for (const auto& b : bad) {
    SCOPED_TRACE(b.uid);
    const std::string dn = "uid=" + b.uid + "," + people;
    int seen = 0;
    for (const auto& a : report["anomalies"])
      if (a["dn"] == dn) {
        ++seen;
        EXPECT_EQ(a["reason"], b.reason);
      }
    EXPECT_EQ(seen, 1);
    for (const auto& u : report["users"]) EXPECT_NE(u["dn"], dn);
  }
  RunResult text = run_mailshard(lab, {"inventory", "--no-sizes"});
  EXPECT_EQ(text.rc, 0) << text.describe();
  EXPECT_THAT(text.out, HasSubstr("directory entries skipped ("));
  EXPECT_THAT(text.out, HasSubstr("  uid=invbad3," + people + ": mailHost 'store9' is not a configured server\n"));
}

}  // namespace
}  // namespace mailshard::testing
