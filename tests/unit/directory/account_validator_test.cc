#include "directory/account_validator.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

class AccountValidatorTest : public ::testing::Test {
 protected:
  AccountValidatorTest() : validator_(ldap(), servers(), "mailAccountStatus") {}

  static LdapConfig ldap() {
    LdapConfig l;
    l.activity_attribute = "mlabActivity";
    return l;
  }
  static std::vector<ServerConfig> servers() {
    ServerConfig a, b;
    a.name = "store1";
    a.mail_root = "/srv/mail1";
    b.name = "store2";
    b.mail_root = "/srv/mail2";
    return {a, b};
  }
  static RawEntry entry() {
    RawEntry e;
    e.dn = "uid=alice,ou=people,dc=example,dc=org";
    e.user = {"alice@example.org"};
    e.host = {"store1"};
    e.home = {"example.org/alice"};
    e.status = {"active"};
    e.activity = {"2.5"};
    return e;
  }
  std::string reason(RawEntry e) {
    auto r = validator_.validate(std::move(e));
    return r.ok() ? "(accepted)" : r.error().message();
  }

  AccountValidator validator_;
};

TEST_F(AccountValidatorTest, AcceptsACleanEntry) {
  auto r = validator_.validate(entry());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->dn, "uid=alice,ou=people,dc=example,dc=org");
  EXPECT_EQ(r->user, "alice@example.org");
  EXPECT_EQ(r->host, "store1");
  EXPECT_EQ(r->home, "example.org/alice");
  EXPECT_EQ(r->home_rel, "example.org/alice");
  EXPECT_EQ(r->status, "active");
  EXPECT_DOUBLE_EQ(r->activity, 2.5);
}

TEST_F(AccountValidatorTest, MissingAttributes) {
  auto e = entry();
  e.host.clear();
  EXPECT_EQ(reason(e), "no mailHost attribute");
  e = entry();
  e.home.clear();
  EXPECT_EQ(reason(e), "no mailMessageStore attribute");
  e = entry();
  e.user.clear();
  EXPECT_EQ(reason(e), "no mail attribute");
}

TEST_F(AccountValidatorTest, UnknownServer) {
  auto e = entry();
  e.host = {"store9"};
  EXPECT_EQ(reason(e), "mailHost 'store9' is not a configured server");
}

TEST_F(AccountValidatorTest, SeveralHostsOrHomesAreAmbiguous) {
  auto e = entry();
  e.host = {"store1", "store2"};
  EXPECT_EQ(reason(e), "2 values for mailHost (expected one)");
  e = entry();
  e.home = {"a", "b"};
  EXPECT_EQ(reason(e), "2 values for mailMessageStore (expected one)");
  e = entry();
  e.user = {"alice@example.org", "a@example.org"};  // aliases: the first names the account
  EXPECT_EQ(reason(e), "(accepted)");
}

TEST_F(AccountValidatorTest, HomeWithDotDot) {
  auto e = entry();
  e.home = {"../../etc"};
  EXPECT_EQ(reason(e), "mailMessageStore '../../etc' contains '..'");
  e.home = {"example.org/alice/../bob"};
  EXPECT_EQ(reason(e), "mailMessageStore 'example.org/alice/../bob' contains '..'");
  e.home = {"/srv/mail1/../mail2/bob"};
  EXPECT_EQ(reason(e), "mailMessageStore '/srv/mail1/../mail2/bob' contains '..'");
  e.home = {"example.org/al..ice"};  // ".." inside a name is just a name
  EXPECT_EQ(reason(e), "(accepted)");
}

TEST_F(AccountValidatorTest, AbsoluteHomeOutsideTheRoot) {
  auto e = entry();
  e.home = {"/etc/shadow"};
  EXPECT_EQ(reason(e), "mailMessageStore '/etc/shadow' is outside mail_root '/srv/mail1'");
  e.home = {"/srv/mail2/example.org/alice"};  // another server's root
  EXPECT_EQ(reason(e), "mailMessageStore '/srv/mail2/example.org/alice' is outside mail_root '/srv/mail1'");
  e.home = {"/srv/mail1x/alice"};
  EXPECT_EQ(reason(e), "mailMessageStore '/srv/mail1x/alice' is outside mail_root '/srv/mail1'");
  e.home = {"/srv/mail1"};
  EXPECT_EQ(reason(e), "mailMessageStore '/srv/mail1' is the mail_root itself");
}

TEST_F(AccountValidatorTest, AbsoluteHomeInsideTheRootIsMadeRelative) {
  auto e = entry();
  e.home = {"/srv/mail1//example.org/./alice/"};
  auto r = validator_.validate(std::move(e));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->home, "/srv/mail1//example.org/./alice/");
  EXPECT_EQ(r->home_rel, "example.org/alice");
}

TEST_F(AccountValidatorTest, EmptyHomeNamesTheRoot) {
  auto e = entry();
  e.home = {"."};
  EXPECT_EQ(reason(e), "mailMessageStore '.' names the mail_root itself");
  e.home = {""};
  EXPECT_EQ(reason(e), "mailMessageStore '' names the mail_root itself");
}

TEST_F(AccountValidatorTest, NonUtf8AndControlCharacters) {
  auto e = entry();
  e.home = {"example.org/\xff\xfe"};
  EXPECT_EQ(reason(e), "mailMessageStore 'example.org/\\xff\\xfe' is not valid UTF-8");
  e = entry();
  e.user = {"ali\nce"};
  EXPECT_EQ(reason(e), "mail 'ali\\x0ace' contains control characters");
  e = entry();
  e.host = {"store1\r"};
  EXPECT_EQ(reason(e), "mailHost 'store1\\x0d' contains control characters");
  e = entry();
  e.home = {"example.org/J\xc3\xbcrgen"};  // valid UTF-8 is fine
  EXPECT_EQ(reason(e), "(accepted)");
}

TEST_F(AccountValidatorTest, FourKilobyteHome) {
  auto e = entry();
  e.home = {std::string(4100, 'a')};
  EXPECT_EQ(reason(e), "mailMessageStore '" + std::string(80, 'a') + "...' is 4100 bytes long (limit 4095)");
}

TEST_F(AccountValidatorTest, BadActivityCountsAsUnknown) {
  auto e = entry();
  e.activity = {"often"};
  auto r = validator_.validate(std::move(e));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->activity, 0);
  e = entry();
  e.activity = {"-3"};
  r = validator_.validate(std::move(e));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->activity, 0);
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
}

}  // namespace
}  // namespace mailshard
