// mailshard talks TLS to the lab's slapd (ldaps:// and StartTLS) and to a
// node exporter (https://) with a CA the lab made; certificate checks are on:
// a wrong CA or a host name the certificate does not carry fails with a
// one-line error that says what to check, and a dead ldaps:// port is still
// "cannot connect".
#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

// The lab's config with [ldap] uri (and ca_file, starttls) replaced.
std::string tls_config(const std::string& name, const std::string& uri, const std::string& ca_file,
                       bool starttls = false) {
  std::string ldap = "uri = \"" + uri + "\"\nca_file = \"" + ca_file + "\"";
  if (starttls) ldap += "\nstarttls = true";
  return lab_config(name, {{"uri = \"ldap://[^\"]*\"", ldap}});
}

TEST(Tls, LdapLdapsAndStartTlsWithTheLabCa) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  const std::string ca = lab.env("LAB_CA_FILE");
  for (const auto& [name, cfg] :
       {std::pair{"ldaps", tls_config("tls-ldaps", lab.env("LDAPS_URI"), ca)},
        std::pair{"starttls", tls_config("tls-starttls", lab.env("LDAP_URI"), ca, true)}}) {
    SCOPED_TRACE(name);
    RunResult c = mailshard(cfg, {"config", "check", "--connect"});
    EXPECT_EQ(c.rc, 0) << c.describe();
    EXPECT_THAT(c.out, HasSubstr("ok   ldap: bound as 'cn=mailshard,dc=example,dc=org'"));
    // A real read through TLS: the inventory finds the user on store1.
    RunResult inv = mailshard(cfg, {"--json", "inventory"});
    ASSERT_EQ(inv.rc, 0) << inv.describe();
    EXPECT_THAT(inv.out, HasSubstr("store1"));
  }
}

TEST(Tls, LdapWrongCaWrongHostAndDeadPortAreClearErrors) {
  Lab& lab = Lab::get();
  const std::string other = lab.env("LAB_OTHER_CA_FILE"), ca = lab.env("LAB_CA_FILE");
  const std::string ldaps = lab.env("LDAPS_URI");
  const std::string localhost = "ldaps://localhost:" + lab.env("LDAPS_PORT");
  struct Case {
    std::string name, cfg, expected;
  };
  std::vector<Case> cases = {
      {"wrong CA", tls_config("tls-wrong-ca", ldaps, other),
       "mailshard: inventory: LDAP " + ldaps +
           ": TLS: the server's certificate was not accepted (check ldap.ca_file '" + other +
           "' and that the certificate names the host of ldap.uri)\n"},
      {"StartTLS, wrong CA", tls_config("tls-starttls-wrong-ca", lab.env("LDAP_URI"), other, true),
       "mailshard: inventory: LDAP " + lab.env("LDAP_URI") +
           ": TLS: the server's certificate was not accepted (check ldap.ca_file '" + other +
           "' and that the certificate names the host of ldap.uri)\n"},
      // The certificate names 127.0.0.1 only.
      {"wrong host", tls_config("tls-wrong-host", localhost, ca),
       "mailshard: inventory: LDAP " + localhost +
           ": TLS: the server's certificate was not accepted (check ldap.ca_file '" + ca +
           "' and that the certificate names the host of ldap.uri)\n"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RunResult r = mailshard(c.cfg, {"inventory"});
    EXPECT_EQ(r.rc, 1) << r.describe();
    EXPECT_EQ(r.err, c.expected);
  }
  // Nothing listens there: not a certificate problem.
  const std::string dead = "ldaps://127.0.0.1:" + std::to_string(std::stoi(lab.env("LDAPS_PORT")) + 1);
  RunResult d = mailshard(tls_config("tls-dead", dead, ca), {"inventory"});
  EXPECT_EQ(d.rc, 1) << d.describe();
  EXPECT_EQ(d.err, "mailshard: inventory: LDAP " + dead + ": cannot connect: Can't contact LDAP server\n");
}

// The lab's config with store1's metrics_url (and ca_file) replaced.
std::string https_config(const std::string& name, const std::string& url, const std::string& ca_file) {
  Lab& lab = Lab::get();
  return lab_config(name, {{"(mail_root = \"" + lab.store_env("store1", "MAIL_ROOT") + "\"[^\\n]*\\n(?:[^\\n]*\\n)*?)metrics_url = \"[^\"]*\"",
                            "$1metrics_url = \"" + url + "\"\nca_file = \"" + ca_file + "\""}});
}

TEST(Tls, HttpsMetricsWithTheLabCaAndClearErrorsOtherwise) {
  Lab& lab = Lab::get();
  lab.add_user("store1");
  const std::string url = lab.env("NODE_EXPORTER_TLS_URL"), ca = lab.env("LAB_CA_FILE");
  const std::string ok_cfg = https_config("https-ok", url, ca);
  ASSERT_EQ(lab.run({"grep", "-c", "ca_file = \"" + ca + "\"", ok_cfg}).out, "1\n") << "the config edit did not apply";
  RunResult ok = mailshard(ok_cfg, {"config", "check", "--connect"});
  EXPECT_EQ(ok.rc, 0) << ok.describe();
  EXPECT_THAT(ok.out, HasSubstr("ok   store1 metrics: " + url + ": filesystem '"));

  const std::string other = lab.env("LAB_OTHER_CA_FILE");
  const std::string localhost = "https://localhost:" + url.substr(url.rfind(':') + 1);
  const std::string refused = ": TLS certificate not accepted: SSL peer certificate or SSH remote key was not OK";
  struct Case {
    std::string name, cfg, expected;
  };
  for (const Case& c : std::vector<Case>{
           {"wrong CA", https_config("https-wrong-ca", url, other),
            "FAIL store1 metrics: metrics " + url + ": GET " + url + refused + " (check the server's ca_file '" + other +
                "')\n"},
           {"wrong host", https_config("https-wrong-host", localhost, ca),
            "FAIL store1 metrics: metrics " + localhost + ": GET " + localhost + refused +
                " (check the server's ca_file '" + ca + "')\n"},
           {"system CAs", https_config("https-system-cas", url, ""),
            "FAIL store1 metrics: metrics " + url + ": GET " + url + refused +
                " (check the server's ca_file, unset: the system CAs)\n"}}) {
    SCOPED_TRACE(c.name);
    RunResult r = mailshard(c.cfg, {"config", "check", "--connect"});
    EXPECT_EQ(r.rc, 2) << r.describe();
    EXPECT_THAT(r.out, HasSubstr(c.expected));
  }
}

}  // namespace
}  // namespace mailshard::testing
