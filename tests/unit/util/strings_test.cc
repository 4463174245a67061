#include "util/strings.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

TEST(Strings, SplitTrimJoin) {
  EXPECT_EQ(split("a,b,,c", ','), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(trim("  x y \n"), "x y");
  EXPECT_EQ(join({"a", "b"}, ", "), "a, b");
}

TEST(Strings, ClosestMatchSuggestsTyposOnly) {
  std::vector<std::string> keys = {"bind_password_file", "bind_dn", "base_dn", "uri"};
  EXPECT_EQ(closest_match("bind_pasword_file", keys), "bind_password_file");
  EXPECT_EQ(closest_match("bsae_dn", keys), "base_dn");
  EXPECT_EQ(closest_match("completely_different", keys), "");
}

TEST(Strings, ParseBytes) {
  EXPECT_EQ(*parse_bytes("123"), 123);
  EXPECT_EQ(*parse_bytes("1KiB"), 1024);
  EXPECT_EQ(*parse_bytes("1.5G"), 1610612736);
  EXPECT_EQ(*parse_bytes("2 TiB"), 2199023255552);
  EXPECT_FALSE(parse_bytes("12 parsecs").ok());
  EXPECT_FALSE(parse_bytes("-5").ok());
  EXPECT_EQ(parse_bytes("1XB").error().message(), "unknown byte unit in '1XB' (use B, KiB, MiB, GiB, TiB)");
}

TEST(Strings, HumanBytes) {
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(10737418240), "10.0 GiB");
}

TEST(Strings, PrintableEscapesAndCuts) {
  EXPECT_EQ(printable("ok name"), "ok name");
  EXPECT_EQ(printable(std::string("a\nb\xff", 4)), "a\\x0ab\\xff");
  std::string huge(4096, 'x');
  std::string p = printable(huge, 10);
  EXPECT_EQ(p, "xxxxxxxxxx...");
}

TEST(Strings, ParseNumbersStrictly) {
  EXPECT_EQ(*parse_int(" 42 "), 42);
  EXPECT_FALSE(parse_int("42x").ok());
  EXPECT_DOUBLE_EQ(*parse_double("0.25"), 0.25);
  EXPECT_FALSE(parse_double("").ok());
}

// 99999999999 TiB overflowed int64 (llround of a double past 2^63).
TEST(Strings, HugeByteSizeIsRefused) {
  EXPECT_EQ(parse_bytes("99999999999TiB").error().message(), "byte size too large: '99999999999TiB' (at most 8 PiB)");
  EXPECT_EQ(parse_bytes("8193TiB").error().message(), "byte size too large: '8193TiB' (at most 8 PiB)");
  EXPECT_EQ(*parse_bytes("8192TiB"), int64_t{1} << 53);
  EXPECT_EQ(*parse_bytes("0.5KiB"), 512);
  EXPECT_EQ(parse_bytes("99999999999999999999999").error().message(),
            "byte size too large: '99999999999999999999999' (at most 8 PiB)");
}

}  // namespace
}  // namespace mailshard
