#include "util/duration.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

TEST(Duration, Parse) {
  EXPECT_EQ(*parse_duration_ms("30s"), 30'000);
  EXPECT_EQ(*parse_duration_ms("10m"), 600'000);
  EXPECT_EQ(*parse_duration_ms("1h30m"), 5'400'000);
  EXPECT_EQ(*parse_duration_ms("7d"), 604'800'000);
  EXPECT_EQ(*parse_duration_ms("500ms"), 500);
  EXPECT_EQ(*parse_duration_ms("45"), 45'000);
}

TEST(Duration, RejectsGarbageWithExample) {
  auto r = parse_duration_ms("10 minutes-ish");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "not a duration: '10 minutes-ish' (examples: 30s, 10m, 1h30m, 7d, 500ms)");
  EXPECT_FALSE(parse_duration_ms("").ok());
  EXPECT_FALSE(parse_duration_ms("5m3").ok());
  EXPECT_FALSE(parse_duration_ms("-5s").ok());
}

TEST(Duration, Format) {
  EXPECT_EQ(format_duration_ms(120), "120ms");
  EXPECT_EQ(format_duration_ms(2500), "2.5s");
  EXPECT_EQ(format_duration_ms(5'400'000), "1h30m");
  EXPECT_EQ(format_duration_ms(90'000), "1m30s");
}

// "99999999999999999999d" overflowed int64 through a double (llround of 8.6e27).
TEST(Duration, HugeOrOverflowingIsRefused) {
  EXPECT_EQ(parse_duration_ms("99999999999999999999d").error().message(),
            "duration too long: '99999999999999999999d' (at most 100 years)");
  EXPECT_EQ(parse_duration_ms("36526d").error().message(), "duration too long: '36526d' (at most 100 years)");
  EXPECT_EQ(parse_duration_ms("36000d1000d").error().message(), "duration too long: '36000d1000d' (at most 100 years)");
  EXPECT_EQ(*parse_duration_ms("36525d"), 36'525ll * 86'400'000);
  EXPECT_EQ(*parse_duration_ms("1.5s"), 1'500);
}

}  // namespace
}  // namespace mailshard

namespace mailshard {
namespace {

TEST(Deadline, ADurationCountsFromNow) {
  EXPECT_EQ(*parse_deadline_ms("5h", 1'000), 1'000 + 5 * 3'600'000);
  EXPECT_EQ(*parse_deadline_ms("90m", 0), 90 * 60'000);
}

TEST(Deadline, AClockTimeIsTheNextSuchLocalTime) {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  const int64_t day = 86'400'000;
  const int64_t midnight = 20'000 * day;  // a UTC midnight
  // 01:00 now: 05:30 is later today; 00:30 is tomorrow.
  EXPECT_EQ(*parse_deadline_ms("05:30", midnight + 3'600'000), midnight + 5 * 3'600'000 + 30 * 60'000);
  EXPECT_EQ(*parse_deadline_ms("00:30", midnight + 3'600'000), midnight + day + 30 * 60'000);
  EXPECT_EQ(*parse_deadline_ms("1:00", midnight + 3'600'000), midnight + day + 3'600'000) << "now is not the next";
}

TEST(Deadline, NonsenseIsRefusedWithTheText) {
  for (const char* bad : {"25:00", "05:3", "05:60", "x:10", ":", "05:30pm", "soon"}) {
    auto r = parse_deadline_ms(bad, 0);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message().find(bad), std::string::npos) << r.error().message();
  }
}

}  // namespace
}  // namespace mailshard
