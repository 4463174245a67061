// The report of one night of `mailshard rebalance`: what the executor did with
// the plan's moves, for a person in the morning and for tools.
//  - run_report_json:     one JSON object: counts, lockout, stops, every server
//                         (slots, failures, back-off, utilisation before and
//                         after), every move, and what is left for next night;
//  - render_run_text:     the summary printed when the run ends;
//  - render_run_markdown / render_run_html: the page for the morning, with the
//                         plan report's before/after bars (core/report_format.h).
// Text only, no I/O: the caller writes the files.
//
// Utilisation. Before is the plan's used_before / capacity_bytes: the fleet
// the plan was made from (for night 2 and later, that is before night 1).
// After is before plus the mailbox sizes (bytes_planned) of the moves that
// finished as done, in minus out. ServerRun::bytes_in/out are not used for it:
// they are bytes sent over the wire, summed over every pass of a move. The
// run's servers are matched to the plan's by name (a plan server without a
// name is named by its id, as the executor does); a server the plan does not
// know, or of capacity 0, has no utilisation (null in JSON, "-" in text).
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/plan.h"
#include "movers/plan_executor.h"

namespace mailshard {

// One server of the run with what the plan knows of it.
struct RunServerFigures {
  const ServerRun* run = nullptr;               // never null
  const ServerOutcome* planned = nullptr;       // null: not in the plan
  int64_t moves_in_done = 0, moves_out_done = 0;
  int64_t moved_in_bytes = 0, moved_out_bytes = 0;  // bytes_planned of done moves
  std::optional<double> util_before, util_after;    // fractions of capacity
};

// The run's servers in name order (ExecutionReport::servers order).
std::vector<RunServerFigures> run_server_figures(const Plan& plan, const ExecutionReport& r);

nlohmann::ordered_json run_report_json(const Plan& plan, const std::string& plan_hash, const ExecutionReport& r);
std::string render_run_text(const Plan& plan, const std::string& plan_hash, const ExecutionReport& r);
std::string render_run_markdown(const Plan& plan, const std::string& plan_hash, const ExecutionReport& r);
std::string render_run_html(const Plan& plan, const std::string& plan_hash, const ExecutionReport& r);

// The markdown and HTML pages list at most this many done moves (the JSON
// lists every move): a night of 20k moves would make a page nobody opens.
constexpr size_t kRunReportDoneRows = 500;

}  // namespace mailshard
