// LdapDirectory against servers that are not there or not LDAP. Everything
// that needs a real slapd is in tests/integration/inventory_*.
#include "directory/ldap_directory.h"

#include <gtest/gtest.h>

#include "tests/unit/doveadm/tiny_http_server.h"

namespace mailshard {
namespace {

Config config_for(const std::string& uri) {
  Config c;
  c.ldap.uri = uri;
  c.ldap.bind_dn = "cn=admin,dc=example,dc=org";
  c.ldap.bind_password = Secret("adminsecret");
  c.ldap.base_dn = "ou=people,dc=example,dc=org";
  c.ldap.timeout_ms = 1000;
  return c;
}

TEST(LdapDirectory, ServerDownIsUnavailable) {
  std::string uri = "ldap://127.0.0.1:" + std::to_string(testing::TinyHttpServer::closed_port());
  auto d = LdapDirectory::connect(config_for(uri));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(d.error().message(), "LDAP " + uri + ": cannot connect: Can't contact LDAP server");
  EXPECT_EQ(d.error().message().find("adminsecret"), std::string::npos);
}

TEST(LdapDirectory, BadUriIsAConfigError) {
  auto d = LdapDirectory::connect(config_for("htp://nowhere"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(d.error().message(), "LDAP htp://nowhere: bad URI: Bad parameter to an ldap routine");
}

TEST(LdapDirectory, ServerThatNeverAnswersTimesOut) {
  // Something that accepts the connection but never speaks LDAP: the bind is
  // bounded by ldap.timeout.
  testing::TinyHttpServer http([](const testing::TinyRequest&) { return testing::TinyResponse{400, "no"}; });
  std::string uri = "ldap://127.0.0.1:" + std::to_string(http.port());
  Config c = config_for(uri);
  c.ldap.timeout_ms = 300;
  auto d = LdapDirectory::connect(c);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kTimeout) << d.error().message();
  EXPECT_EQ(d.error().message(), "LDAP bind as 'cn=admin,dc=example,dc=org' to " + uri + ": Timed out");
}

}  // namespace
}  // namespace mailshard
