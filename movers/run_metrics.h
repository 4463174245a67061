// Metrics of the nightly rebalance for Prometheus, written as a file that
// node_exporter's textfile collector serves (--collector.textfile.directory):
// the text exposition format 0.0.4, every metric named mailshard_rebalance_*,
// each with HELP and TYPE. A run writes the file when it starts, at its
// progress reports and when it ends, so a dashboard sees the night as it goes
// and the last night after it. examples/grafana/mailshard-rebalance.json
// reads exactly these names (a unit test holds the two together).
//
// Everything is a gauge or a histogram of this run: the file is replaced each
// night, so nothing counts up across runs (no _total counters).
//
// Thread-safety: pure functions; write_metrics_file is safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/journal.h"

#include "core/plan.h"
#include "movers/plan_executor.h"
#include "util/result.h"

namespace mailshard {

enum class RunStatus {
  kRunning,      // the run is going on (the end timestamp is 0)
  kOk,           // the run ended with exit code 0
  kFailed,       // a move or the plan failed (exit code 1)
  kInterrupted,  // a signal or --stop ended it (exit code 130)
};
std::string_view run_status_name(RunStatus s);  // "running", "ok", "failed", "interrupted"

// Lockout histogram buckets, seconds: a lockout under a second is what the
// move protocol aims at; 30 s is where users notice.
inline constexpr double kLockoutBuckets[] = {0.1, 0.25, 0.5, 1, 2, 5, 10, 30};

// The metrics text for `r` (a progress report or the final one). `now_ms` is
// when the file is written (mailshard_rebalance_last_update_timestamp_seconds:
// an old value with status "running" means the run died), and the end time
// when r.finished_at_ms is not set. Server utilisation is run_report.h's
// run_server_figures: a server the plan does not know has none.
// `in_flight` are the journal's records of the run's moves running now: each
// is a sample of move_in_flight_bytes and move_in_flight_started_timestamp_seconds
// labelled with its id, user, servers, state and step (in id order).
std::string render_run_metrics(const ExecutionReport& r, const Plan& plan, RunStatus status, int64_t now_ms,
                               const std::vector<MoveRecord>& in_flight = {});

// Replaces `path` atomically with `text`, mode 0644 (node_exporter runs as
// another user): a temporary file in the same directory, renamed over it. The
// name must end in ".prom", the only files the textfile collector reads
// (kInvalidInput). Errors are one line naming the path: "metrics file
// '/x/rebalance.prom': cannot open directory '/x': No such file or directory".
Status write_metrics_file(const std::string& path, const std::string& text);

// Escapes a label value for the exposition format: \ " and newline.
std::string prometheus_label_value(std::string_view v);

}  // namespace mailshard
