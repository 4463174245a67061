#include "movers/run_metrics.h"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "movers/run_report.h"
#include "util/fs.h"
#include "util/strings.h"

namespace mailshard {

namespace {

constexpr std::string_view kPrefix = "mailshard_rebalance_";
constexpr RunStatus kStatuses[] = {RunStatus::kRunning, RunStatus::kOk, RunStatus::kFailed, RunStatus::kInterrupted};
constexpr MoveResult kResults[] = {MoveResult::kDone, MoveResult::kFailed, MoveResult::kSkipped, MoveResult::kNotStarted};

// Appends metric families: header() once per family, then its samples.
class Exposition {
 public:
  void header(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(text_), "# HELP {}{} {}\n# TYPE {}{} {}\n", kPrefix, name, help, kPrefix, name, type);
  }
  // `labels` is already `{a="x",b="y"}` or "".
  void sample(std::string_view name, std::string_view labels, double value) {
    fmt::format_to(std::back_inserter(text_), "{}{}{} {}\n", kPrefix, name, labels, value);
  }
  void sample(std::string_view name, std::string_view labels, int64_t value) {
    fmt::format_to(std::back_inserter(text_), "{}{}{} {}\n", kPrefix, name, labels, value);
  }
  void gauge(std::string_view name, std::string_view help, double value) {
    header(name, "gauge", help);
    sample(name, "", value);
  }
  void gauge(std::string_view name, std::string_view help, int64_t value) {
    header(name, "gauge", help);
    sample(name, "", value);
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

std::string server_label(const std::string& server) { return "server=\"" + prometheus_label_value(server) + "\""; }

double seconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }

}  // namespace

std::string_view run_status_name(RunStatus s) {
  switch (s) {
    case RunStatus::kRunning: return "running";
    case RunStatus::kOk: return "ok";
    case RunStatus::kFailed: return "failed";
    case RunStatus::kInterrupted: return "interrupted";
  }
  return "unknown";
}

std::string prometheus_label_value(std::string_view v) {
  std::string o;
  for (char ch : v) {
    switch (ch) {
      case '\\': o += "\\\\"; break;
      case '"': o += "\\\""; break;
      case '\n': o += "\\n"; break;
      default: o += ch;
    }
  }
  return o;
}

std::string render_run_metrics(const ExecutionReport& r, const Plan& plan, RunStatus status, int64_t now_ms,
                               const std::vector<MoveRecord>& in_flight) {
  Exposition e;
  e.gauge("last_run_start_timestamp_seconds", "When the last rebalance run started (Unix time).", seconds(r.started_at_ms));
  const int64_t end_ms = status == RunStatus::kRunning ? 0 : r.finished_at_ms > 0 ? r.finished_at_ms : now_ms;
  e.gauge("last_run_end_timestamp_seconds", "When the last rebalance run ended (Unix time); 0 while it runs.",
          seconds(end_ms));
  e.gauge("last_update_timestamp_seconds",
          "When mailshard last wrote these metrics (Unix time); old with status running: the run died.", seconds(now_ms));
  e.gauge("last_run_night", "The plan's night the last run executed (0: every night).", int64_t{r.night});

  e.header("last_run_status", "gauge", "1 for the state of the last rebalance run, 0 for the others.");
  for (RunStatus s : kStatuses)
    e.sample("last_run_status", fmt::format("{{status=\"{}\"}}", run_status_name(s)), int64_t{s == status ? 1 : 0});

  e.header("moves", "gauge", "Moves of the last run by result (not_started includes moves still queued).");
  for (MoveResult m : kResults) {
    const int64_t n = m == MoveResult::kDone      ? r.done
                      : m == MoveResult::kFailed  ? r.failed
                      : m == MoveResult::kSkipped ? r.skipped
                                                  : r.not_started;
    e.sample("moves", fmt::format("{{result=\"{}\"}}", move_result_name(m)), n);
  }
  e.gauge("moves_in_flight", "Moves of the last run running now.", r.running);
  e.gauge("bytes_moved", "Bytes the last run's moves sent, every pass counted.", r.bytes_transferred);

  // Each move running now, from the journal: where it is and what it has sent.
  std::vector<const MoveRecord*> running;
  for (const auto& m : in_flight) running.push_back(&m);
  std::sort(running.begin(), running.end(), [](const MoveRecord* a, const MoveRecord* b) { return a->id < b->id; });
  auto move_labels = [](const MoveRecord& m) {
    return fmt::format("{{move=\"{}\",user=\"{}\",from=\"{}\",to=\"{}\",state=\"{}\",step=\"{}\"}}", m.id,
                       prometheus_label_value(m.user), prometheus_label_value(m.from_server),
                       prometheus_label_value(m.to_server), move_state_name(m.state), prometheus_label_value(m.step));
  };
  e.header("move_in_flight_bytes", "gauge", "Bytes each move of the last run running now has sent so far (every pass).");
  for (const MoveRecord* m : running) e.sample("move_in_flight_bytes", move_labels(*m), m->bytes_transferred);
  e.header("move_in_flight_started_timestamp_seconds", "gauge",
           "When each move of the last run running now started (Unix time).");
  for (const MoveRecord* m : running)
    e.sample("move_in_flight_started_timestamp_seconds", move_labels(*m), seconds(m->started_at_ms));
  e.gauge("backoff_events", "Times the last run halved a server's slots because of its load.", r.backoff_events);

  // Lockout: freeze to thaw of each done move, cumulative buckets.
  std::vector<double> lockouts;
  for (const auto& m : r.moves)
    if (m.result == MoveResult::kDone && m.lockout_ms >= 0) lockouts.push_back(seconds(m.lockout_ms));
  e.header("lockout_seconds", "histogram", "How long each done move of the last run kept its user out (freeze to thaw).");
  double sum = 0;
  for (double l : lockouts) sum += l;
  for (double le : kLockoutBuckets) {
    int64_t n = 0;
    for (double l : lockouts) n += l <= le ? 1 : 0;
    e.sample("lockout_seconds_bucket", fmt::format("{{le=\"{}\"}}", le), n);
  }
  e.sample("lockout_seconds_bucket", "{le=\"+Inf\"}", static_cast<int64_t>(lockouts.size()));
  e.sample("lockout_seconds_sum", "", sum);
  e.sample("lockout_seconds_count", "", static_cast<int64_t>(lockouts.size()));

  const auto figures = run_server_figures(plan, r);
  e.header("slots", "gauge", "A server's move slots now (after back-off), as source (out) and destination (in).");
  for (const auto& f : figures) {
    e.sample("slots", fmt::format("{{{},direction=\"out\"}}", server_label(f.run->name)), int64_t{f.run->slots.out});
    e.sample("slots", fmt::format("{{{},direction=\"in\"}}", server_label(f.run->name)), int64_t{f.run->slots.in});
  }
  e.header("server_utilisation", "gauge",
           "Used bytes over capacity: before the plan, and after the moves done so far (servers the plan knows).");
  for (const auto& f : figures) {
    if (!f.util_before) continue;
    e.sample("server_utilisation", fmt::format("{{{},when=\"before\"}}", server_label(f.run->name)), *f.util_before);
    e.sample("server_utilisation", fmt::format("{{{},when=\"after\"}}", server_label(f.run->name)), *f.util_after);
  }
  e.header("server_failures", "gauge", "Moves of the last run that failed, per server (as source or destination).");
  for (const auto& f : figures)
    e.sample("server_failures", fmt::format("{{{}}}", server_label(f.run->name)), int64_t{f.run->failures});
  e.header("server_skipped", "gauge", "1 when the last run stopped giving a server moves because they kept failing.");
  for (const auto& f : figures)
    e.sample("server_skipped", fmt::format("{{{}}}", server_label(f.run->name)), int64_t{f.run->skipped ? 1 : 0});
  return e.take();
}

Status write_metrics_file(const std::string& path, const std::string& text) {
  if (!ends_with(path, ".prom"))
    return Error::invalid(fmt::format("metrics file '{}': the name must end in .prom (node_exporter's textfile "
                                      "collector reads no other)",
                                      printable(path)));
  // Not fsynced: the next progress report writes it again.
  if (auto st = write_file_atomic(path, text, 0644, FileSync::kNoSync); !st.ok())
    return std::move(st).error().context(fmt::format("metrics file '{}'", printable(path)));
  return {};
}

}  // namespace mailshard
