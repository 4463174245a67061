// The HTML report opens in a real browser: headless Chromium renders it to a
// PNG, and the PNG must show the before (grey) and after (blue) bars. Skipped
// only when no chromium binary is installed.
#include <png.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <set>

#include <gtest/gtest.h>

#include "planners/planner.h"
#include "planners/report.h"
#include "tests/unit/planners/fleet_builder.h"
#include "util/fs.h"
#include "util/subprocess.h"

namespace mailshard::planner {
namespace {

using testing::FleetBuilder;

struct Image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgba;
};

// Decodes a PNG with libpng's simplified API; kCorrupt on anything else.
Result<Image> read_png(const std::string& path) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) return Error::corrupt("not a PNG: " + path);
  img.format = PNG_FORMAT_RGBA;
  Image out;
  out.width = img.width;
  out.height = img.height;
  out.rgba.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out.rgba.data(), 0, nullptr)) {
    png_image_free(&img);
    return Error::corrupt("cannot decode " + path);
  }
  return out;
}

// Pixels within +-4 per channel of an RGB colour.
size_t count_near(const Image& im, std::array<int, 3> rgb) {
  size_t n = 0;
  for (size_t i = 0; i + 3 < im.rgba.size(); i += 4)
    if (std::abs(im.rgba[i] - rgb[0]) <= 4 && std::abs(im.rgba[i + 1] - rgb[1]) <= 4 && std::abs(im.rgba[i + 2] - rgb[2]) <= 4)
      ++n;
  return n;
}

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

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

  std::string dir = ::testing::TempDir() + "/report_screenshot";
  ASSERT_TRUE(make_dirs(dir).ok());
  std::string html = dir + "/report.html", png = dir + "/report.png", profile = dir + "/profile";
  ASSERT_TRUE(write_file_atomic(html, render_html(*p, plan_hash(*p))).ok());
  ::unlink(png.c_str());
  auto r = run_process({chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--user-data-dir=" + profile, "--screenshot=" + png, "--window-size=1200,900", "file://" + html},
                       "", 120'000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->exit_code, 0) << r->err;

  auto im = read_png(png);
  ASSERT_TRUE(im.ok()) << im.error().message();
  EXPECT_EQ(im->width, 1200u);
  EXPECT_EQ(im->height, 900u);
  // Not blank: several colours and a real share of non-white pixels.
  std::set<uint32_t> colours;
  size_t non_white = 0;
  for (size_t i = 0; i + 3 < im->rgba.size(); i += 4) {
    uint32_t c = (uint32_t{im->rgba[i]} << 16) | (uint32_t{im->rgba[i + 1]} << 8) | im->rgba[i + 2];
    colours.insert(c);
    if (c != 0xffffff) ++non_white;
  }
  EXPECT_GT(colours.size(), 16u);
  EXPECT_GT(non_white, im->rgba.size() / 4 / 50);
  // The bars themselves: grey "before" (#a0aec0) and blue "after" (#2b6cb0),
  // each covering at least a few thousand pixels.
  EXPECT_GT(count_near(*im, {0xa0, 0xae, 0xc0}), 2000u);
  EXPECT_GT(count_near(*im, {0x2b, 0x6c, 0xb0}), 2000u);
  // Keep the picture next to the test log for a person to look at.
  std::printf("screenshot: %s\n", png.c_str());
}

}  // namespace
}  // namespace mailshard::planner
