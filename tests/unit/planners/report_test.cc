// The plan renderers: the CSV metrics.py reads, the markdown and HTML
// reports (structure, escaping, every server drawn, every warning listed).
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "planners/planner.h"
#include "planners/report.h"
#include "tests/unit/planners/fleet_builder.h"

namespace mailshard::planner {
namespace {

using testing::FleetBuilder;

// Five named servers in two classes; s0 is over-full, s4 draining.
Plan sample_plan(Constraints c = {}) {
  FleetBuilder f;
  f.server("std", 1000, 10, 16, false, "store<1>");
  f.server("std", 1000, 10, 16, false, "store2");
  f.server("std", 1000, 10, 16, false, "store3");
  f.server("ssd", 500, 5, 8, false, "fast1");
  f.server("ssd", 500, 5, 8, true, "fast2");
  for (int i = 0; i < 8; ++i) f.user(0, 100, 1.0 + i);
  for (int i = 0; i < 4; ++i) f.user(1, 100, 1.0);
  for (int i = 0; i < 3; ++i) f.user(2, 100, 1.0);
  f.user(3, 100, 1.0);
  f.user(4, 60, 1.0);
  f.user(4, 40, 1.0, /*pinned=*/true);
  f.snap.source = "test";
  auto p = plan(f.snap, c);
  EXPECT_TRUE(p.ok());
  return *p;
}

TEST(Report, CsvIsWhatMetricsReads) {
  Plan p = sample_plan();
  std::string csv = render_csv(p);
  ASSERT_EQ(csv.rfind("user_id,from_server,to_server,size_bytes\n", 0), 0u);
  std::string expect = "user_id,from_server,to_server,size_bytes\n";
  for (const auto& m : p.moves) expect += fmt::format("{},{},{},{}\n", m.user, m.from, m.to, m.bytes);
  EXPECT_EQ(csv, expect);
  EXPECT_FALSE(p.moves.empty());
}

TEST(Report, CsvCarriesTheNightWhenThePlanMaySpanNights) {
  Constraints c;
  c.nights = 3;
  c.max_moves = 2;
  Plan p = sample_plan(c);
  std::string csv = render_csv(p);
  ASSERT_EQ(csv.rfind("user_id,from_server,to_server,size_bytes,night\n", 0), 0u);
  EXPECT_NE(csv.find(",2\n"), std::string::npos) << csv;  // a second night exists
}

TEST(Report, HtmlDrawsBeforeAndAfterBarsForEveryServer) {
  Plan p = sample_plan();
  std::string html = render_html(p, plan_hash(p));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  // One chart per class.
  EXPECT_NE(html.find("<svg class=\"chart\" data-class=\"std\""), std::string::npos);
  EXPECT_NE(html.find("<svg class=\"chart\" data-class=\"ssd\""), std::string::npos);
  for (const auto& s : p.servers) {
    std::regex bars("<g class=\"server\" data-server=\"" + std::to_string(s.id) +
                    "\"><rect class=\"bar-before\"[^>]*><title>[^<]*before: [0-9.]+ %</title></rect>"
                    "<rect class=\"bar-after\"[^>]*><title>[^<]*after: [0-9.]+ %");
    EXPECT_TRUE(std::regex_search(html, bars)) << "server " << s.id;
  }
  // Names are escaped, never markup.
  EXPECT_EQ(html.find("store<1>"), std::string::npos);
  EXPECT_NE(html.find("store&lt;1&gt;"), std::string::npos);
  // Every warning and partial reason is shown.
  ASSERT_TRUE(p.partial);  // the pinned user on the draining server
  auto escaped = [](std::string t) {
    std::string o;
    for (char ch : t) o += ch == '\'' ? std::string("&#39;") : ch == '<' ? std::string("&lt;") : std::string(1, ch);
    return o;
  };
  for (const auto& r : p.partial_reasons) EXPECT_NE(html.find(escaped(r)), std::string::npos) << r;
  EXPECT_NE(html.find("Against the lower bounds"), std::string::npos);
  EXPECT_NE(html.find("Top movers"), std::string::npos);
}

TEST(Report, MarkdownHasEverySection) {
  Plan p = sample_plan();
  std::string md = render_markdown(p, plan_hash(p));
  for (const char* h : {"# mailshard plan ", "## Why the plan is partial", "## Warnings", "## Against the lower bounds",
                        "## Classes", "## Servers before and after", "## Top movers"})
    EXPECT_NE(md.find(h), std::string::npos) << h;
  for (const auto& r : p.partial_reasons) EXPECT_NE(md.find("- " + r), std::string::npos) << r;
  for (const auto& s : p.servers) EXPECT_NE(md.find("| " + s.name), std::string::npos) << s.name;
  EXPECT_NE(md.find("drain of server fast2 cannot finish: 1 pinned user (40 B) may not move"), std::string::npos) << md;
}

TEST(Report, SummaryNamesTheHashAndTheRatios) {
  Plan p = sample_plan();
  auto j = nlohmann::json::parse(render_summary(p, "abc"));
  EXPECT_EQ(j["plan_hash"], "abc");
  EXPECT_EQ(j["moves"], p.estimate.moves);
  EXPECT_EQ(j["lb_bytes"], p.bounds.lb_bytes);
  EXPECT_EQ(j["partial"], true);
}

}  // namespace
}  // namespace mailshard::planner
