// A hand-built night for the run report and run metrics tests: a plan of
// three servers in one class and the ExecutionReport of running it, with one
// move of each result, a hostile user and server name, a server the plan
// does not know, back-off and an early stop.
#pragma once

#include <string>

#include "core/plan.h"
#include "movers/plan_executor.h"

namespace mailshard::testing {

inline constexpr const char* kHostileUser = "<script>alert(\"x\")</script>'";
inline constexpr const char* kHostileServer = "ev\"il\\store<3>";
inline constexpr int64_t kRunStart = 1'764'900'000'000;  // 2025-12-05T02:00:00Z

inline ServerOutcome planned_server(int32_t id, std::string name, int64_t used) {
  ServerOutcome s;
  s.id = id;
  s.name = std::move(name);
  s.server_class = "std";
  s.capacity_bytes = 10'000;
  s.used_before = used;
  s.lower_bytes = 4'000;
  s.upper_bytes = 6'000;
  return s;
}

inline Plan run_plan() {
  Plan p;
  p.strategy = "balance";
  p.constraints.band = 0.1;
  p.servers = {planned_server(0, "store1", 8'000), planned_server(1, "store2", 2'000),
               planned_server(2, kHostileServer, 5'000)};
  ClassOutcome c;
  c.name = "std";
  c.servers = 3;
  c.mean_util = 0.5;
  p.classes = {c};
  return p;
}

inline MoveOutcome outcome(std::string user, std::string from, std::string to, int64_t bytes, MoveResult result,
                           std::string reason = "") {
  MoveOutcome m;
  m.user = std::move(user);
  m.from = std::move(from);
  m.to = std::move(to);
  m.bytes_planned = bytes;
  m.result = result;
  m.reason = std::move(reason);
  return m;
}

inline MoveOutcome done(std::string user, std::string from, std::string to, int64_t bytes, int64_t sent, int64_t lockout_ms,
                        int64_t id) {
  MoveOutcome m = outcome(std::move(user), std::move(from), std::move(to), bytes, MoveResult::kDone);
  m.move_id = id;
  m.state = "done";
  m.bytes_transferred = sent;
  m.lockout_ms = lockout_ms;
  m.started_at_ms = kRunStart + id * 60'000;
  m.finished_at_ms = m.started_at_ms + 90'000;
  return m;
}

inline ServerRun server_run(std::string name, int out, int in) {
  ServerRun s;
  s.name = std::move(name);
  s.max = {2, 2};
  s.slots = {out, in};
  return s;
}

// Night 2: alice, bob and erin done (erin from "ghost", a server the plan does
// not know), the hostile user failed, carol skipped, dave not started.
inline ExecutionReport run_report() {
  ExecutionReport r;
  r.night = 2;
  r.started_at_ms = kRunStart;
  r.finished_at_ms = kRunStart + 3'600'000;
  r.finished = true;
  r.moves.push_back(done("alice", "store1", "store2", 1'000, 1'500, 2'000, 11));
  r.moves.push_back(done("bob", "store1", "store2", 2'000, 2'100, 400, 12));
  MoveOutcome evil = outcome(kHostileUser, "store1", kHostileServer, 500, MoveResult::kFailed,
                             "verify: checksum \"mismatch\" <b>");
  evil.move_id = 13;
  evil.state = "rolled_back";
  evil.bytes_transferred = 300;
  evil.started_at_ms = kRunStart + 100'000;
  evil.finished_at_ms = kRunStart + 200'000;
  r.moves.push_back(evil);
  r.moves.push_back(outcome("carol", "store1", "store2", 700, MoveResult::kSkipped, "server store1 failed 3 moves in this run"));
  r.moves.push_back(outcome("dave", kHostileServer, "store2", 300, MoveResult::kNotStarted,
                            "not started: the deadline 2025-12-05T03:00:00.000Z passed"));
  r.moves.push_back(done("erin", "ghost", "store2", 100, 250, 12'000, 14));

  ServerRun s1 = server_run("store1", 1, 2);
  s1.failures = 3;
  s1.skipped = true;
  s1.backoff_events = 2;
  s1.samples = 10;
  s1.sample_errors = 1;
  s1.bytes_out = 3'600;
  ServerRun s2 = server_run("store2", 2, 2);
  s2.bytes_in = 3'850;
  ServerRun s3 = server_run(kHostileServer, 2, 2);
  s3.failures = 1;
  ServerRun ghost = server_run("ghost", 2, 2);
  ghost.bytes_out = 250;
  for (auto* s : {&s1, &s2, &s3, &ghost}) r.servers.emplace(s->name, *s);

  r.done = 3;
  r.failed = 1;
  r.skipped = 1;
  r.not_started = 1;
  r.bytes_transferred = 1'500 + 2'100 + 300 + 250;
  r.lockout_p50_ms = 2'000;
  r.lockout_p95_ms = 12'000;
  r.lockout_max_ms = 12'000;
  r.backoff_events = 2;
  r.deadline_reached = true;
  r.stop_reason = "the deadline 2025-12-05T03:00:00.000Z passed";
  return r;
}

}  // namespace mailshard::testing
