#include <fmt/format.h>

#include "planners/report.h"
#include "planners/report_util.h"

namespace mailshard::planner {

namespace {

std::string esc(std::string_view s) {
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

// Chart geometry, in SVG user units (the SVG scales to the page width).
constexpr double kChartHeight = 260;  // 100 % utilisation
constexpr double kTop = 16, kLeft = 44, kBottom = 48;  // room below for slanted names
constexpr double kMaxGroup = 28, kMinGroup = 3;  // width of one server's pair of bars
constexpr size_t kLabelledServers = 40;          // above this, names only in tooltips
constexpr double kMaxPixelHeight = 360;          // a chart never takes more than this of the page

// One SVG per class: for every server a grey "before" and a blue "after" bar
// (red when still outside the band), the band and the hard cap as lines.
std::string class_chart(const Plan& p, const ClassOutcome& c) {
  using namespace report;
  std::vector<const ServerOutcome*> srv;
  for (const auto& s : p.servers)
    if (s.server_class == c.name) srv.push_back(&s);
  std::stable_sort(srv.begin(), srv.end(), [](auto* a, auto* b) {
    return util(a->used_before, a->capacity_bytes) > util(b->used_before, b->capacity_bytes);
  });
  const double group = std::clamp(1100.0 / static_cast<double>(std::max<size_t>(1, srv.size())), kMinGroup, kMaxGroup);
  const double width = kLeft + group * static_cast<double>(srv.size()) + 10;
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
  const double band = p.constraints.band;
  const double lo = std::max(0.0, c.mean_util - band), hi = std::min(c.mean_util + band, p.constraints.hard_cap);
  fmt::format_to(out, "<rect x=\"{:.0f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#c6f6d5\" opacity=\"0.6\">"
                 "<title>band {:.1f}–{:.1f} %</title></rect>\n",
                 kLeft, y(hi), width - 10 - kLeft, y(lo) - y(hi), 100 * lo, 100 * hi);
  for (size_t i = 0; i < srv.size(); ++i) {
    const ServerOutcome& s = *srv[i];
    const double x = kLeft + group * static_cast<double>(i);
    const double bw = std::max(1.0, group / 2 - 0.5);
    const double ub = util(s.used_before, s.capacity_bytes), ua = util(s.used_after, s.capacity_bytes);
    const std::string name = esc(server_name(p, s.id));
    const char* after_colour = s.after == BandState::kInside ? "#2b6cb0" : "#c53030";
    fmt::format_to(out,
                   "<g class=\"server\" data-server=\"{}\">"
                   "<rect class=\"bar-before\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"#a0aec0\">"
                   "<title>{}{} before: {:.1f} %</title></rect>"
                   "<rect class=\"bar-after\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\">"
                   "<title>{}{} after: {:.1f} % ({} in, {} out)</title></rect>",
                   s.id, x, y(ub), bw, y(0) - y(ub), name, s.draining ? " (draining)" : "", 100 * ub, x + bw, y(ua), bw,
                   y(0) - y(ua), after_colour, name, s.draining ? " (draining)" : "", 100 * ua, s.moves_in, s.moves_out);
    if (srv.size() <= kLabelledServers)
      fmt::format_to(out,
                     "<text transform=\"translate({:.1f} {:.1f}) rotate(-40)\" font-size=\"9\" text-anchor=\"end\" "
                     "fill=\"#2d3748\">{}</text>",
                     x + bw, kTop + kChartHeight + 10, name);
    o += "</g>\n";
  }
  fmt::format_to(out,
                 "<line x1=\"{:.0f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#c53030\" stroke-dasharray=\"4 3\">"
                 "<title>hard cap {:.0f} %</title></line>\n",
                 kLeft, width - 10, y(p.constraints.hard_cap), y(p.constraints.hard_cap), 100 * p.constraints.hard_cap);
  fmt::format_to(out,
                 "<line x1=\"{:.0f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#276749\" stroke-width=\"1.5\">"
                 "<title>class mean {:.1f} %</title></line>\n",
                 kLeft, width - 10, y(c.mean_util), y(c.mean_util), 100 * c.mean_util);
  o += "</svg>\n";
  return o;
}

}  // namespace

std::string render_html(const Plan& p, const std::string& hash) {
  using namespace report;
  std::string o;
  auto out = std::back_inserter(o);
  fmt::format_to(out,
                 "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<title>mailshard plan {}</title>\n<style>\n"
                 "body{{font-family:system-ui,sans-serif;margin:24px;color:#1a202c;max-width:1200px}}\n"
                 "table{{border-collapse:collapse;margin:8px 0 20px}} td,th{{border:1px solid #cbd5e0;padding:3px 8px;"
                 "text-align:right}} th{{background:#edf2f7}} td:first-child,th:first-child{{text-align:left}}\n"
                 ".partial{{background:#fff5f5;border-left:4px solid #c53030;padding:6px 12px}}\n"
                 ".legend span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:middle}}\n"
                 "</style></head><body>\n",
                 esc(hash.substr(0, 16)));
  fmt::format_to(out, "<h1>mailshard plan <code>{}</code></h1>\n", esc(hash.substr(0, 16)));
  fmt::format_to(out, "<p>Strategy <b>{}</b> on a snapshot of {} users and {} servers{}.<br>Constraints: {}.</p>\n",
                 esc(p.strategy), p.snapshot_users, p.snapshot_servers,
                 p.snapshot_source.empty() ? "" : " (" + esc(p.snapshot_source) + ")", esc(constraints_line(p.constraints)));
  fmt::format_to(out, "<p><b>{} moves, {}</b>, estimated {} in plan order over {} night{}.</p>\n", p.estimate.moves,
                 esc(human_bytes(p.estimate.bytes)), esc(duration(p.estimate.makespan_s)), p.estimate.nights,
                 p.estimate.nights == 1 ? "" : "s");
  if (p.partial) {
    o += "<div class=\"partial\"><b>The plan is partial:</b><ul>\n";
    for (const auto& r : p.partial_reasons) fmt::format_to(out, "<li>{}</li>\n", esc(r));
    o += "</ul></div>\n";
  }

  o += "<h2>Servers before and after</h2>\n<p class=\"legend\"><span style=\"background:#a0aec0\"></span>before"
       "<span style=\"background:#2b6cb0\"></span>after<span style=\"background:#c53030\"></span>after, outside the band"
       "<span style=\"background:#c6f6d5\"></span>band (class mean ± band); dashed red: hard cap. Servers sorted by "
       "utilisation before the plan.</p>\n";
  for (const auto& c : p.classes) {
    fmt::format_to(out, "<h3>Class {} ({} servers, mean {:.1f} %)</h3>\n", esc(c.name), c.servers, 100 * c.mean_util);
    o += class_chart(p, c);
  }

  o += "<h2>Against the lower bounds</h2>\n<table><tr><th></th><th>plan</th><th>lower bound</th><th>ratio</th></tr>\n";
  for (const auto& r : bound_rows(p))
    fmt::format_to(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", esc(r.what), esc(r.plan), esc(r.bound),
                   esc(r.ratio));
  o += "</table>\n";

  o += "<h2>Classes</h2>\n<table><tr><th>class</th><th>servers</th><th>mean</th><th>max − mean before → after</th>"
       "<th>std before → after</th><th>out of band before → after</th><th>load max/mean before → after</th></tr>\n";
  for (const auto& c : p.classes)
    fmt::format_to(out,
                   "<tr><td>{}</td><td>{}</td><td>{:.1f} %</td><td>{:.2f} → {:.2f} pp</td><td>{:.2f} → {:.2f} pp</td>"
                   "<td>{} → {}</td><td>{:.2f} → {:.2f}</td></tr>\n",
                   esc(c.name), c.servers, 100 * c.mean_util, 100 * c.max_minus_mean_before, 100 * c.max_minus_mean_after,
                   100 * c.std_before, 100 * c.std_after, c.out_of_band_before, c.out_of_band_after,
                   c.load_max_over_mean_before, c.load_max_over_mean_after);
  o += "</table>\n";

  if (p.estimate.per_night.size() > 1) {
    o += "<h2>Nights</h2>\n<table><tr><th>night</th><th>moves</th><th>bytes</th><th>duration</th></tr>\n";
    for (const auto& n : p.estimate.per_night)
      fmt::format_to(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", n.night, n.moves,
                     esc(human_bytes(n.bytes)), esc(duration(n.makespan_s)));
    o += "</table>\n";
  }

  o += "<h2>Warnings</h2>\n";
  if (p.warnings.empty()) o += "<p>None.</p>\n";
  else {
    o += "<ul>\n";
    for (const auto& w : p.warnings) fmt::format_to(out, "<li>{}</li>\n", esc(w));
    o += "</ul>\n";
  }

  fmt::format_to(out, "<h2>Top movers</h2>\n<p>The {} largest moves.</p>\n<table><tr><th>user</th><th>from</th><th>to</th>"
                 "<th>size</th><th>reason</th><th>night</th></tr>\n", std::min(kTopMovers, p.moves.size()));
  for (const auto* m : top_movers(p, kTopMovers))
    fmt::format_to(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                   esc(user_name(*m)), esc(server_name(p, m->from)), esc(server_name(p, m->to)),
                   esc(human_bytes(m->bytes)), move_reason_name(m->reason), m->night);
  o += "</table>\n";

  o += "<h2>Servers</h2>\n<table><tr><th>server</th><th>class</th><th>before</th><th>after</th><th>band</th>"
       "<th>load before → after</th><th>moves in/out</th><th>bytes in/out</th></tr>\n";
  for (const auto& s : p.servers)
    fmt::format_to(out,
                   "<tr><td>{}{}</td><td>{}</td><td>{:.1f} %</td><td>{:.1f} %</td><td>{:.1f}–{:.1f} %</td>"
                   "<td>{:.1f} → {:.1f}</td><td>{}/{}</td><td>{} / {}</td></tr>\n",
                   esc(server_name(p, s.id)), s.draining ? " (draining)" : "", esc(s.server_class),
                   100 * util(s.used_before, s.capacity_bytes), 100 * util(s.used_after, s.capacity_bytes),
                   100 * util(s.lower_bytes, s.capacity_bytes), 100 * util(s.upper_bytes, s.capacity_bytes), s.load_before,
                   s.load_after, s.moves_in, s.moves_out, esc(human_bytes(s.bytes_in)), esc(human_bytes(s.bytes_out)));
  o += "</table>\n</body></html>\n";
  return o;
}

}  // namespace mailshard::planner
