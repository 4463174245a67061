#include "inventory/prometheus_parser.h"

#include <cmath>

#include <gtest/gtest.h>

namespace mailshard {
namespace {

TEST(PrometheusParser, NodeExporterExcerpt) {
  auto r = parse_prometheus_text(
      "# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.\n"
      "# TYPE node_filesystem_avail_bytes gauge\n"
      "node_filesystem_avail_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 8.0542736384e+10\n"
      "# HELP node_load1 1m load average.\n"
      "# TYPE node_load1 gauge\n"
      "node_load1 5.16\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 2u);
  const auto& fs = (*r)[0];
  EXPECT_EQ(fs.name, "node_filesystem_avail_bytes");
  EXPECT_EQ(fs.label("device"), "/dev/vda");
  EXPECT_EQ(fs.label("fstype"), "ext4");
  EXPECT_EQ(fs.label("mountpoint"), "/");
  EXPECT_EQ(fs.label("absent"), "");
  EXPECT_EQ(fs.value, 80542736384.0);
  EXPECT_FALSE(fs.timestamp_ms.has_value());
  EXPECT_EQ((*r)[1].name, "node_load1");
  EXPECT_DOUBLE_EQ((*r)[1].value, 5.16);
}

TEST(PrometheusParser, LabelEscapes) {
  auto r = parse_prometheus_text(R"(m{path="C:\\dir",quote="say \"hi\"",nl="a\nb"} 1)");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].label("path"), "C:\\dir");
  EXPECT_EQ((*r)[0].label("quote"), "say \"hi\"");
  EXPECT_EQ((*r)[0].label("nl"), "a\nb");
}

TEST(PrometheusParser, SpecialValuesAndTimestamps) {
  auto r = parse_prometheus_text(
      "a NaN\n"
      "b +Inf\n"
      "c -Inf\n"
      "d 1.5e3 1700000000000\n"
      "e{x=\"y\",} -0.25 -12\n"   // trailing comma in the label set is allowed
      "f   \t  42  \n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 6u);
  EXPECT_TRUE(std::isnan((*r)[0].value));
  EXPECT_TRUE(std::isinf((*r)[1].value) && (*r)[1].value > 0);
  EXPECT_TRUE(std::isinf((*r)[2].value) && (*r)[2].value < 0);
  EXPECT_EQ((*r)[3].value, 1500);
  EXPECT_EQ((*r)[3].timestamp_ms, 1700000000000);
  EXPECT_EQ((*r)[4].label("x"), "y");
  EXPECT_EQ((*r)[4].value, -0.25);
  EXPECT_EQ((*r)[4].timestamp_ms, -12);
  EXPECT_EQ((*r)[5].value, 42);
}

TEST(PrometheusParser, CommentsBlankLinesAndCrlf) {
  auto r = parse_prometheus_text("# just a comment\r\n\r\n  \nx 1\r\n# TYPE y counter\ny_total 2\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].name, "y_total");
}

TEST(PrometheusParser, EmptyDocumentHasNoSamples) {
  auto r = parse_prometheus_text("");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

std::string error_of(std::string_view text) {
  auto r = parse_prometheus_text(text);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "(parsed)";
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  return r.error().message();
}

TEST(PrometheusParser, GarbageGetsALineNumberedError) {
  EXPECT_EQ(error_of("<html><body>Login</body></html>\n"), "line 1: invalid metric name '<html><body>Login</body></html>'");
  EXPECT_EQ(error_of("ok 1\nnode_load1\n"), "line 2: missing value after 'node_load1'");
  EXPECT_EQ(error_of("node_load1 high\n"), "line 1: invalid value 'high' for 'node_load1'");
  EXPECT_EQ(error_of("x 1 soon\n"), "line 1: invalid timestamp 'soon'");
  EXPECT_EQ(error_of("x 1 2 3\n"), "line 1: unexpected text '3' after the sample");
  EXPECT_EQ(error_of("x{a=\"b\" 1\n"), "line 1: expected ',' or '}' after the value of label 'a'");
  EXPECT_EQ(error_of("x{a=\"b} 1\n"), "line 1: unterminated value of label 'a'");
  EXPECT_EQ(error_of("x{a=b} 1\n"), "line 1: expected '\"' to open the value of label 'a'");
  EXPECT_EQ(error_of("x{a} 1\n"), "line 1: expected '=' after label name 'a'");
  EXPECT_EQ(error_of("x{a=\"\\t\"} 1\n"), "line 1: invalid escape '\\t' in the value of label 'a'");
  EXPECT_EQ(error_of("x{a=\"1\",a=\"2\"} 1\n"), "line 1: label 'a' given twice");
  EXPECT_EQ(error_of("x{"), "line 1: unterminated label set (missing '}')");
  EXPECT_EQ(error_of("# TYPE x sometimes\n"), "line 1: unknown metric type 'sometimes'");
  EXPECT_EQ(error_of("# HELP\n"), "line 1: # HELP without a valid metric name");
  EXPECT_EQ(error_of("1x 2\n"), "line 1: invalid metric name '1x'");
  EXPECT_EQ(error_of("x 0x10\n"), "line 1: invalid value '0x10' for 'x'");
  EXPECT_EQ(error_of(std::string("x 1\n\0\0", 6)), "binary data (a NUL byte), not Prometheus text");
}

// A sample with 60k labels took 3.75 s to parse (the duplicate check is
// quadratic); labels and line length are bounded now.
TEST(PrometheusParser, TooManyLabelsIsRejectedQuickly) {
  std::string line = "node_load1{";
  for (int i = 0; i < 60'000; ++i) line += "l" + std::to_string(i) + "=\"v\",";
  line += "} 1\n";
  auto r = parse_prometheus_text("node_load1 0.5\n" + line);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(r.error().message(), "line 2: longer than 65536 bytes");
  std::string short_line = "node_load1{";
  for (int i = 0; i < 129; ++i) short_line += "l" + std::to_string(i) + "=\"v\",";
  short_line += "} 1\n";
  auto many = parse_prometheus_text(short_line);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.error().message(), "line 1: more than 128 labels");
  std::string ok_line = "node_load1{";
  for (int i = 0; i < 128; ++i) ok_line += "l" + std::to_string(i) + "=\"v\",";
  ok_line += "} 1\n";
  auto ok = parse_prometheus_text(ok_line);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ((*ok)[0].labels.size(), 128u);
}

}  // namespace
}  // namespace mailshard
