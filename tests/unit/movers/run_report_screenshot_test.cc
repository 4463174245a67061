// The run report opens in a real browser: headless Chromium renders it and
// the picture must show the before (grey) and after (blue) bars, as the plan
// report's does. Skipped only when no chromium binary is installed.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "movers/run_report.h"
#include "tests/support/screenshot.h"
#include "tests/unit/movers/run_fixture.h"

namespace mailshard {
namespace {

TEST(RunReportScreenshot, ChromiumRendersTheBars) {
  std::string chromium = testing::find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "no chromium installed";
  // Twelve servers filled from 5 % to 82 %; the night moved 30 % of the
  // fullest six's capacity onto the emptiest six, half of it done.
  Plan p = testing::run_plan();
  p.servers.clear();
  ExecutionReport r;
  r.started_at_ms = testing::kRunStart;
  r.finished_at_ms = testing::kRunStart + 3'600'000;
  r.finished = true;
  for (int s = 0; s < 12; ++s) {
    std::string name = fmt::format("store{}", s + 1);
    p.servers.push_back(testing::planned_server(s, name, 500 + s * 700));
    p.servers.back().lower_bytes = 0;  // every after bar in band: blue
    p.servers.back().upper_bytes = 10'000;
    r.servers.emplace(name, testing::server_run(name, 2, 2));
  }
  for (int s = 0; s < 6; ++s)
    for (int k = 0; k < 6; ++k) {
      MoveResult res = k % 2 ? MoveResult::kDone : MoveResult::kFailed;
      auto m = res == MoveResult::kDone
                   ? testing::done(fmt::format("u{}-{}", s, k), fmt::format("store{}", 12 - s), fmt::format("store{}", s + 1),
                                   500, 600, 1'000, s * 6 + k + 1)
                   : testing::outcome(fmt::format("u{}-{}", s, k), fmt::format("store{}", 12 - s),
                                      fmt::format("store{}", s + 1), 500, res, "verify failed");
      (res == MoveResult::kDone ? r.done : r.failed) += 1;
      r.moves.push_back(m);
    }

  std::string png;
  auto im = testing::screenshot_html(chromium, ::testing::TempDir() + "/run_report_screenshot",
                                     render_run_html(p, "feedc0de", r), &png);
  ASSERT_TRUE(im.ok()) << im.error().message();
  testing::expect_report_drawn(*im);
  // Keep the picture next to the test log for a person to look at.
  std::printf("screenshot: %s\n", png.c_str());
}

}  // namespace
}  // namespace mailshard
