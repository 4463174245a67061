#include "movers/run_report.h"

#include <algorithm>
#include <iterator>
#include <map>

#include <fmt/format.h>

#include "core/clock.h"
#include "core/report_format.h"
#include "util/duration.h"
#include "util/strings.h"

namespace mailshard {

namespace {

using Json = nlohmann::ordered_json;

std::string plan_server_name(const ServerOutcome& s) { return s.name.empty() ? std::to_string(s.id) : s.name; }

Json time_or_null(int64_t ms) { return ms > 0 ? Json(format_time_ms(ms)) : Json(nullptr); }
Json ms_or_null(int64_t ms) { return ms >= 0 ? Json(ms) : Json(nullptr); }
Json util_or_null(const std::optional<double>& u) { return u ? Json(*u) : Json(nullptr); }

std::string ms_or_dash(int64_t ms) { return ms >= 0 ? format_duration_ms(ms) : std::string("-"); }
std::string pct_or_dash(const std::optional<double>& u) { return u ? fmt::format("{:.1f} %", 100 * *u) : "-"; }

// The run's wall time in ms, 0 while it has not finished.
int64_t run_ms(const ExecutionReport& r) {
  return r.finished_at_ms > 0 && r.started_at_ms > 0 ? r.finished_at_ms - r.started_at_ms : 0;
}

// "; the deadline ... passed" when the run stopped early, else "".
std::string stop_suffix(const ExecutionReport& r) {
  if (!r.deadline_reached && !r.hard_stopped) return "";
  std::string why = r.stop_reason.empty() ? std::string("stopped early") : r.stop_reason;
  return "; " + why + (r.hard_stopped ? " (hard stop: running moves rolled back)" : "");
}

std::vector<const MoveOutcome*> moves_where(const ExecutionReport& r, bool done) {
  std::vector<const MoveOutcome*> v;
  for (const auto& m : r.moves)
    if ((m.result == MoveResult::kDone) == done) v.push_back(&m);
  return v;
}

// A markdown table cell: one line of printable ASCII, no | or HTML.
std::string md(std::string_view s) {
  std::string o;
  for (char ch : printable(s)) {
    switch (ch) {
      case '|': o += "\\|"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '`': o += "\\`"; break;
      default: o += ch;
    }
  }
  return o;
}

// The headline figures, as (what, value) rows for both pages.
std::vector<std::pair<std::string, std::string>> headline_rows(const ExecutionReport& r) {
  return {
      {"moves done", std::to_string(r.done)},
      {"failed", std::to_string(r.failed)},
      {"skipped", std::to_string(r.skipped)},
      {"not started", std::to_string(r.not_started)},
      {"bytes moved", human_bytes(r.bytes_transferred)},
      {"lockout p50 / p95 / max",
       fmt::format("{} / {} / {}", ms_or_dash(r.lockout_p50_ms), ms_or_dash(r.lockout_p95_ms), ms_or_dash(r.lockout_max_ms))},
      {"back-off events", std::to_string(r.backoff_events)},
      {"duration", r.finished_at_ms > 0 ? format_duration_ms(run_ms(r)) : std::string("running")},
      {"schedule bound (no schedule with these slots is shorter)",
       format_duration_ms(static_cast<int64_t>(schedule_bound_ms(r)))},
  };
}

std::string run_title(const std::string& hash, const ExecutionReport& r) {
  return fmt::format("mailshard rebalance: night {} of plan {}", r.night, hash.substr(0, 16));
}

std::string times_line(const ExecutionReport& r) {
  return fmt::format("Started {}, {}.", format_time_ms(r.started_at_ms),
                     r.finished_at_ms > 0 ? "finished " + format_time_ms(r.finished_at_ms) : std::string("still running"));
}

}  // namespace

std::vector<RunServerFigures> run_server_figures(const Plan& plan, const ExecutionReport& r) {
  std::map<std::string, const ServerOutcome*> by_name;
  for (const auto& s : plan.servers) by_name.emplace(plan_server_name(s), &s);
  std::vector<RunServerFigures> out;
  for (const auto& [name, run] : r.servers) {
    RunServerFigures f;
    f.run = &run;
    auto it = by_name.find(name);
    if (it != by_name.end()) f.planned = it->second;
    for (const auto& m : r.moves) {
      if (m.result != MoveResult::kDone) continue;
      if (m.to == name) ++f.moves_in_done, f.moved_in_bytes += m.bytes_planned;
      if (m.from == name) ++f.moves_out_done, f.moved_out_bytes += m.bytes_planned;
    }
    if (f.planned && f.planned->capacity_bytes > 0) {
      const double cap = static_cast<double>(f.planned->capacity_bytes);
      f.util_before = static_cast<double>(f.planned->used_before) / cap;
      f.util_after = static_cast<double>(f.planned->used_before + f.moved_in_bytes - f.moved_out_bytes) / cap;
    }
    out.push_back(f);
  }
  return out;
}

nlohmann::ordered_json run_report_json(const Plan& plan, const std::string& plan_hash, const ExecutionReport& r) {
  Json j;
  j["plan"] = plan_hash;
  j["night"] = r.night;
  j["started_at"] = time_or_null(r.started_at_ms);
  j["finished_at"] = time_or_null(r.finished_at_ms);
  j["seconds"] = r.finished_at_ms > 0 ? Json(static_cast<double>(run_ms(r)) / 1000.0) : Json(nullptr);
  j["finished"] = r.finished;
  j["done"] = r.done;
  j["failed"] = r.failed;
  j["skipped"] = r.skipped;
  j["not_started"] = r.not_started;
  j["elsewhere"] = r.elsewhere;
  j["elsewhere_done"] = r.elsewhere_done;
  j["taken_over"] = r.taken_over;
  j["running"] = r.running;
  j["peak_in_flight"] = r.peak_running;
  j["bytes_moved"] = r.bytes_transferred;
  j["lockout_p50_ms"] = ms_or_null(r.lockout_p50_ms);
  j["lockout_p95_ms"] = ms_or_null(r.lockout_p95_ms);
  j["lockout_max_ms"] = ms_or_null(r.lockout_max_ms);
  j["backoff_events"] = r.backoff_events;
  j["deadline_reached"] = r.deadline_reached;
  j["hard_stopped"] = r.hard_stopped;
  j["stop_reason"] = r.stop_reason;
  j["schedule_bound_seconds"] = schedule_bound_ms(r) / 1000.0;

  Json servers = Json::array();
  for (const auto& f : run_server_figures(plan, r)) {
    const ServerRun& s = *f.run;
    Json o;
    o["name"] = s.name;
    o["slots_max"] = {{"out", s.max.out}, {"in", s.max.in}};
    o["slots_end"] = {{"out", s.slots.out}, {"in", s.slots.in}};
    o["failures"] = s.failures;
    o["skipped"] = s.skipped;
    o["backoff_events"] = s.backoff_events;
    o["samples"] = s.samples;
    o["sample_errors"] = s.sample_errors;
    o["bytes_in"] = s.bytes_in;
    o["bytes_out"] = s.bytes_out;
    o["moves_in_done"] = f.moves_in_done;
    o["moves_out_done"] = f.moves_out_done;
    o["util_before"] = util_or_null(f.util_before);
    o["util_after"] = util_or_null(f.util_after);
    servers.push_back(std::move(o));
  }
  j["servers"] = std::move(servers);

  Json moves = Json::array(), remaining = Json::array();
  for (const auto& m : r.moves) {
    Json o;
    o["user"] = m.user;
    o["from"] = m.from;
    o["to"] = m.to;
    o["bytes_planned"] = m.bytes_planned;
    o["result"] = move_result_name(m.result);
    o["reason"] = m.reason;
    o["move_id"] = m.move_id;
    o["state"] = m.state;
    o["bytes_transferred"] = m.bytes_transferred;
    o["lockout_ms"] = ms_or_null(m.lockout_ms);
    o["started_at"] = time_or_null(m.started_at_ms);
    o["finished_at"] = time_or_null(m.finished_at_ms);
    if (m.elsewhere) o["elsewhere"] = true;
    if (m.slot_waits > 0) o["slot_waits"] = m.slot_waits;
    moves.push_back(std::move(o));
    if (m.result != MoveResult::kDone && !(m.elsewhere && m.state == "done"))
      remaining.push_back(Json{{"user", m.user}, {"from", m.from}, {"to", m.to}, {"bytes_planned", m.bytes_planned}});
  }
  j["moves"] = std::move(moves);
  j["remaining"] = std::move(remaining);
  return j;
}

std::string render_run_text(const Plan& plan, const std::string& plan_hash, const ExecutionReport& r) {
  std::string o;
  auto out = std::back_inserter(o);
  for (const auto* m : moves_where(r, false)) {
    if (m->elsewhere && m->state == "done") continue;  // done, by another controller of a shared night
    // "not started: the deadline ... passed" already says what happened.
    const std::string result = m->result == MoveResult::kNotStarted ? "not started" : std::string(move_result_name(m->result));
    const std::string why = printable(m->reason, 500);
    fmt::format_to(out, "{} {} -> {}: {}\n", printable(m->user), printable(m->from), printable(m->to),
                   why.empty() ? result : starts_with(why, result) ? why : result + ": " + why);
  }
  for (const auto& f : run_server_figures(plan, r)) {
    const ServerRun& s = *f.run;
    fmt::format_to(out, "server {}: {} -> {}, {} in / {} out done, {} failure{}, {} back-off event{}{}\n",
                   printable(s.name), pct_or_dash(f.util_before), pct_or_dash(f.util_after), f.moves_in_done,
                   f.moves_out_done, s.failures, s.failures == 1 ? "" : "s", s.backoff_events,
                   s.backoff_events == 1 ? "" : "s", s.skipped ? ", skipped (failed too often)" : "");
  }
  fmt::format_to(out,
                 "rebalance plan {} night {}: {} done, {} failed, {} skipped{}, {} not started; {} moved; lockout p50 {} "
                 "p95 {} max {}; {} back-off event{}{}\n",
                 plan_hash, r.night, r.done, r.failed, r.skipped,
                 r.elsewhere > 0 ? fmt::format(" ({} run by another controller, {} of them done)", r.elsewhere,
                                               r.elsewhere_done)
                                 : std::string(),
                 r.not_started, human_bytes(r.bytes_transferred),
                 ms_or_dash(r.lockout_p50_ms), ms_or_dash(r.lockout_p95_ms), ms_or_dash(r.lockout_max_ms),
                 r.backoff_events, r.backoff_events == 1 ? "" : "s", stop_suffix(r));
  return o;
}

std::string render_run_markdown(const Plan& plan, const std::string& plan_hash, const ExecutionReport& r) {
  std::string o;
  auto out = std::back_inserter(o);
  fmt::format_to(out, "# {}\n\n{}{}\n\n", run_title(plan_hash, r), times_line(r),
                 r.deadline_reached || r.hard_stopped ? " **Stopped early: " + md(stop_suffix(r).substr(2)) + ".**" : "");
  o += "| | |\n|---|---|\n";
  for (const auto& [what, value] : headline_rows(r)) fmt::format_to(out, "| {} | {} |\n", what, value);

  o += "\n## Servers before and after\n\nUtilisation (█ = 5 %): before is the fleet the plan was made from, after "
       "adds the moves done.\n\n| server | before | after | bar before | bar after | moves in/out done | failures | "
       "skipped |\n|---|---|---|---|---|---|---|---|\n";
  const auto figures = run_server_figures(plan, r);
  for (const auto& f : figures)
    fmt::format_to(out, "| {} | {} | {} | `{}` | `{}` | {}/{} | {} | {} |\n", md(f.run->name), pct_or_dash(f.util_before),
                   pct_or_dash(f.util_after), f.util_before ? text_bar(*f.util_before, 20) : "",
                   f.util_after ? text_bar(*f.util_after, 20) : "", f.moves_in_done, f.moves_out_done, f.run->failures,
                   f.run->skipped ? "yes" : "no");

  o += "\n## Back-off\n\n| server | back-off events | slots out/in max | slots out/in at the end | load samples | "
       "sample errors |\n|---|---|---|---|---|---|\n";
  for (const auto& f : figures)
    fmt::format_to(out, "| {} | {} | {}/{} | {}/{} | {} | {} |\n", md(f.run->name), f.run->backoff_events, f.run->max.out,
                   f.run->max.in, f.run->slots.out, f.run->slots.in, f.run->samples, f.run->sample_errors);

  const auto not_done = moves_where(r, false);
  fmt::format_to(out, "\n## Moves not done ({})\n\n", not_done.size());
  if (not_done.empty()) o += "None.\n";
  else {
    o += "| user | from | to | size | result | reason |\n|---|---|---|---|---|---|\n";
    for (const auto* m : not_done)
      fmt::format_to(out, "| {} | {} | {} | {} | {} | {} |\n", md(m->user), md(m->from), md(m->to),
                     human_bytes(m->bytes_planned), move_result_name(m->result), md(m->reason));
  }

  const auto done = moves_where(r, true);
  fmt::format_to(out, "\n## Moves done ({})\n\n", done.size());
  if (done.size() > kRunReportDoneRows)
    fmt::format_to(out, "The first {} in plan order; the JSON report lists every move.\n\n", kRunReportDoneRows);
  if (done.empty()) o += "None.\n";
  else {
    o += "| user | from | to | size | transferred | lockout | duration |\n|---|---|---|---|---|---|---|\n";
    for (size_t i = 0; i < done.size() && i < kRunReportDoneRows; ++i) {
      const MoveOutcome& m = *done[i];
      fmt::format_to(out, "| {} | {} | {} | {} | {} | {} | {} |\n", md(m.user), md(m.from), md(m.to),
                     human_bytes(m.bytes_planned), human_bytes(m.bytes_transferred), ms_or_dash(m.lockout_ms),
                     format_duration_ms(m.finished_at_ms - m.started_at_ms));
    }
  }
  return o;
}

std::string render_run_html(const Plan& plan, const std::string& plan_hash, const ExecutionReport& r) {
  const auto& esc = html_escape;
  std::string o;
  auto out = std::back_inserter(o);
  const std::string title = run_title(plan_hash, r);
  fmt::format_to(out,
                 "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\n{}"
                 "</style></head><body>\n<h1>{}</h1>\n<p>{}</p>\n",
                 esc(title), report_css(), esc(title), esc(times_line(r)));
  if (r.deadline_reached || r.hard_stopped)
    fmt::format_to(out, "<div class=\"partial\"><b>Stopped early:</b> {}.</div>\n", esc(stop_suffix(r).substr(2)));
  o += "<table>\n";
  for (const auto& [what, value] : headline_rows(r))
    fmt::format_to(out, "<tr><td>{}</td><td>{}</td></tr>\n", esc(what), esc(value));
  o += "</table>\n";

  // The bars: one chart per class of the plan, servers the plan does not
  // know only in the table below.
  fmt::format_to(out,
                 "<h2>Servers before and after</h2>\n<p class=\"legend\"><span style=\"background:{}\"></span>before"
                 "<span style=\"background:{}\"></span>after this night<span style=\"background:{}\"></span>after, "
                 "outside the band<span style=\"background:{}\"></span>band (class mean ± band); dashed red: hard cap. "
                 "Before is the fleet the plan was made from; after adds the moves done. Servers sorted by utilisation "
                 "before.</p>\n",
                 kBarBeforeColour, kBarAfterColour, kBarOutsideColour, kBandColour);
  const auto figures = run_server_figures(plan, r);
  for (const auto& c : plan.classes) {
    std::vector<const RunServerFigures*> in_class;
    for (const auto& f : figures)
      if (f.util_before && f.planned->server_class == c.name) in_class.push_back(&f);
    if (in_class.empty()) continue;
    std::stable_sort(in_class.begin(), in_class.end(), [](auto* a, auto* b) { return *a->util_before > *b->util_before; });
    std::vector<UtilBars> bars;
    for (const auto* f : in_class) {
      const ServerOutcome& s = *f->planned;
      const double cap = static_cast<double>(s.capacity_bytes);
      const bool outside = *f->util_after < static_cast<double>(s.lower_bytes) / cap ||
                           *f->util_after > static_cast<double>(s.upper_bytes) / cap;
      bars.push_back({f->run->name, f->run->name, *f->util_before, *f->util_after, outside,
                      fmt::format("{} before: {:.1f} %", f->run->name, 100 * *f->util_before),
                      fmt::format("{} after this night: {:.1f} % ({} in, {} out done)", f->run->name,
                                  100 * *f->util_after, f->moves_in_done, f->moves_out_done)});
    }
    fmt::format_to(out, "<h3>Class {} ({} servers of this night)</h3>\n", esc(c.name), bars.size());
    o += class_util_chart(plan.constraints, c, bars);
  }

  o += "<h2>Servers</h2>\n<table><tr><th>server</th><th>before</th><th>after</th><th>moves in/out done</th>"
       "<th>moved in/out</th><th>failures</th><th>skipped</th></tr>\n";
  for (const auto& f : figures)
    fmt::format_to(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>\n",
                   esc(f.run->name), esc(pct_or_dash(f.util_before)), esc(pct_or_dash(f.util_after)), f.moves_in_done,
                   f.moves_out_done, esc(human_bytes(f.moved_in_bytes)), esc(human_bytes(f.moved_out_bytes)),
                   f.run->failures, f.run->skipped ? "yes (failed too often)" : "no");
  o += "</table>\n";

  o += "<h2>Back-off</h2>\n<table><tr><th>server</th><th>back-off events</th><th>slots out/in max</th>"
       "<th>slots out/in at the end</th><th>load samples</th><th>sample errors</th></tr>\n";
  for (const auto& f : figures)
    fmt::format_to(out, "<tr><td>{}</td><td>{}</td><td>{}/{}</td><td>{}/{}</td><td>{}</td><td>{}</td></tr>\n",
                   esc(f.run->name), f.run->backoff_events, f.run->max.out, f.run->max.in, f.run->slots.out,
                   f.run->slots.in, f.run->samples, f.run->sample_errors);
  o += "</table>\n";

  const auto not_done = moves_where(r, false);
  fmt::format_to(out, "<h2>Moves not done ({})</h2>\n", not_done.size());
  if (not_done.empty()) o += "<p>None.</p>\n";
  else {
    o += "<table class=\"not-done\"><tr><th>user</th><th>from</th><th>to</th><th>size</th><th>result</th>"
         "<th>reason</th></tr>\n";
    for (const auto* m : not_done)
      fmt::format_to(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", esc(m->user),
                     esc(m->from), esc(m->to), esc(human_bytes(m->bytes_planned)), move_result_name(m->result),
                     esc(m->reason));
    o += "</table>\n";
  }

  const auto done = moves_where(r, true);
  fmt::format_to(out, "<h2>Moves done ({})</h2>\n", done.size());
  if (done.size() > kRunReportDoneRows)
    fmt::format_to(out, "<p>The first {} in plan order; the JSON report lists every move.</p>\n", kRunReportDoneRows);
  if (done.empty()) o += "<p>None.</p>\n";
  else {
    o += "<table class=\"done\"><tr><th>user</th><th>from</th><th>to</th><th>size</th><th>transferred</th>"
         "<th>lockout</th><th>duration</th></tr>\n";
    for (size_t i = 0; i < done.size() && i < kRunReportDoneRows; ++i) {
      const MoveOutcome& m = *done[i];
      fmt::format_to(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                     esc(m.user), esc(m.from), esc(m.to), esc(human_bytes(m.bytes_planned)),
                     esc(human_bytes(m.bytes_transferred)), esc(ms_or_dash(m.lockout_ms)),
                     esc(format_duration_ms(m.finished_at_ms - m.started_at_ms)));
    }
    o += "</table>\n";
  }
  o += "</body></html>\n";
  return o;
}

}  // namespace mailshard
