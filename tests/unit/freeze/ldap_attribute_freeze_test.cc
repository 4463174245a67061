// The ldap-attribute freeze against a directory that honours its assertions:
// two controllers (two moves, each with its own owner) never take over or
// lift each other's freeze, and an operator's value is never overridden.
#include "freeze/ldap_attribute_freeze.h"

#include <gtest/gtest.h>

#include "core/freeze_value.h"
#include "tests/support/fakes.h"

namespace mailshard {
namespace {

using testing::FakeDirectory;

constexpr int64_t kUntil = 1'796'434'200'000;  // 2026-12-05T01:30:00Z

class LdapAttributeFreezeTest : public ::testing::Test {
 protected:
  LdapAttributeFreezeTest() {
    dir_.accounts.push_back(Account{"uid=alice,ou=people", "alice", "store1", "/m/alice", "example.org/alice", "active"});
  }
  std::string& status() { return dir_.account("alice").status; }
  FreezeTarget move(const std::string& owner) { return {"alice", "uid=alice,ou=people", owner}; }

  FreezeConfig config_;
  FakeDirectory dir_;
  LdapAttributeFreeze freeze_{config_, dir_};
};

TEST_F(LdapAttributeFreezeTest, AMoveFreezesRefreshesAndThawsItsOwnFreeze) {
  ASSERT_TRUE(freeze_.freeze(move("7.aaaa"), kUntil).ok());
  EXPECT_EQ(status(), "frozen;move=7.aaaa");
  EXPECT_EQ(freeze_.flip_assertion(move("7.aaaa"), kUntil), "(mailAccountStatus=frozen;move=7.aaaa)");
  ASSERT_TRUE(freeze_.freeze(move("7.aaaa"), kUntil + 1000).ok()) << "a refresh (resume) of its own freeze";
  ASSERT_TRUE(freeze_.thaw(move("7.aaaa")).ok());
  EXPECT_EQ(status(), "active");
  EXPECT_TRUE(freeze_.thaw(move("7.aaaa")).ok()) << "thawing an active user succeeds (idempotent)";
  EXPECT_EQ(status(), "active");
}

TEST_F(LdapAttributeFreezeTest, AnotherMoveNeitherTakesOverNorLiftsTheFreeze) {
  ASSERT_TRUE(freeze_.freeze(move("7.aaaa"), kUntil).ok());
  // Controller B's move 7 on its own journal: same id, another owner.
  auto taken = freeze_.freeze(move("7.bbbb"), kUntil);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code(), ErrorCode::kConflict);
  EXPECT_NE(taken.error().message().find("frozen by move 7.aaaa"), std::string::npos) << taken.error().message();
  EXPECT_TRUE(freeze_.thaw(move("7.bbbb")).ok()) << "not B's to lift: left as it is, not an error";
  EXPECT_EQ(status(), "frozen;move=7.aaaa");
  // And B's flip could not pass its assertion: it names B's own freeze.
  EXPECT_NE(freeze_.flip_assertion(move("7.bbbb"), kUntil), "(mailAccountStatus=" + status() + ")");
}

TEST_F(LdapAttributeFreezeTest, AnOperatorsValueIsNeverOverridden) {
  status() = "disabled";
  auto st = freeze_.freeze(move("1.a"), kUntil);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  EXPECT_NE(st.error().message().find("'disabled', not 'active'"), std::string::npos) << st.error().message();
  EXPECT_TRUE(freeze_.thaw(move("1.a")).ok());
  EXPECT_EQ(status(), "disabled");
  // A plain "frozen" (an operator, or a mailshard that writes no owners) is
  // not refreshed by a move that names itself ...
  status() = "frozen";
  EXPECT_FALSE(freeze_.freeze(move("1.a"), kUntil).ok());
  EXPECT_EQ(status(), "frozen");
  // ... but is lifted by its thaw, as before owners (a move journaled by an
  // older mailshard resumes with no owner and must not leave its user frozen).
  EXPECT_TRUE(freeze_.thaw(move("")).ok());
  EXPECT_EQ(status(), "active");
}

TEST_F(LdapAttributeFreezeTest, AnAbsentAttributeIsFrozenAndAMissingEntryIsAnError) {
  status() = "";
  ASSERT_TRUE(freeze_.freeze(move("2.b"), kUntil).ok());
  EXPECT_EQ(status(), "frozen;move=2.b");
  auto gone = freeze_.freeze({"bob", "uid=bob,ou=people", "3.c"}, kUntil);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(gone.error().message().find("freeze bob"), std::string::npos) << gone.error().message();
}

TEST_F(LdapAttributeFreezeTest, WithTheDeadlineInTheValueTheOwnerComesFirst) {
  config_.until_in_value = true;
  ASSERT_TRUE(freeze_.freeze(move("5.e"), kUntil).ok());
  EXPECT_EQ(status(), "frozen;move=5.e;until=20261205T013000Z");
  ASSERT_TRUE(freeze_.freeze(move("5.e"), kUntil + 60'000).ok());
  EXPECT_EQ(status(), "frozen;move=5.e;until=20261205T013100Z");
  EXPECT_FALSE(freeze_.freeze(move("6.f"), kUntil).ok());
  ASSERT_TRUE(freeze_.thaw(move("5.e")).ok());
  EXPECT_EQ(status(), "active");
}

TEST_F(LdapAttributeFreezeTest, WithoutOwnersTheValueIsPlainAsBefore) {
  config_.owner_in_value = false;
  ASSERT_TRUE(freeze_.freeze(move("5.e"), kUntil).ok());
  EXPECT_EQ(status(), "frozen");
  EXPECT_EQ(freeze_.flip_assertion(move("5.e"), kUntil), "(mailAccountStatus=frozen)");
  ASSERT_TRUE(freeze_.freeze(move("9.z"), kUntil).ok()) << "no owners: any move refreshes, as before";
  ASSERT_TRUE(freeze_.thaw(move("9.z")).ok());
  EXPECT_EQ(status(), "active");
}

}  // namespace
}  // namespace mailshard
