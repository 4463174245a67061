#include <fmt/format.h>

#include "core/report_format.h"
#include "planners/report.h"
#include "planners/report_util.h"

namespace mailshard::planner {

std::string render_markdown(const Plan& p, const std::string& hash) {
  using namespace report;
  std::string o;
  auto out = std::back_inserter(o);
  fmt::format_to(out, "# mailshard plan {}\n\n", hash.substr(0, 16));
  fmt::format_to(out, "Strategy **{}** on a snapshot of {} users and {} servers{}.\n\n", p.strategy, p.snapshot_users,
                 p.snapshot_servers, p.snapshot_source.empty() ? "" : " (" + p.snapshot_source + ")");
  fmt::format_to(out, "Constraints: {}.\n\n", constraints_line(p.constraints));
  fmt::format_to(out, "**{} moves, {}**, estimated {} in plan order over {} night{}.{}\n\n", p.estimate.moves,
                 human_bytes(p.estimate.bytes), duration(p.estimate.makespan_s), p.estimate.nights,
                 p.estimate.nights == 1 ? "" : "s", p.partial ? " **The plan is partial.**" : "");

  if (p.partial) {
    o += "## Why the plan is partial\n\n";
    for (const auto& r : p.partial_reasons) fmt::format_to(out, "- {}\n", r);
    o += "\n";
  }
  o += "## Warnings\n\n";
  if (p.warnings.empty()) o += "None.\n";
  for (const auto& w : p.warnings) fmt::format_to(out, "- {}\n", w);
  o += "\n";

  o += "## Against the lower bounds\n\n| | plan | lower bound | ratio |\n|---|---|---|---|\n";
  for (const auto& r : bound_rows(p)) fmt::format_to(out, "| {} | {} | {} | {} |\n", r.what, r.plan, r.bound, r.ratio);
  o += "\n";

  o += "## Classes\n\n| class | servers | mean | max − mean before → after | std before → after | out of band "
       "before → after | load max/mean before → after |\n|---|---|---|---|---|---|---|\n";
  for (const auto& c : p.classes)
    fmt::format_to(out, "| {} | {} | {:.1f} % | {:.2f} → {:.2f} pp | {:.2f} → {:.2f} pp | {} → {} | {:.2f} → {:.2f} |\n",
                   c.name, c.servers, 100 * c.mean_util, 100 * c.max_minus_mean_before, 100 * c.max_minus_mean_after,
                   100 * c.std_before, 100 * c.std_after, c.out_of_band_before, c.out_of_band_after,
                   c.load_max_over_mean_before, c.load_max_over_mean_after);
  o += "\n";

  if (p.estimate.per_night.size() > 1) {
    o += "## Nights\n\n| night | moves | bytes | duration |\n|---|---|---|---|\n";
    for (const auto& n : p.estimate.per_night)
      fmt::format_to(out, "| {} | {} | {} | {} |\n", n.night, n.moves, human_bytes(n.bytes), duration(n.makespan_s));
    o += "\n";
  }

  o += "## Servers before and after\n\nUtilisation (█ = 5 %); the band is [lower, upper].\n\n"
       "| server | class | before | after | bar before | bar after | band | moves in/out |\n"
       "|---|---|---|---|---|---|---|---|\n";
  for (const auto& s : p.servers)
    fmt::format_to(out, "| {}{} | {} | {:.1f} % | {:.1f} % | `{}` | `{}` | {:.1f}–{:.1f} % | {}/{} |\n",
                   server_name(p, s.id), s.draining ? " (draining)" : "", s.server_class,
                   100 * util(s.used_before, s.capacity_bytes), 100 * util(s.used_after, s.capacity_bytes),
                   text_bar(util(s.used_before, s.capacity_bytes), 20), text_bar(util(s.used_after, s.capacity_bytes), 20),
                   100 * util(s.lower_bytes, s.capacity_bytes), 100 * util(s.upper_bytes, s.capacity_bytes), s.moves_in,
                   s.moves_out);
  o += "\n";

  fmt::format_to(out, "## Top movers\n\nThe {} largest moves.\n\n| user | from | to | size | reason | night |\n"
                 "|---|---|---|---|---|---|\n", std::min(kTopMovers, p.moves.size()));
  for (const auto* m : top_movers(p, kTopMovers))
    fmt::format_to(out, "| {} | {} | {} | {} | {} | {} |\n", user_name(*m), server_name(p, m->from), server_name(p, m->to),
                   human_bytes(m->bytes), move_reason_name(m->reason), m->night);
  return o;
}

}  // namespace mailshard::planner
