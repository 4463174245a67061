#include "movers/plan_executor.h"

#include <algorithm>
#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/interrupt.h"
#include "util/strings.h"

namespace mailshard {
namespace {

constexpr int kDefaultSlots = 4;  // moves per server at once (Exchange MRS / Cruise Control norms: 2-5)

int64_t percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

Result<ExecutionReport> execute_plan(const Plan& plan, const ExecutionOptions& options, const MoveFnFactory& factory,
                                     Clock& clock) {
  ExecutionReport rep;
  rep.night = options.night;
  rep.started_at_ms = clock.now_ms();
  auto server_name = [&](int32_t id) -> std::string {
    return id >= 0 && static_cast<size_t>(id) < plan.servers.size() && !plan.servers[id].name.empty()
               ? plan.servers[id].name
               : std::to_string(id);
  };
  for (const auto& m : plan.moves) {
    if (options.night != 0 && m.night != options.night) continue;
    if (m.user_name.empty())
      return Error::invalid(
          "the plan has no user names (it was made from a generated fleet); only plans of the live fleet can be executed");
    MoveOutcome o;
    o.user = m.user_name;
    o.from = server_name(m.from);
    o.to = server_name(m.to);
    o.bytes_planned = m.bytes;
    rep.moves.push_back(std::move(o));
  }
  if (rep.moves.empty()) {
    rep.finished_at_ms = clock.now_ms();
    return rep;
  }

  std::mutex mu;
  std::condition_variable cv;
  std::list<size_t> pending;
  for (size_t i = 0; i < rep.moves.size(); ++i) pending.push_back(i);
  std::map<std::string, int> busy;
  int running = 0;
  auto slots_of = [&](const std::string& s) {
    auto it = options.slots.find(s);
    return it == options.slots.end() ? kDefaultSlots : std::max(1, it->second);
  };
  std::vector<std::string> worker_errors;

  auto worker = [&]() {
    auto fn = factory();
    std::unique_lock lock(mu);
    if (!fn.ok()) {
      worker_errors.push_back(fn.error().message());
      cv.notify_all();
      return;
    }
    while (true) {
      if (pending.empty()) return;
      bool stop_interrupt = interrupted();
      bool stop_deadline = options.deadline_ms > 0 && clock.now_ms() >= options.deadline_ms;
      if (stop_interrupt || stop_deadline) {
        rep.interrupted |= stop_interrupt;
        rep.deadline_reached |= stop_deadline;
        for (size_t i : pending)
          rep.moves[i].error = stop_interrupt ? "not started: interrupted" : "not started: the deadline has passed";
        pending.clear();
        cv.notify_all();
        return;
      }
      auto it = std::find_if(pending.begin(), pending.end(), [&](size_t i) {
        return busy[rep.moves[i].from] < slots_of(rep.moves[i].from) && busy[rep.moves[i].to] < slots_of(rep.moves[i].to);
      });
      if (it == pending.end()) {
        // Every pending move touches a busy server: wait for one to finish.
        cv.wait(lock);
        continue;
      }
      size_t i = *it;
      pending.erase(it);
      MoveOutcome& o = rep.moves[i];
      ++busy[o.from];
      ++busy[o.to];
      ++running;
      lock.unlock();

      MoveOptions mo;
      mo.plan_id = options.plan_id;
      mo.bytes_planned = o.bytes_planned;
      mo.expected_from = o.from;
      auto r = (*fn)(o.user, o.to, mo);

      lock.lock();
      --busy[o.from];
      --busy[o.to];
      --running;
      if (!r.ok()) {
        o.result = MoveOutcome::Result::kSkipped;
        o.error = r.error().message();
        if (r.error().code() != ErrorCode::kConflict && r.error().code() != ErrorCode::kInvalidInput)
          o.result = MoveOutcome::Result::kFailed;
      } else {
        o.move_id = r->id;
        o.state = std::string(move_state_name(r->state));
        o.bytes_transferred = r->bytes_transferred;
        o.lockout_ms = r->lockout_ms;
        o.error = r->error;
        o.result = r->state == MoveState::kDone ? MoveOutcome::Result::kDone : MoveOutcome::Result::kFailed;
      }
      spdlog::info("rebalance: {} {} -> {}: {}{}", printable(o.user), o.from, o.to,
                   o.state.empty() ? "skipped" : o.state, o.error.empty() ? "" : " (" + o.error + ")");
      cv.notify_all();
    }
  };

  int nthreads = std::max(1, std::min<int>(options.max_parallel, static_cast<int>(rep.moves.size())));
  std::vector<std::thread> threads;
  for (int t = 0; t < nthreads; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (!worker_errors.empty() && std::all_of(rep.moves.begin(), rep.moves.end(), [](const MoveOutcome& o) { return o.state.empty(); }))
    return Error::unavailable(worker_errors.front());
  for (const auto& e : worker_errors) spdlog::warn("rebalance: a worker could not start: {}", e);
  for (auto& o : rep.moves)
    if (o.state.empty() && o.error.empty()) o.error = "not started";

  std::vector<int64_t> lockouts;
  for (const auto& o : rep.moves) {
    switch (o.result) {
      case MoveOutcome::Result::kDone: ++rep.done; break;
      case MoveOutcome::Result::kFailed: ++rep.failed; break;
      case MoveOutcome::Result::kSkipped: ++rep.skipped; break;
    }
    rep.bytes_transferred += o.bytes_transferred;
    if (o.result == MoveOutcome::Result::kDone && o.lockout_ms >= 0) lockouts.push_back(o.lockout_ms);
  }
  rep.lockout_median_ms = percentile(lockouts, 0.5);
  rep.lockout_p95_ms = percentile(lockouts, 0.95);
  rep.lockout_max_ms = lockouts.empty() ? -1 : *std::max_element(lockouts.begin(), lockouts.end());
  rep.finished_at_ms = clock.now_ms();
  return rep;
}

}  // namespace mailshard
