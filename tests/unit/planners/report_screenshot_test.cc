// The HTML report opens in a real browser: headless Chromium renders it to a
// PNG, and the PNG must show the before (grey) and after (blue) bars. Skipped
// only when no chromium binary is installed.
#include <gtest/gtest.h>

#include "planners/planner.h"
#include "planners/report.h"
#include "tests/support/screenshot.h"
#include "tests/unit/planners/fleet_builder.h"

namespace mailshard::planner {
namespace {

using testing::FleetBuilder;
using testing::find_chromium;

TEST(ReportScreenshot, ChromiumRendersTheBars) {
  std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "no chromium installed";
  FleetBuilder f;
  for (int s = 0; s < 12; ++s) f.server("std", 10000, 100, 16, false, fmt::format("store{}", s + 1));
  // Fills from 5 % to 90 %: a staircase before, a flat line after.
  for (int s = 0; s < 12; ++s)
    for (int u = 0; u < 5 + s * 7; ++u) f.user(s, 100, 1.0);
  auto p = plan(f.snap, Constraints{});
  ASSERT_TRUE(p.ok());
  ASSERT_FALSE(p->moves.empty());

  std::string png;
  auto im = testing::screenshot_html(chromium, ::testing::TempDir() + "/report_screenshot", render_html(*p, plan_hash(*p)),
                                     &png);
  ASSERT_TRUE(im.ok()) << im.error().message();
  testing::expect_report_drawn(*im);
  // Keep the picture next to the test log for a person to look at.
  std::printf("screenshot: %s\n", png.c_str());
}

}  // namespace
}  // namespace mailshard::planner
