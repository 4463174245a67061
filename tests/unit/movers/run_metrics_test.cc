// The rebalance metrics file: names, HELP and TYPE, labels and their
// escaping, the lockout histogram, promtool's verdict on the text, and the
// atomic 0644 write with one-line errors.
#include "movers/run_metrics.h"

#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/unit/movers/run_fixture.h"
#include "util/fs.h"
#include "util/strings.h"
#include "util/subprocess.h"

namespace mailshard {
namespace {

using testing::run_plan;
using testing::run_report;

constexpr int64_t kNow = testing::kRunStart + 3'700'000;

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : split(text, '\n'))
    if (l == line) return true;
  return false;
}

TEST(RunMetrics, EveryFamilyHasHelpAndTypeAndThePrefix) {
  std::string t = render_run_metrics(run_report(), run_plan(), RunStatus::kOk, kNow);
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  for (const auto& l : split(t, '\n')) {
    if (l.empty()) continue;
    auto parts = split(l, ' ');
    if (starts_with(l, "# TYPE ")) types[parts[2]] = parts[3];
    else if (starts_with(l, "# HELP ")) helped.insert(parts[2]);
    else {
      std::string name = l.substr(0, l.find_first_of("{ "));
      EXPECT_TRUE(starts_with(name, "mailshard_rebalance_")) << l;
      std::string family = name;
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (ends_with(name, suffix) && types.count(name.substr(0, name.size() - std::string(suffix).size())))
          family = name.substr(0, name.size() - std::string(suffix).size());
      EXPECT_TRUE(types.count(family)) << "no TYPE before " << l;
      EXPECT_TRUE(helped.count(family)) << "no HELP before " << l;
    }
  }
  EXPECT_EQ(types["mailshard_rebalance_last_run_start_timestamp_seconds"], "gauge");
  EXPECT_EQ(types["mailshard_rebalance_moves"], "gauge");
  EXPECT_EQ(types["mailshard_rebalance_lockout_seconds"], "histogram");
  for (const auto& [name, type] : types) EXPECT_NE(type, "counter") << name;  // nothing counts across runs
}

TEST(RunMetrics, RunFiguresAndStatus) {
  std::string t = render_run_metrics(run_report(), run_plan(), RunStatus::kInterrupted, kNow);
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_start_timestamp_seconds 1764900000")) << t;
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_end_timestamp_seconds 1764903600"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_update_timestamp_seconds 1764903700"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_night 2"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_status{status=\"running\"} 0"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_status{status=\"ok\"} 0"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_status{status=\"failed\"} 0"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_status{status=\"interrupted\"} 1"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_moves{result=\"done\"} 3"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_moves{result=\"failed\"} 1"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_moves{result=\"skipped\"} 1"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_moves{result=\"not_started\"} 1"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_moves_in_flight 0"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_bytes_moved 4150"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_backoff_events 2"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_slots{server=\"store1\",direction=\"out\"} 1"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_slots{server=\"store1\",direction=\"in\"} 2"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_server_utilisation{server=\"store1\",when=\"before\"} 0.8"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_server_utilisation{server=\"store1\",when=\"after\"} 0.5"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_server_utilisation{server=\"store2\",when=\"after\"} 0.51"));
  EXPECT_EQ(t.find("mailshard_rebalance_server_utilisation{server=\"ghost\""), std::string::npos);  // not in the plan
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_slots{server=\"ghost\",direction=\"out\"} 2"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_server_failures{server=\"store1\"} 3"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_server_skipped{server=\"store1\"} 1"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_server_skipped{server=\"store2\"} 0"));
}

TEST(RunMetrics, WhileRunningTheEndIsZeroAndMovesInFlightCount) {
  ExecutionReport r = run_report();
  r.finished = false;
  r.finished_at_ms = 0;
  r.running = 2;
  std::string t = render_run_metrics(r, run_plan(), RunStatus::kRunning, kNow);
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_end_timestamp_seconds 0"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_status{status=\"running\"} 1"));
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_moves_in_flight 2"));
  EXPECT_TRUE(has_line(t, "# TYPE mailshard_rebalance_move_in_flight_bytes gauge")) << "the family, even with none";
  // Each move in flight, from the journal: its step and bytes so far.
  MoveRecord a, b;
  a.id = 12;
  a.user = "alice@example.org";
  a.from_server = "store1";
  a.to_server = "store2";
  a.state = MoveState::kPrecopy;
  a.step = "precopy";
  a.bytes_transferred = 1048576;
  a.started_at_ms = 1'764'903'000'000;
  b = a;
  b.id = 7;
  b.user = "bob \"b\"@example.org";
  b.state = MoveState::kFrozen;
  b.step = "final_sync";
  b.bytes_transferred = 20;
  t = render_run_metrics(r, run_plan(), RunStatus::kRunning, kNow, {a, b});
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_move_in_flight_bytes{move=\"12\",user=\"alice@example.org\","
                          "from=\"store1\",to=\"store2\",state=\"precopy\",step=\"precopy\"} 1048576"))
      << t;
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_move_in_flight_bytes{move=\"7\",user=\"bob \\\"b\\\"@example.org\","
                          "from=\"store1\",to=\"store2\",state=\"frozen\",step=\"final_sync\"} 20"))
      << t;
  EXPECT_LT(t.find("move=\"7\""), t.find("move=\"12\"")) << "in id order";
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_move_in_flight_started_timestamp_seconds{move=\"12\",user=\"alice@"
                          "example.org\",from=\"store1\",to=\"store2\",state=\"precopy\",step=\"precopy\"} 1764903000"))
      << t;
  // Ended without a finish time (a failed start): the time of writing.
  t = render_run_metrics(r, run_plan(), RunStatus::kFailed, kNow);
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_last_run_end_timestamp_seconds 1764903700"));
}

// Done moves' lockouts 0.4 s, 2 s and 12 s; the failed move's does not count.
TEST(RunMetrics, LockoutHistogramIsCumulative) {
  std::string t = render_run_metrics(run_report(), run_plan(), RunStatus::kOk, kNow);
  const std::vector<std::pair<std::string, int>> buckets = {{"0.1", 0}, {"0.25", 0}, {"0.5", 1}, {"1", 1}, {"2", 2},
                                                            {"5", 2},   {"10", 2},   {"30", 3},  {"+Inf", 3}};
  std::string expect;
  for (const auto& [le, n] : buckets) expect += fmt::format("mailshard_rebalance_lockout_seconds_bucket{{le=\"{}\"}} {}\n", le, n);
  expect += "mailshard_rebalance_lockout_seconds_sum 14.4\nmailshard_rebalance_lockout_seconds_count 3\n";
  EXPECT_NE(t.find(expect), std::string::npos) << t;
}

TEST(RunMetrics, LabelValuesAreEscaped) {
  EXPECT_EQ(prometheus_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  std::string t = render_run_metrics(run_report(), run_plan(), RunStatus::kOk, kNow);
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_server_failures{server=\"ev\\\"il\\\\store<3>\"} 1")) << t;
  ExecutionReport r = run_report();
  r.servers.emplace("new\nline", testing::server_run("new\nline", 2, 2));
  t = render_run_metrics(r, run_plan(), RunStatus::kOk, kNow);
  EXPECT_TRUE(has_line(t, "mailshard_rebalance_server_failures{server=\"new\\nline\"} 0")) << t;
}

// promtool parses the text and lints it (HELP, TYPE, names, units, _total on
// counters); it exits non-zero on any problem.
TEST(RunMetrics, PromtoolAcceptsTheText) {
  if (::access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "no promtool (Debian package prometheus)";
  ExecutionReport running = run_report();
  running.finished = false;
  running.running = 1;
  MoveRecord in_flight;
  in_flight.id = 3;
  in_flight.user = "carol@example.org";
  in_flight.from_server = "store1";
  in_flight.to_server = "store2";
  in_flight.state = MoveState::kPrecopy;
  in_flight.step = "precopy";
  in_flight.bytes_transferred = 4096;
  for (const auto& [what, text] : std::vector<std::pair<std::string, std::string>>{
           {"finished", render_run_metrics(run_report(), run_plan(), RunStatus::kOk, kNow)},
           {"running", render_run_metrics(running, run_plan(), RunStatus::kRunning, kNow, {in_flight})},
           {"empty", render_run_metrics(ExecutionReport{}, Plan{}, RunStatus::kFailed, kNow)}}) {
    auto r = run_process({"/usr/bin/promtool", "check", "metrics"}, text, 60'000);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->exit_code, 0) << what << ":\n" << r->out << r->err << "\n" << text;
  }
}

std::string temp_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/run_metrics_" + name;
  EXPECT_TRUE(make_dirs(d).ok());
  return d;
}

TEST(RunMetrics, TheFileIsReplacedAtomicallyAndWorldReadable) {
  std::string d = temp_dir("write");
  std::string path = d + "/mailshard_rebalance.prom";
  ::unlink(path.c_str());
  mode_t old = ::umask(077);
  Status st = write_metrics_file(path, "first\n");
  ::umask(old);
  ASSERT_TRUE(st.ok()) << st.error().message();
  ASSERT_TRUE(write_metrics_file(path, "second\n").ok());
  EXPECT_EQ(*read_file(path), "second\n");
  struct stat sb;
  ASSERT_EQ(::stat(path.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0644u);
  // No temporary file left next to it.
  auto r = run_process({"ls", "-A", d}, "", 10'000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "mailshard_rebalance.prom\n");
}

TEST(RunMetrics, WriteErrorsAreOneLineNamingThePath) {
  std::string d = temp_dir("errors");
  Status st = write_metrics_file(d + "/missing/x.prom", "m\n");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "metrics file '" + d + "/missing/x.prom': cannot open directory '" + d +
                                      "/missing': No such file or directory");
  ASSERT_TRUE(write_file_atomic(d + "/file", "f").ok());
  st = write_metrics_file(d + "/file/x.prom", "m\n");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "metrics file '" + d + "/file/x.prom': cannot open directory '" + d + "/file': Not a directory");
  st = write_metrics_file(d + "/x.txt", "m\n");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(st.error().message(), "metrics file '" + d +
                                      "/x.txt': the name must end in .prom (node_exporter's textfile collector reads no "
                                      "other)");
}

}  // namespace
}  // namespace mailshard
