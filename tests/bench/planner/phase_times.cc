// planner_phase_times SNAPSHOT_DIR [band]: times the phases of one planning
// run in-process (snapshot read, plan, plan JSON + hash, CSV) and prints one
// JSON line. The benchmark (run.sh) measures whole processes; this driver
// says where the time inside one goes.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "core/plan.h"
#include "core/snapshot.h"
#include "planners/planner.h"
#include "planners/report.h"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  if (argc < 2) {
    std::fprintf(stderr, "usage: planner_phase_times SNAPSHOT_DIR [band]\n");
    return 2;
  }
  auto secs = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  auto t0 = Clock::now();
  auto snap = mailshard::read_snapshot(argv[1]);
  if (!snap.ok()) {
    std::fprintf(stderr, "%s\n", snap.error().message().c_str());
    return 1;
  }
  auto t1 = Clock::now();
  mailshard::Constraints c;
  if (argc > 2) c.band = std::atof(argv[2]);
  auto plan = mailshard::planner::plan(*snap, c);
  if (!plan.ok()) {
    std::fprintf(stderr, "%s\n", plan.error().message().c_str());
    return 1;
  }
  auto t2 = Clock::now();
  std::string hash = mailshard::plan_hash(*plan);
  auto t3 = Clock::now();
  std::string csv = mailshard::planner::render_csv(*plan);
  auto t4 = Clock::now();
  fmt::print("{{\"users\": {}, \"read_s\": {:.3f}, \"plan_s\": {:.3f}, \"json_hash_s\": {:.3f}, \"csv_s\": {:.3f}, "
             "\"moves\": {}, \"hash\": \"{}\"}}\n",
             snap->user_count(), secs(t0, t1), secs(t1, t2), secs(t2, t3), secs(t3, t4), plan->moves.size(), hash);
  return 0;
}
