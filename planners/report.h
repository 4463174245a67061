// Plan renderers: text only, no I/O (the CLI writes the files).
//  - render_csv:      user_id,from_server,to_server,size_bytes[,night] in plan
//                     order: what ../shared/bench/metrics.py scores (the night
//                     column appears when the plan may span nights);
//  - render_summary:  the one JSON object `mailshard plan --json` prints;
//  - render_markdown / render_html: the report for a person: servers before
//    and after as bars (inline SVG in HTML), top movers, bytes and moves
//    against the lower bounds, estimated duration and nights, every warning.
// The full plan JSON is core/plan.h's plan_to_pretty_json.
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "core/plan.h"

namespace mailshard::planner {

std::string render_csv(const Plan& plan);
std::string render_summary(const Plan& plan, const std::string& hash);
std::string render_markdown(const Plan& plan, const std::string& hash);
std::string render_html(const Plan& plan, const std::string& hash);

// How many of the largest moves the reports list.
constexpr size_t kTopMovers = 20;

}  // namespace mailshard::planner
