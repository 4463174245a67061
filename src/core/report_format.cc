#include "core/report_format.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

namespace mailshard {

namespace {

// Chart geometry, in SVG user units (the SVG scales to the page width).
constexpr double kChartHeight = 260;  // 100 % utilisation
constexpr double kTop = 16, kLeft = 44, kBottom = 48;  // room below for slanted names
constexpr double kMaxGroup = 28, kMinGroup = 3;  // width of one server's pair of bars
constexpr size_t kLabelledServers = 40;          // above this, names only in tooltips
constexpr double kMaxPixelHeight = 360;          // a chart never takes more than this of the page

}  // namespace

std::string html_escape(std::string_view s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += ch;
    }
  }
  return o;
}

std::string_view report_css() {
  return "body{font-family:system-ui,sans-serif;margin:24px;color:#1a202c;max-width:1200px}\n"
         "table{border-collapse:collapse;margin:8px 0 20px} td,th{border:1px solid #cbd5e0;padding:3px 8px;"
         "text-align:right} th{background:#edf2f7} td:first-child,th:first-child{text-align:left}\n"
         ".partial{background:#fff5f5;border-left:4px solid #c53030;padding:6px 12px}\n"
         ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:middle}\n";
}

std::string class_util_chart(const Constraints& constraints, const ClassOutcome& c, const std::vector<UtilBars>& bars) {
  const auto& esc = html_escape;
  const double group = std::clamp(1100.0 / static_cast<double>(std::max<size_t>(1, bars.size())), kMinGroup, kMaxGroup);
  const double width = kLeft + group * static_cast<double>(bars.size()) + 10;
  const double height = kTop + kChartHeight + kBottom;
  auto y = [](double u) { return kTop + kChartHeight * (1 - std::clamp(u, 0.0, 1.0)); };
  std::string o;
  auto out = std::back_inserter(o);
  fmt::format_to(out,
                 "<svg class=\"chart\" data-class=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {:.0f} {:.0f}\" "
                 "width=\"100%\" style=\"max-height:{:.0f}px\" preserveAspectRatio=\"xMinYMin meet\" role=\"img\" "
                 "aria-label=\"utilisation of class {} "
                 "before and after\">\n",
                 esc(c.name), width, height, kMaxPixelHeight, esc(c.name));
  for (int pct = 0; pct <= 100; pct += 20)
    fmt::format_to(out,
                   "<line x1=\"{:.0f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e2e8f0\"/>"
                   "<text x=\"{:.0f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\" fill=\"#4a5568\">{} %</text>\n",
                   kLeft, width - 10, y(pct / 100.0), y(pct / 100.0), kLeft - 4, y(pct / 100.0) + 3, pct);
  const double band = constraints.band;
  const double lo = std::max(0.0, c.mean_util - band), hi = std::min(c.mean_util + band, constraints.hard_cap);
  fmt::format_to(out, "<rect x=\"{:.0f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" opacity=\"0.6\">"
                 "<title>band {:.1f}–{:.1f} %</title></rect>\n",
                 kLeft, y(hi), width - 10 - kLeft, y(lo) - y(hi), kBandColour, 100 * lo, 100 * hi);
  for (size_t i = 0; i < bars.size(); ++i) {
    const UtilBars& b = bars[i];
    const double x = kLeft + group * static_cast<double>(i);
    const double bw = std::max(1.0, group / 2 - 0.5);
    fmt::format_to(out,
                   "<g class=\"server\" data-server=\"{}\">"
                   "<rect class=\"bar-before\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\">"
                   "<title>{}</title></rect>"
                   "<rect class=\"bar-after\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\">"
                   "<title>{}</title></rect>",
                   esc(b.key), x, y(b.before), bw, y(0) - y(b.before), kBarBeforeColour, esc(b.before_title), x + bw,
                   y(b.after), bw, y(0) - y(b.after), b.after_outside_band ? kBarOutsideColour : kBarAfterColour,
                   esc(b.after_title));
    if (bars.size() <= kLabelledServers)
      fmt::format_to(out,
                     "<text transform=\"translate({:.1f} {:.1f}) rotate(-40)\" font-size=\"9\" text-anchor=\"end\" "
                     "fill=\"#2d3748\">{}</text>",
                     x + bw, kTop + kChartHeight + 10, esc(b.name));
    o += "</g>\n";
  }
  fmt::format_to(out,
                 "<line x1=\"{:.0f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#c53030\" stroke-dasharray=\"4 3\">"
                 "<title>hard cap {:.0f} %</title></line>\n",
                 kLeft, width - 10, y(constraints.hard_cap), y(constraints.hard_cap), 100 * constraints.hard_cap);
  fmt::format_to(out,
                 "<line x1=\"{:.0f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#276749\" stroke-width=\"1.5\">"
                 "<title>class mean {:.1f} %</title></line>\n",
                 kLeft, width - 10, y(c.mean_util), y(c.mean_util), 100 * c.mean_util);
  o += "</svg>\n";
  return o;
}

std::string text_bar(double u, int width) {
  int full = static_cast<int>(std::lround(std::clamp(u, 0.0, 1.0) * width));
  std::string s;
  for (int i = 0; i < width; ++i) s += i < full ? "█" : "·";
  return s;
}

}  // namespace mailshard
