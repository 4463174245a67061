// The freeze value that carries its deadline, as routers read it.
#include "core/freeze_value.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

FreezeConfig with_until(bool on) {
  FreezeConfig c;
  c.until_in_value = on;
  return c;
}

TEST(FreezeValue, TheDeadlineIsAUtcSecondInTheValue) {
  const int64_t t = 1'796'434'200'123;  // 2026-12-05T01:30:00.123Z
  EXPECT_EQ(format_compact_utc(t), "20261205T013000Z");
  EXPECT_EQ(frozen_value_for(with_until(true), t), "frozen;until=20261205T013000Z");
  EXPECT_EQ(frozen_value_for(with_until(false), t), "frozen");
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
