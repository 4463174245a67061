// LdapDirectory against the lab's slapd: paging past the server's 500-entry
// size limit, RFC 4515 escaping in lookups, and the flip and attribute writes
// as compare-and-swaps with the Assertion control (RFC 4528).
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config_loader.h"
#include "directory/ldap_directory.h"
#include "tests/integration/inventory_test_util.h"
#include "tests/support/lab.h"

namespace mailshard::testing {
namespace {

Config lab_config(const std::string& path = {}) {
  Lab& lab = Lab::get();
  auto c = load_config(path.empty() ? lab.env("MAILSHARD_CONFIG") : path, [](const std::string&) {
    return std::optional<std::string>();
  });
  if (!c.ok()) throw LabError(c.error().message());
  return *c;
}

std::unique_ptr<LdapDirectory> connect(const Config& c) {
  auto d = LdapDirectory::connect(c);
  if (!d.ok()) throw LabError(d.error().message());
  return std::move(*d);
}

int64_t count_accounts(Directory& d, std::vector<DirectoryAnomaly>* anomalies) {
  int64_t n = 0;
  auto st = d.for_each_account(
      [&](Account&&) -> Status {
        ++n;
        return {};
      },
      anomalies);
  EXPECT_TRUE(st.ok()) << st.error().message();
  return n;
}

TEST(LdapDirectoryLab, PagingReadsPastTheServerSizeLimit) {
  Lab& lab = Lab::get();
  lab.populate(1000);
  const int64_t in_ldap = static_cast<int64_t>(ldap_accounts(lab).size());
  ASSERT_GT(in_ldap, 500);
  // Anonymous binds get slapd's 500-entry size limit; only paging gets past it.
  Config c = lab_config();
  c.ldap.bind_dn.clear();
  c.ldap.bind_password = Secret();
  for (int page_size : {500, 7}) {
    SCOPED_TRACE(page_size);
    c.ldap.page_size = page_size;
    auto d = connect(c);
    std::vector<DirectoryAnomaly> anomalies;
    EXPECT_EQ(count_accounts(*d, &anomalies) + static_cast<int64_t>(anomalies.size()), in_ldap);
  }
}

TEST(LdapDirectoryLab, FindAccountEscapesTheValue) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store3");
  auto d = connect(lab_config());
  auto a = d->find_account(user);
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(a->host, "store3");
  EXPECT_EQ(a->dn, lab.user_dn(user));
  EXPECT_EQ(a->home, lab.ldap_get(user, "mailMessageStore"));
  EXPECT_EQ(a->status, "active");
  // Unescaped, this value would match every account.
  auto inj = d->find_account("x)(|(mail=*)");
  ASSERT_FALSE(inj.ok());
  EXPECT_EQ(inj.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(inj.error().message(), "no account with mail=x)(|(mail=*)");
  auto star = d->find_account("*");
  ASSERT_FALSE(star.ok());
  EXPECT_EQ(star.error().message(), "no account with mail=*");
}

TEST(LdapDirectoryLab, FlipIsACompareAndSwap) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  const std::string dn = lab.user_dn(user);
  const std::string home = *lab.ldap_get(user, "mailMessageStore");
  auto d = connect(lab_config());

  ASSERT_TRUE(d->flip(dn, {"store1", home, ""}, "store2", std::nullopt).ok());
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
  // The same flip again (a retry after a lost reply) is a success, not a conflict.
  auto again = d->flip(dn, {"store1", home, ""}, "store2", std::nullopt);
  EXPECT_TRUE(again.ok()) << again.error().message();
  // A flip from a state that no longer holds changes nothing.
  auto stale = d->flip(dn, {"store1", home, ""}, "store3", std::nullopt);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(stale.error().message(), "entry changed underneath us: '" + dn + "' was expected to hold mailHost=store1 "
                                         "mailMessageStore=" + home + " but holds mailHost=store2 mailMessageStore=" + home);
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");

  // Host and home in one modify.
  ASSERT_TRUE(d->flip(dn, {"store2", home, ""}, "store3", home + "-moved").ok());
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store3");
  EXPECT_EQ(lab.ldap_get(user, "mailMessageStore"), home + "-moved");
}

TEST(LdapDirectoryLab, FlipCanAlsoAssertTheFreeze) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  const std::string dn = lab.user_dn(user);
  const std::string home = *lab.ldap_get(user, "mailMessageStore");
  auto d = connect(lab_config());
  const FlipExpectation frozen_on_store1{"store1", home, "(mailAccountStatus=frozen)"};

  auto not_frozen = d->flip(dn, frozen_on_store1, "store2", std::nullopt);
  ASSERT_FALSE(not_frozen.ok());
  EXPECT_EQ(not_frozen.error().code(), ErrorCode::kConflict);
  EXPECT_THAT(not_frozen.error().message(), ::testing::HasSubstr(" and match (mailAccountStatus=frozen) but holds "));
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");

  ASSERT_TRUE(d->set_attribute(dn, "mailAccountStatus", "frozen", "(mailAccountStatus=active)").ok());
  // Idempotent: already frozen, so the failed assertion is not a conflict.
  auto refreeze = d->set_attribute(dn, "mailAccountStatus", "frozen", "(mailAccountStatus=active)");
  EXPECT_TRUE(refreeze.ok()) << refreeze.error().message();
  auto status = d->get_attribute(dn, "mailAccountStatus");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, std::optional<std::string>("frozen"));

  ASSERT_TRUE(d->flip(dn, frozen_on_store1, "store2", std::nullopt).ok());
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
  // Someone else thawed and refroze meanwhile: a write asserting the old value conflicts.
  auto wrong = d->set_attribute(dn, "mailAccountStatus", "disabled", "(mailAccountStatus=active)");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(wrong.error().message(), "entry changed underneath us: '" + dn + "' does not match (mailAccountStatus=active)");
  ASSERT_TRUE(d->set_attribute(dn, "mailAccountStatus", "active", std::nullopt).ok());
  auto absent = d->get_attribute(dn, "description");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
}

TEST(LdapDirectoryLab, WritesReportMissingEntriesAndMissingRights) {
  Lab& lab = Lab::get();
  auto admin = connect(lab_config());
  const std::string nobody = "uid=nobody-here," + lab.env("LDAP_PEOPLE");
  auto missing = admin->set_attribute(nobody, "mailAccountStatus", "frozen", std::nullopt);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message(), "LDAP modify '" + nobody + "': No such object");
  auto get = admin->get_attribute(nobody, "mailHost");
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.error().code(), ErrorCode::kNotFound);

  // The reader may read everything but write nothing.
  const std::string user = lab.add_user("store1");
  Config c = lab_config();
  c.ldap.bind_dn = lab.env("LDAP_READER_DN");
  c.ldap.bind_password = Secret(lab.env("LDAP_READER_PW"));
  auto reader = connect(c);
  const std::string home = *lab.ldap_get(user, "mailMessageStore");
  auto denied = reader->flip(lab.user_dn(user), {"store1", home, ""}, "store2", std::nullopt);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code(), ErrorCode::kPermission);
  EXPECT_EQ(denied.error().message(), "LDAP modify '" + lab.user_dn(user) + "': Insufficient access");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
}

}  // namespace
}  // namespace mailshard::testing
