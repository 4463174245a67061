// Executor overhead: N moves that take no time, through execute_plan with
// the real clock, over S servers with the default slots (2 out, 2 in). The
// time is all scheduling: taking a move, the slot bookkeeping, the report.
//
//   executor_bench [MOVES [SERVERS]]     (default 10000 moves, 100 servers)
//
// Prints one line: moves, servers, workers' slots, seconds, moves per second.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "movers/plan_executor.h"

int main(int argc, char** argv) {
  using namespace mailshard;
  const int moves = argc > 1 ? std::atoi(argv[1]) : 10'000;
  const int servers = argc > 2 ? std::atoi(argv[2]) : 100;
  if (moves < 1 || servers < 2) {
    std::fprintf(stderr, "usage: executor_bench [MOVES >= 1 [SERVERS >= 2]]\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);  // one info line per move is not the executor's cost
  Plan plan;
  for (int s = 0; s < servers; ++s) {
    ServerOutcome so;
    so.id = s;
    so.name = "store" + std::to_string(s);
    plan.servers.push_back(so);
  }
  for (int i = 0; i < moves; ++i) {
    PlannedMove m;
    m.user = i;
    m.user_name = "user" + std::to_string(i);
    m.from = i % servers;
    m.to = (i * 7 + 1) % servers == m.from ? (m.from + 1) % servers : (i * 7 + 1) % servers;
    m.bytes = 1000;
    plan.moves.push_back(m);
  }
  MoveFnFactory factory = []() -> Result<MoveFn> {
    return MoveFn([](const std::string& user, const std::string& to, const MoveOptions& o) -> Result<MoveRecord> {
      MoveRecord r;
      r.user = user;
      r.from_server = o.expected_from;
      r.to_server = to;
      r.state = MoveState::kDone;
      r.bytes_transferred = o.bytes_planned;
      r.lockout_ms = 1;
      return r;
    });
  };
  SystemClock clock;
  ExecutionOptions o;
  auto t0 = std::chrono::steady_clock::now();
  auto r = execute_plan(plan, o, factory, clock);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "executor_bench: %s\n", r.error().message().c_str());
    return 1;
  }
  if (r->done != moves) {
    std::fprintf(stderr, "executor_bench: %lld of %d moves done\n", static_cast<long long>(r->done), moves);
    return 1;
  }
  std::printf("executor: %d moves over %d servers in %.3f s (%.0f moves/s)\n", moves, servers, s, moves / s);
  return 0;
}
