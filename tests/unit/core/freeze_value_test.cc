// The freeze value that carries its deadline, as routers read it.
#include "core/freeze_value.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

FreezeConfig with_until(bool on, bool owner = true) {
  FreezeConfig c;
  c.until_in_value = on;
  c.owner_in_value = owner;
  return c;
}

TEST(FreezeValue, TheDeadlineIsAUtcSecondInTheValue) {
  const int64_t t = 1'796'434'200'123;  // 2026-12-05T01:30:00.123Z
  EXPECT_EQ(format_compact_utc(t), "20261205T013000Z");
  EXPECT_EQ(frozen_value_for(with_until(true), t, ""), "frozen;until=20261205T013000Z");
  EXPECT_EQ(frozen_value_for(with_until(false), t, ""), "frozen");
  EXPECT_EQ(parse_compact_utc("20261205T013000Z"), t - 123);
}

TEST(FreezeValue, ARouterLetsTheUserInOnceTheDeadlinePassed) {
  FreezeConfig c = with_until(true);
  const int64_t until = parse_compact_utc("20261205T013000Z");
  auto before = read_freeze_value(c, "frozen;until=20261205T013000Z", until - 1);
  EXPECT_EQ(before.state, FreezeState::kFrozen);
  EXPECT_EQ(before.until_ms, until);
  EXPECT_EQ(read_freeze_value(c, "frozen;until=20261205T013000Z", until).state, FreezeState::kExpired);
  EXPECT_EQ(read_freeze_value(c, "frozen", until).state, FreezeState::kFrozen) << "no deadline: the guard lifts it";
  EXPECT_EQ(read_freeze_value(c, "active", until).state, FreezeState::kNotFrozen);
  EXPECT_EQ(read_freeze_value(c, "disabled", until).state, FreezeState::kNotFrozen);
  EXPECT_EQ(read_freeze_value(c, "", until).state, FreezeState::kNotFrozen);
  EXPECT_EQ(read_freeze_value(c, "frozenish", until).state, FreezeState::kNotFrozen);
}

TEST(FreezeValue, TheValueNamesTheMoveThatFroze) {
  const int64_t t = 1'796'434'200'000;  // 2026-12-05T01:30:00Z
  EXPECT_EQ(frozen_value_for(with_until(false), t, "42.9f3a1c2b"), "frozen;move=42.9f3a1c2b");
  EXPECT_EQ(frozen_value_for(with_until(true), t, "42.9f3a1c2b"), "frozen;move=42.9f3a1c2b;until=20261205T013000Z");
  EXPECT_EQ(frozen_value_for(with_until(true, false), t, "42.9f3a1c2b"), "frozen;until=20261205T013000Z");
  EXPECT_EQ(frozen_value_for(with_until(false), t, ""), "frozen") << "a move journaled before owners";

  auto v = read_freeze_value(with_until(true), "frozen;move=42.9f3a1c2b;until=20261205T013000Z", t - 1);
  EXPECT_EQ(v.state, FreezeState::kFrozen);
  EXPECT_EQ(v.owner, "42.9f3a1c2b");
  EXPECT_EQ(v.until_ms, t);
  EXPECT_EQ(read_freeze_value(with_until(true), "frozen;move=42.9f3a1c2b;until=20261205T013000Z", t).state,
            FreezeState::kExpired);
  // Read whatever the configuration: another controller may write owners.
  auto plain = read_freeze_value(with_until(false, false), "frozen;move=7.1", t);
  EXPECT_EQ(plain.state, FreezeState::kFrozen);
  EXPECT_EQ(plain.owner, "7.1");
  EXPECT_EQ(read_freeze_value(with_until(false), "frozen", t).owner, "");
}

TEST(FreezeValue, AFieldItDoesNotKnowIsFrozenForGood) {
  const int64_t t = 1'796'434'200'000;
  for (const char* odd : {"frozen;colour=blue", "frozen;", "frozen;;", "frozen;until=20261205T013000Z;x=1"}) {
    auto v = read_freeze_value(with_until(true), odd, t + 1'000'000);
    EXPECT_EQ(v.state, FreezeState::kFrozen) << odd << ": a router must never let a user in by mistake";
  }
  auto bad = read_freeze_value(with_until(true), "frozen;until=soon;move=1.a", t);
  EXPECT_TRUE(bad.bad_deadline);
  EXPECT_EQ(bad.owner, "1.a");
}

TEST(FreezeValue, OwnersAreShortPlainAndDifferPerMove) {
  EXPECT_TRUE(valid_freeze_owner("42.9f3a1c2b"));
  EXPECT_FALSE(valid_freeze_owner(""));
  EXPECT_FALSE(valid_freeze_owner("4;2"));
  EXPECT_FALSE(valid_freeze_owner("a)(b"));
  EXPECT_FALSE(valid_freeze_owner(std::string(65, 'a')));
  std::string a = freeze_owner_for(42), b = freeze_owner_for(42);
  EXPECT_TRUE(valid_freeze_owner(a)) << a;
  EXPECT_EQ(a.rfind("42.", 0), 0u) << a;
  EXPECT_EQ(a.size(), 11u) << a;
  EXPECT_NE(a, b) << "two journals' move 42 must not share an owner";
}

TEST(FreezeValue, ADeadlineThatDoesNotParseIsFrozen) {
  FreezeConfig c = with_until(true);
  for (const char* bad : {"frozen;until=", "frozen;until=tomorrow", "frozen;until=20261305T013000Z",
                          "frozen;until=20260231T013000Z", "frozen;until=20261205T013000", "frozen;until=2026-12-05T01:30:00Z"}) {
    auto v = read_freeze_value(c, bad, 4'000'000'000'000);
    EXPECT_EQ(v.state, FreezeState::kFrozen) << bad;
    EXPECT_TRUE(v.bad_deadline) << bad;
  }
}

}  // namespace
}  // namespace mailshard
