#include "directory/ldap_filter.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

TEST(LdapFilter, EscapesTheRfc4515Specials) {
  EXPECT_EQ(escape_filter_value("a*b(c)d\\e"), "a\\2ab\\28c\\29d\\5ce");
  EXPECT_EQ(escape_filter_value(std::string("nul\0end", 7)), "nul\\00end");
}

TEST(LdapFilter, PlainValuesAreUnchanged) {
  EXPECT_EQ(escape_filter_value("user00001@example.org"), "user00001@example.org");
  EXPECT_EQ(escape_filter_value(""), "");
}

TEST(LdapFilter, ControlAndNonAsciiBytesAreEscaped) {
  EXPECT_EQ(escape_filter_value("a\nb\x7f"), "a\\0ab\\7f");
  EXPECT_EQ(escape_filter_value("J\xc3\xbcrgen"), "J\\c3\\bcrgen");  // UTF-8 is escaped byte by byte
  EXPECT_EQ(escape_filter_value("\xff"), "\\ff");
}

TEST(LdapFilter, AnInjectionAttemptStaysOneValue) {
  // Without escaping this would widen (mail=x)(|(mail=*)) to every entry.
  EXPECT_EQ(equality_filter("mail", "x)(|(mail=*)"), "(mail=x\\29\\28|\\28mail=\\2a\\29)");
}

}  // namespace
}  // namespace mailshard
