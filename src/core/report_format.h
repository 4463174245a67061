// Pieces shared by the reports for a person: the plan report (planners/
// report_html.cc, report_markdown.cc) and the run report (movers/
// run_report.cc). Both draw servers as pairs of bars, grey before and blue
// after, one SVG per server class with the class band, its mean and the hard
// cap (text bars in markdown), so a plan and the night that ran it look alike.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/plan.h"

namespace mailshard {

// Escapes < > & " ' for text and attribute values. Every string that comes
// from outside (user and server names, reasons, warnings) goes through it.
std::string html_escape(std::string_view s);

// The <style> sheet of the reports (no external resource).
std::string_view report_css();

// One server's pair of bars in a class chart. Plain text: the chart escapes.
struct UtilBars {
  std::string key;                  // the group's data-server attribute
  std::string name;                 // label under the bars
  double before = 0, after = 0;     // utilisation, fraction of capacity
  bool after_outside_band = false;  // after in red instead of blue
  std::string before_title, after_title;  // tooltips
};

// Bar colours, for legends and for tests that look at screenshots.
inline constexpr std::string_view kBarBeforeColour = "#a0aec0";
inline constexpr std::string_view kBarAfterColour = "#2b6cb0";
inline constexpr std::string_view kBarOutsideColour = "#c53030";
inline constexpr std::string_view kBandColour = "#c6f6d5";

// One inline SVG for class `cls`: a 0-100 % grid, the band (class mean +-
// band, capped at the hard cap), the bars in the order given (labelled when
// there are few enough), the hard cap dashed and the class mean as lines.
std::string class_util_chart(const Constraints& constraints, const ClassOutcome& cls, const std::vector<UtilBars>& bars);

// A text bar of `width` cells (█ full, · empty) for a utilisation in [0, 1].
std::string text_bar(double u, int width);

}  // namespace mailshard
