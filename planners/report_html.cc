#include <fmt/format.h>

#include "core/report_format.h"
#include "planners/report.h"
#include "planners/report_util.h"

namespace mailshard::planner {

namespace {

const auto& esc = html_escape;

// One chart per class, servers sorted by utilisation before the plan; after
// is red when the server ends outside its band.
std::string class_chart(const Plan& p, const ClassOutcome& c) {
  using namespace report;
  std::vector<const ServerOutcome*> srv;
  for (const auto& s : p.servers)
    if (s.server_class == c.name) srv.push_back(&s);
  std::stable_sort(srv.begin(), srv.end(), [](auto* a, auto* b) {
    return util(a->used_before, a->capacity_bytes) > util(b->used_before, b->capacity_bytes);
  });
  std::vector<UtilBars> bars;
  for (const ServerOutcome* s : srv) {
    const double ub = util(s->used_before, s->capacity_bytes), ua = util(s->used_after, s->capacity_bytes);
    const std::string name = server_name(p, s->id), note = s->draining ? " (draining)" : "";
    bars.push_back({std::to_string(s->id), name, ub, ua, s->after != BandState::kInside,
                    fmt::format("{}{} before: {:.1f} %", name, note, 100 * ub),
                    fmt::format("{}{} after: {:.1f} % ({} in, {} out)", name, note, 100 * ua, s->moves_in, s->moves_out)});
  }
  return class_util_chart(p.constraints, c, bars);
}

}  // namespace

std::string render_html(const Plan& p, const std::string& hash) {
  using namespace report;
  std::string o;
  auto out = std::back_inserter(o);
  fmt::format_to(out,
                 "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<title>mailshard plan {}</title>\n<style>\n{}</style></head><body>\n",
                 esc(hash.substr(0, 16)), report_css());
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
