// Renders an HTML report in headless Chromium and reads the PNG back, for
// tests that check a report really draws (planners' plan report, movers' run
// report). Tests skip when find_chromium() is empty.
//
// Thread-safety: free functions; each call uses its own directory.
#pragma once

#include <png.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "util/fs.h"
#include "util/result.h"
#include "util/subprocess.h"

namespace mailshard::testing {

struct Image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgba;
};

// Decodes a PNG with libpng's simplified API; kCorrupt on anything else.
inline Result<Image> read_png(const std::string& path) {
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
inline size_t count_near(const Image& im, std::array<int, 3> rgb) {
  size_t n = 0;
  for (size_t i = 0; i + 3 < im.rgba.size(); i += 4)
    if (std::abs(im.rgba[i] - rgb[0]) <= 4 && std::abs(im.rgba[i + 1] - rgb[1]) <= 4 && std::abs(im.rgba[i + 2] - rgb[2]) <= 4)
      ++n;
  return n;
}

// Distinct colours and non-white pixels: a blank or broken page has few of both.
struct ImageStats {
  size_t colours = 0, non_white = 0, pixels = 0;
};
inline ImageStats image_stats(const Image& im) {
  std::set<uint32_t> colours;
  ImageStats s;
  for (size_t i = 0; i + 3 < im.rgba.size(); i += 4) {
    uint32_t c = (uint32_t{im.rgba[i]} << 16) | (uint32_t{im.rgba[i + 1]} << 8) | im.rgba[i + 2];
    colours.insert(c);
    if (c != 0xffffff) ++s.non_white;
    ++s.pixels;
  }
  s.colours = colours.size();
  return s;
}

inline std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

// Writes `html` to DIR/report.html and screenshots it at 1200x900 into
// DIR/report.png (its path is in `png`). The page must need nothing outside
// the file: the network stays unused.
inline Result<Image> screenshot_html(const std::string& chromium, const std::string& dir, const std::string& html,
                                     std::string* png_path = nullptr) {
  if (auto st = make_dirs(dir); !st.ok()) return std::move(st).error();
  std::string page = dir + "/report.html", png = dir + "/report.png", profile = dir + "/profile";
  if (auto st = write_file_atomic(page, html); !st.ok()) return std::move(st).error();
  ::unlink(png.c_str());
  auto r = run_process({chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--user-data-dir=" + profile, "--screenshot=" + png, "--window-size=1200,900", "file://" + page},
                       "", 120'000);
  if (!r.ok()) return std::move(r).error();
  if (r->exit_code != 0) return Error::internal("chromium exited " + std::to_string(r->exit_code) + ": " + r->err);
  if (png_path) *png_path = png;
  return read_png(png);
}

// What every report screenshot must show: the full 1200x900 page, not blank
// (several colours, a real share of non-white pixels), and the bars
// themselves, grey "before" (#a0aec0) and blue "after" (#2b6cb0), each over
// at least a few thousand pixels.
inline void expect_report_drawn(const Image& im) {
  EXPECT_EQ(im.width, 1200u);
  EXPECT_EQ(im.height, 900u);
  auto stats = image_stats(im);
  EXPECT_GT(stats.colours, 16u);
  EXPECT_GT(stats.non_white, stats.pixels / 50);
  EXPECT_GT(count_near(im, {0xa0, 0xae, 0xc0}), 2000u);
  EXPECT_GT(count_near(im, {0x2b, 0x6c, 0xb0}), 2000u);
}

}  // namespace mailshard::testing
