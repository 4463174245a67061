// The run report: JSON fields and counts, utilisation before/after, what is
// left for next night, the text summary, and escaping of hostile names in the
// markdown and HTML pages.
#include "movers/run_report.h"

#include <map>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/unit/movers/run_fixture.h"
#include "util/strings.h"

namespace mailshard {
namespace {

using testing::kHostileServer;
using testing::kHostileUser;
using testing::run_plan;
using testing::run_report;

const std::string kHash = "0123456789abcdef0123456789abcdef";

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + what.size())) ++n;
  return n;
}

TEST(RunReport, JsonCarriesTheRunFiguresAndCounts) {
  ExecutionReport r = run_report();
  auto j = run_report_json(run_plan(), kHash, r);
  EXPECT_EQ(j["plan"], kHash);
  EXPECT_EQ(j["night"], 2);
  EXPECT_EQ(j["started_at"], "2025-12-05T02:00:00.000Z");
  EXPECT_EQ(j["finished_at"], "2025-12-05T03:00:00.000Z");
  EXPECT_EQ(j["seconds"], 3600.0);
  EXPECT_EQ(j["done"], 3);
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["skipped"], 1);
  EXPECT_EQ(j["not_started"], 1);
  EXPECT_EQ(j["bytes_moved"], 4150);
  EXPECT_EQ(j["lockout_p50_ms"], 2000);
  EXPECT_EQ(j["lockout_p95_ms"], 12000);
  EXPECT_EQ(j["lockout_max_ms"], 12000);
  EXPECT_EQ(j["backoff_events"], 2);
  EXPECT_EQ(j["deadline_reached"], true);
  EXPECT_EQ(j["hard_stopped"], false);
  EXPECT_EQ(j["stop_reason"], "the deadline 2025-12-05T03:00:00.000Z passed");
  EXPECT_DOUBLE_EQ(j["schedule_bound_seconds"].get<double>(), schedule_bound_ms(r) / 1000);
  EXPECT_GT(j["schedule_bound_seconds"].get<double>(), 0);

  ASSERT_EQ(j["servers"].size(), 4u);
  const auto& s1 = j["servers"][2];  // name order: ev"il..., ghost, store1, store2
  EXPECT_EQ(s1["name"], "store1");
  EXPECT_EQ(s1["slots_max"], (nlohmann::ordered_json{{"out", 2}, {"in", 2}}));
  EXPECT_EQ(s1["slots_end"], (nlohmann::ordered_json{{"out", 1}, {"in", 2}}));
  EXPECT_EQ(s1["failures"], 3);
  EXPECT_EQ(s1["skipped"], true);
  EXPECT_EQ(s1["backoff_events"], 2);
  EXPECT_EQ(s1["sample_errors"], 1);
  EXPECT_EQ(s1["bytes_out"], 3600);
  EXPECT_EQ(s1["bytes_in"], 0);

  ASSERT_EQ(j["moves"].size(), 6u);
  const auto& alice = j["moves"][0];
  EXPECT_EQ(alice["user"], "alice");
  EXPECT_EQ(alice["from"], "store1");
  EXPECT_EQ(alice["to"], "store2");
  EXPECT_EQ(alice["bytes_planned"], 1000);
  EXPECT_EQ(alice["result"], "done");
  EXPECT_EQ(alice["reason"], "");
  EXPECT_EQ(alice["move_id"], 11);
  EXPECT_EQ(alice["state"], "done");
  EXPECT_EQ(alice["bytes_transferred"], 1500);
  EXPECT_EQ(alice["lockout_ms"], 2000);
  EXPECT_EQ(alice["started_at"], "2025-12-05T02:11:00.000Z");
  EXPECT_EQ(alice["finished_at"], "2025-12-05T02:12:30.000Z");
  EXPECT_EQ(j["moves"][2]["user"], kHostileUser);  // JSON escapes by itself
  EXPECT_EQ(j["moves"][2]["result"], "failed");
  EXPECT_EQ(j["moves"][3]["result"], "skipped");
  const auto& dave = j["moves"][4];
  EXPECT_EQ(dave["result"], "not_started");
  EXPECT_TRUE(dave["started_at"].is_null());
  EXPECT_TRUE(dave["finished_at"].is_null());
  EXPECT_TRUE(dave["lockout_ms"].is_null());
  // The document survives a round trip through text.
  EXPECT_EQ(nlohmann::ordered_json::parse(j.dump()), j);
}

TEST(RunReport, UnknownLockoutsAndAnUnfinishedRunAreNull) {
  ExecutionReport r;
  r.started_at_ms = testing::kRunStart;
  auto j = run_report_json(Plan{}, kHash, r);
  EXPECT_TRUE(j["lockout_p50_ms"].is_null());
  EXPECT_TRUE(j["lockout_p95_ms"].is_null());
  EXPECT_TRUE(j["lockout_max_ms"].is_null());
  EXPECT_TRUE(j["finished_at"].is_null());
  EXPECT_TRUE(j["seconds"].is_null());
  EXPECT_EQ(j["moves"].size(), 0u);
  EXPECT_EQ(j["remaining"].size(), 0u);
}

// After = before + sizes of the done moves in - out; wire bytes do not count.
TEST(RunReport, UtilisationAfterCountsTheDoneMovesSizes) {
  Plan p = run_plan();
  ExecutionReport r = run_report();
  auto figures = run_server_figures(p, r);
  ASSERT_EQ(figures.size(), 4u);
  std::map<std::string, const RunServerFigures*> by;
  for (const auto& f : figures) by[f.run->name] = &f;
  // store1: 8000 - alice 1000 - bob 2000 (the failed and skipped moves stay).
  EXPECT_DOUBLE_EQ(*by["store1"]->util_before, 0.8);
  EXPECT_DOUBLE_EQ(*by["store1"]->util_after, 0.5);
  EXPECT_EQ(by["store1"]->moves_out_done, 2);
  // store2: 2000 + alice 1000 + bob 2000 + erin 100.
  EXPECT_DOUBLE_EQ(*by["store2"]->util_before, 0.2);
  EXPECT_DOUBLE_EQ(*by["store2"]->util_after, 0.51);
  EXPECT_EQ(by["store2"]->moves_in_done, 3);
  EXPECT_EQ(by["store2"]->moved_in_bytes, 3100);
  // The hostile server's only moves failed or did not start.
  EXPECT_DOUBLE_EQ(*by[kHostileServer]->util_before, 0.5);
  EXPECT_DOUBLE_EQ(*by[kHostileServer]->util_after, 0.5);
  // Not in the plan: no utilisation.
  EXPECT_EQ(by["ghost"]->planned, nullptr);
  EXPECT_FALSE(by["ghost"]->util_before);
  EXPECT_FALSE(by["ghost"]->util_after);

  auto j = run_report_json(p, kHash, r);
  for (const auto& s : j["servers"]) {
    if (s["name"] == "ghost") {
      EXPECT_TRUE(s["util_before"].is_null());
      EXPECT_TRUE(s["util_after"].is_null());
    }
    if (s["name"] == "store2") {
      EXPECT_DOUBLE_EQ(s["util_after"].get<double>(), 0.51);
    }
  }
  // A plan server without a name is matched by its id, as the executor names it.
  p.servers[1].name = "";
  r.servers.emplace("1", testing::server_run("1", 2, 2));
  for (const auto& f : run_server_figures(p, r))
    if (f.run->name == "1") {
      EXPECT_DOUBLE_EQ(*f.util_before, 0.2);
    }
}

TEST(RunReport, RemainingIsEveryMoveNotDoneInPlanOrder) {
  auto j = run_report_json(run_plan(), kHash, run_report());
  ASSERT_EQ(j["remaining"].size(), 3u);
  EXPECT_EQ(j["remaining"][0], (nlohmann::ordered_json{
                                   {"user", kHostileUser}, {"from", "store1"}, {"to", kHostileServer}, {"bytes_planned", 500}}));
  EXPECT_EQ(j["remaining"][1]["user"], "carol");
  EXPECT_EQ(j["remaining"][2]["user"], "dave");
  EXPECT_EQ(j["remaining"][2]["from"], kHostileServer);
}

TEST(RunReport, TextListsTheMovesNotDoneTheServersAndOneSummaryLine) {
  std::string t = render_run_text(run_plan(), kHash, run_report());
  // printable() keeps printable ASCII: the terminal sees the name as it is.
  EXPECT_EQ(t,
            "<script>alert(\"x\")</script>' store1 -> ev\"il\\store<3>: failed: verify: checksum \"mismatch\" <b>\n"
            "carol store1 -> store2: skipped: server store1 failed 3 moves in this run\n"
            "dave ev\"il\\store<3> -> store2: not started: the deadline 2025-12-05T03:00:00.000Z passed\n"
            "server ev\"il\\store<3>: 50.0 % -> 50.0 %, 0 in / 0 out done, 1 failure, 0 back-off events\n"
            "server ghost: - -> -, 0 in / 1 out done, 0 failures, 0 back-off events\n"
            "server store1: 80.0 % -> 50.0 %, 0 in / 2 out done, 3 failures, 2 back-off events, skipped (failed too often)\n"
            "server store2: 20.0 % -> 51.0 %, 3 in / 0 out done, 0 failures, 0 back-off events\n"
            "rebalance plan 0123456789abcdef0123456789abcdef night 2: 3 done, 1 failed, 1 skipped, 1 not started; "
            "4.1 KiB moved; lockout p50 2.0s p95 12.0s max 12.0s; 2 back-off events; the deadline 2025-12-05T03:00:00.000Z "
            "passed\n");
  // Control bytes in a name never reach the terminal.
  ExecutionReport r = run_report();
  r.moves[2].user = "mallory\x1b[2J";
  EXPECT_NE(render_run_text(run_plan(), kHash, r).find("mallory\\x1b[2J store1"), std::string::npos);
}

TEST(RunReport, HtmlIsSelfContainedAndEscapesEveryName) {
  std::string html = render_run_html(run_plan(), kHash, run_report());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("verify: checksum &quot;mismatch&quot; &lt;b&gt;"), std::string::npos);  // a reason
  EXPECT_NE(html.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;"), std::string::npos);
  EXPECT_NE(html.find("ev&quot;il\\store&lt;3&gt;"), std::string::npos);
  EXPECT_EQ(html.find("ev\"il"), std::string::npos);
  // Nothing fetched from elsewhere: no src, href, @import or url().
  for (const char* ext : {"src=", "href=", "@import", "url(", "<link", "<img"}) EXPECT_EQ(html.find(ext), std::string::npos) << ext;
  // The bars: the three servers the plan knows, not "ghost".
  EXPECT_EQ(count(html, "<g class=\"server\""), 3u);
  EXPECT_EQ(html.find("data-server=\"ghost\""), std::string::npos);
  EXPECT_NE(html.find("<title>store1 before: 80.0 %</title>"), std::string::npos);
  EXPECT_NE(html.find("<title>store2 after this night: 51.0 % (3 in, 0 out done)</title>"), std::string::npos);
  // Failed, skipped and not started each with its reason; the done table.
  EXPECT_NE(html.find("<h2>Moves not done (3)</h2>"), std::string::npos);
  EXPECT_NE(html.find("<td>skipped</td><td>server store1 failed 3 moves in this run</td>"), std::string::npos);
  EXPECT_NE(html.find("<h2>Moves done (3)</h2>"), std::string::npos);
  EXPECT_NE(html.find("<div class=\"partial\"><b>Stopped early:</b> the deadline 2025-12-05T03:00:00.000Z passed.</div>"),
            std::string::npos);
  EXPECT_NE(html.find("<h2>Back-off</h2>"), std::string::npos);
}

TEST(RunReport, MarkdownTablesSurviveHostileNames) {
  std::string md = render_run_markdown(run_plan(), kHash, run_report());
  EXPECT_EQ(md.find("<script"), std::string::npos);
  EXPECT_NE(md.find("&lt;script&gt;"), std::string::npos);
  // Every table row of a table has as many unescaped cell separators as its header.
  size_t header = 0;
  for (const auto& line : split(md, '\n')) {
    if (line.rfind("|", 0) != 0) {
      header = 0;
      continue;
    }
    // Count separators, treating "\|" as text.
    size_t n = 0;
    for (size_t i = 0; i < line.size(); ++i)
      if (line[i] == '|' && (i == 0 || line[i - 1] != '\\')) ++n;
    if (header == 0) header = n;
    EXPECT_EQ(n, header) << line;
  }
  EXPECT_NE(md.find("| store1 | 80.0 % | 50.0 % |"), std::string::npos) << md;
  EXPECT_NE(md.find("## Moves not done (3)"), std::string::npos);
}

TEST(RunReport, DoneMovesAreCappedWithANote) {
  ExecutionReport r = run_report();
  r.moves.clear();
  for (size_t i = 0; i < kRunReportDoneRows + 7; ++i)
    r.moves.push_back(testing::done(fmt::format("u{}", i), "store1", "store2", 1, 1, 10, static_cast<int64_t>(i)));
  std::string html = render_run_html(run_plan(), kHash, r);
  auto at = html.find("<table class=\"done\">");
  ASSERT_NE(at, std::string::npos);
  std::string table = html.substr(at, html.find("</table>", at) - at);
  EXPECT_EQ(count(table, "<tr>"), kRunReportDoneRows + 1);  // + the header
  EXPECT_NE(html.find("<p>The first 500 in plan order; the JSON report lists every move.</p>"), std::string::npos);
  EXPECT_EQ(html.find("u500<"), std::string::npos);
  std::string md = render_run_markdown(run_plan(), kHash, r);
  EXPECT_NE(md.find("| u499 |"), std::string::npos);
  EXPECT_EQ(md.find("| u500 |"), std::string::npos);
  EXPECT_EQ(run_report_json(run_plan(), kHash, r)["moves"].size(), kRunReportDoneRows + 7);
}

}  // namespace
}  // namespace mailshard
