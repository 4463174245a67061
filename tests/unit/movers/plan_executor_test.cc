// The nightly executor with a fake clock and fake moves: slots in and out, a
// busy server not blocking the queue, back-off and recovery, a failing server
// skipped, the deadline, the hard deadline, stops, and the report.
#include "movers/plan_executor.h"

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/support/fakes.h"
#include "tests/unit/movers/executor_fixture.h"

namespace mailshard {
namespace {

using testing::make_plan;
using testing::outcome_of;

using testing::FakeClock;
using testing::FakeMoves;


ExecutionOptions fast_options() {
  ExecutionOptions o;
  o.poll_interval_ms = 2;
  o.sample_interval_ms = 30'000;
  return o;
}

// Runs execute_plan on a thread, so the test can drive the moves.
class Runner {
 public:
  Runner(Plan plan, const ExecutionOptions& o, FakeMoves& moves, Clock& clock)
      : plan_(std::move(plan)), t_([this, o, &moves, &clock] { result_.emplace(execute_plan(plan_, o, moves.factory(), clock)); }) {}
  ExecutionReport join() {
    t_.join();
    EXPECT_TRUE(result_->ok()) << result_->error().message();
    return result_->ok() ? **result_ : ExecutionReport{};
  }

 private:
  Plan plan_;
  std::optional<Result<ExecutionReport>> result_;
  std::thread t_;
};


TEST(PlanExecutor, EveryMoveRunsAndTheReportCountsThem) {
  FakeClock clock;
  FakeMoves moves(&clock);
  moves.outcome["u2"].lockout_ms = 300;
  moves.outcome["u3"].lockout_ms = 500;
  auto plan = make_plan({"a", "b", "c"}, {"u1:a>b", "u2:b>c", "u3:c>a"});
  auto r = execute_plan(plan, fast_options(), moves.factory(), clock);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->done, 3);
  EXPECT_EQ(r->failed + r->skipped + r->not_started, 0);
  EXPECT_EQ(r->bytes_transferred, 3000);
  EXPECT_EQ(r->lockout_p50_ms, 300);
  EXPECT_EQ(r->lockout_max_ms, 500);
  EXPECT_TRUE(r->finished);
  EXPECT_FALSE(r->deadline_reached);
  EXPECT_EQ(r->servers.at("a").bytes_out, 1000);
  EXPECT_EQ(r->servers.at("a").bytes_in, 1000);
  // Every move is checked against the plan when it starts.
  for (const auto& o : moves.options_seen()) {
    EXPECT_FALSE(o.expected_from.empty());
    EXPECT_EQ(o.bytes_planned, 1000);
  }
}

TEST(PlanExecutor, OutAndInSlotsAreCountedSeparately) {
  FakeClock clock;
  FakeMoves moves(&clock);
  // a sends 4, b receives 4; a has 2 out slots, b 3 in slots.
  for (auto u : {"u1", "u2", "u3", "u4"}) moves.gated.insert(u);
  auto plan = make_plan({"a", "b"}, {"u1:a>b", "u2:a>b", "u3:a>b", "u4:a>b"});
  auto o = fast_options();
  o.slots["a"] = {2, 2};
  o.slots["b"] = {2, 3};
  Runner run(plan, o, moves, clock);
  ASSERT_TRUE(moves.wait_started(2));
  moves.settle();
  EXPECT_EQ(moves.started().size(), 2u) << "a has 2 out slots";
  moves.release("u1");
  ASSERT_TRUE(moves.wait_started(3));
  moves.settle();
  EXPECT_EQ(moves.started().size(), 3u);
  moves.release_all();
  auto r = run.join();
  EXPECT_EQ(r.done, 4);
  EXPECT_EQ(moves.max_out("a"), 2);
  EXPECT_LE(moves.max_in("b"), 2);
}

TEST(PlanExecutor, ABusyServerDoesNotBlockTheQueue) {
  FakeClock clock;
  FakeMoves moves(&clock);
  moves.gated = {"u1", "u2", "u3", "u4"};
  // Plan order puts two more moves out of the busy a in front of c -> d.
  auto plan = make_plan({"a", "b", "c", "d"}, {"u1:a>b", "u2:a>b", "u3:a>d", "u4:c>d"});
  auto o = fast_options();
  o.slots["a"] = {1, 1};
  Runner run(plan, o, moves, clock);
  ASSERT_TRUE(moves.wait_started(2));
  moves.settle();
  // The two start on worker threads, so in either order.
  auto first = moves.started();
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()), (std::set<std::string>{"u1", "u4"}));
  moves.release("u1");
  ASSERT_TRUE(moves.wait_started(3));
  moves.settle();
  EXPECT_EQ(moves.started().back(), "u2") << "plan order among the moves that can start";
  moves.release_all();
  auto r = run.join();
  EXPECT_EQ(r.done, 4);
  EXPECT_EQ(moves.max_out("a"), 1);
}

TEST(PlanExecutor, TheFleetWideCapDefaultsToWhatTheSlotsAllow) {
  FakeClock clock;
  FakeMoves moves(&clock);
  std::vector<std::string> specs;
  for (int i = 0; i < 12; ++i) {
    std::string u = "u" + std::to_string(i);
    moves.gated.insert(u);
    specs.push_back(u + (i % 2 ? ":a>b" : ":c>d"));
  }
  auto plan = make_plan({"a", "b", "c", "d"}, specs);
  {
    Runner run(plan, fast_options(), moves, clock);  // 2 out of a, 2 out of c
    ASSERT_TRUE(moves.wait_started(4));
    moves.settle();
    EXPECT_EQ(moves.running().size(), 4u);
    moves.release_all();
    EXPECT_EQ(run.join().done, 12);
  }
  FakeMoves capped(&clock);
  capped.gated = moves.gated;
  auto o = fast_options();
  o.max_parallel = 3;
  Runner run(plan, o, capped, clock);
  ASSERT_TRUE(capped.wait_started(3));
  capped.settle();
  EXPECT_EQ(capped.running().size(), 3u) << "--max-parallel caps it";
  capped.release_all();
  EXPECT_EQ(run.join().done, 12);
}

// The executor's progress reports, for a test to wait on.
class ProgressLog {
 public:
  void attach(ExecutionOptions& o) {
    o.progress_interval_ms = 1;
    o.on_progress = [this](const ExecutionReport& r) {
      std::lock_guard lock(mu_);
      last_ = r;
      cv_.notify_all();
    };
  }
  bool wait(const std::function<bool(const ExecutionReport&)>& pred, int timeout_ms = 10'000) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return pred(last_); });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  ExecutionReport last_;
};

TEST(PlanExecutor, LoadAboveTheLimitHalvesSlotsAndPausesThenRecovers) {
  FakeClock clock;
  FakeMoves moves(&clock);
  std::atomic<double> load_a{3.0};
  auto o = fast_options();
  ProgressLog progress;
  progress.attach(o);
  o.sampler = [&](const std::string& s) -> Result<LoadSample> {
    LoadSample ls;
    ls.load_per_cpu = s == "a" ? load_a.load() : 0.1;
    return ls;
  };
  // u0 (a -> b) and x1 (c -> d) run while a is sampled; the rest wait for a
  // slot of b, or of c.
  moves.gated = {"u0", "x1"};
  auto plan = make_plan({"a", "b", "c", "d"}, {"u0:a>b", "u1:a>b", "u2:a>b", "u3:a>b", "u4:a>b", "x1:c>d", "x2:c>d"});
  o.slots["a"] = {4, 4};
  o.slots["b"] = {1, 1};
  o.slots["c"] = {1, 1};
  Runner run(plan, o, moves, clock);
  ASSERT_TRUE(moves.wait_started(2));
  // Three samples above the limit: 4 -> 2 -> 1 -> 0 (paused).
  for (int i = 1; i <= 3; ++i) {
    clock.advance(30'000);
    ASSERT_TRUE(progress.wait([&](const ExecutionReport& r) { return r.servers.count("a") && r.servers.at("a").samples >= i; }));
  }
  ASSERT_TRUE(progress.wait([](const ExecutionReport& r) { return r.servers.at("a").slots.out == 0; }));
  moves.release("u0");
  moves.release("x1");
  // c -> d goes on: x2 starts; a is paused, so u1 does not.
  ASSERT_TRUE(moves.wait_started(3));
  moves.settle();
  auto started = moves.started();
  EXPECT_EQ(started.size(), 3u);
  EXPECT_EQ(started.back(), "x2");
  // The load falls: one slot back per interval, and a's moves run.
  load_a = 0.5;
  clock.advance(30'000);
  auto r = run.join();
  EXPECT_EQ(r.done, 7);
  EXPECT_EQ(r.backoff_events, 3);
  EXPECT_EQ(r.servers.at("a").backoff_events, 3);
  EXPECT_GE(r.servers.at("a").samples, 4);
  EXPECT_GE(r.servers.at("a").slots.out, 1);
  EXPECT_EQ(moves.max_out("a"), 1);
}

TEST(PlanExecutor, DiskBusyAboveTheLimitAlsoBacksOff) {
  FakeClock clock;
  FakeMoves moves(&clock);
  std::atomic<int> samples{0};
  auto o = fast_options();
  o.slots["a"] = {2, 2};
  o.sampler = [&](const std::string&) -> Result<LoadSample> {
    ++samples;
    LoadSample ls;
    ls.load_per_cpu = 0.1;
    ls.disk_busy = 0.95;
    return ls;
  };
  moves.gated = {"u0"};
  auto plan = make_plan({"a", "b"}, {"u0:a>b"});
  Runner run(plan, o, moves, clock);
  ASSERT_TRUE(moves.wait_started(1));
  clock.advance(30'000);
  while (samples.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  moves.release_all();
  auto r = run.join();
  EXPECT_EQ(r.servers.at("a").slots.out, 1);
  EXPECT_GE(r.backoff_events, 1);
}

TEST(PlanExecutor, GarbageFromTheMetricsEndpointLeavesTheSlotsAlone) {
  FakeClock clock;
  FakeMoves moves(&clock);
  std::atomic<int> samples{0};
  auto o = fast_options();
  o.sampler = [&](const std::string& s) -> Result<LoadSample> {
    ++samples;
    return Error::corrupt(s + ": metrics: not Prometheus text");
  };
  moves.gated = {"u0"};
  auto plan = make_plan({"a", "b"}, {"u0:a>b", "u1:a>b"});
  Runner run(plan, o, moves, clock);
  ASSERT_TRUE(moves.wait_started(2));
  clock.advance(30'000);
  while (samples.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  moves.release_all();
  auto r = run.join();
  EXPECT_EQ(r.done, 2);
  EXPECT_EQ(r.backoff_events, 0);
  EXPECT_GE(r.servers.at("a").sample_errors, 1);
  EXPECT_EQ(r.servers.at("a").slots.out, 2);
}

TEST(PlanExecutor, AServerThatKeepsFailingIsSkippedAndItsPartnersGoOn) {
  FakeClock clock;
  FakeMoves moves(&clock);
  auto o = fast_options();
  o.max_server_failures = 3;
  o.slots["dead"] = {1, 1};
  std::vector<std::string> specs;
  // Every move into "dead" fails; moves among a, b, c are fine.
  for (int i = 0; i < 6; ++i) {
    std::string u = "d" + std::to_string(i);
    moves.outcome[u].state = MoveState::kRolledBack;
    specs.push_back(u + (i % 3 == 0 ? ":a>dead" : i % 3 == 1 ? ":b>dead" : ":c>dead"));
    specs.push_back("ok" + std::to_string(i) + (i % 2 ? ":a>b" : ":b>c"));
  }
  auto plan = make_plan({"a", "b", "c", "dead"}, specs);
  auto r = execute_plan(plan, o, moves.factory(), clock);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->failed, 3);
  EXPECT_EQ(r->skipped, 3);
  EXPECT_EQ(r->done, 6);
  EXPECT_TRUE(r->servers.at("dead").skipped);
  EXPECT_FALSE(r->servers.at("a").skipped);
  EXPECT_FALSE(r->servers.at("b").skipped);
  EXPECT_FALSE(r->servers.at("c").skipped);
  EXPECT_NE(outcome_of(*r, "d5").reason.find("server dead failed 3 moves"), std::string::npos) << outcome_of(*r, "d5").reason;
}

TEST(PlanExecutor, WhenTheDirectoryIsGoneTheRunStopsAndNoServerIsBlamed) {
  FakeClock clock;
  FakeMoves moves(&clock);
  auto o = fast_options();
  o.slots["a"] = {1, 1};
  std::atomic<bool> ldap_up{true};
  o.health = [&]() -> Status {
    if (ldap_up) return {};
    return Error::unavailable("LDAP ldap://127.0.0.1:389: cannot connect");
  };
  moves.outcome["u2"].error = Error::unavailable("user u2: LDAP ldap://127.0.0.1:389: cannot connect");
  moves.outcome["u1"].state = MoveState::kRolledBack;  // a failure while LDAP is fine: a server's
  auto plan = make_plan({"a", "b"}, {"u2:a>b", "u3:a>b", "u4:a>b"});
  auto first = execute_plan(make_plan({"a", "b"}, {"u1:a>b"}), o, moves.factory(), clock);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->servers.at("a").failures, 1);
  ldap_up = false;
  auto r = execute_plan(plan, o, moves.factory(), clock);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(outcome_of(*r, "u2").result, MoveResult::kFailed);
  EXPECT_EQ(outcome_of(*r, "u3").result, MoveResult::kNotStarted);
  EXPECT_EQ(outcome_of(*r, "u4").result, MoveResult::kNotStarted);
  EXPECT_NE(outcome_of(*r, "u3").reason.find("LDAP ldap://127.0.0.1:389: cannot connect"), std::string::npos)
      << outcome_of(*r, "u3").reason;
  EXPECT_EQ(r->servers.at("a").failures, 0) << "LDAP's failure is not a's";
  EXPECT_FALSE(r->servers.at("a").skipped);
  EXPECT_TRUE(r->deadline_reached);
}

// Every move starts on a; the only failing ones go to dead, so both reach the
// limit on the same move. a has done moves with b: it is the healthy one.
TEST(PlanExecutor, OnATieTheServerWithDoneMovesIsNotSkipped) {
  FakeClock clock;
  FakeMoves moves(&clock);
  auto o = fast_options();
  o.max_server_failures = 3;
  o.slots["a"] = {1, 1};
  for (auto u : {"d0", "d1", "d2", "d3"}) moves.outcome[u].state = MoveState::kRolledBack;
  auto plan = make_plan({"a", "b", "dead"}, {"ok0:a>b", "d0:a>dead", "d1:a>dead", "d2:a>dead", "d3:a>dead", "ok1:a>b"});
  auto r = execute_plan(plan, o, moves.factory(), clock);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->servers.at("dead").skipped);
  EXPECT_FALSE(r->servers.at("a").skipped);
  EXPECT_EQ(outcome_of(*r, "d3").result, MoveResult::kSkipped);
  EXPECT_NE(outcome_of(*r, "d3").reason.find("server dead failed 3 moves"), std::string::npos) << outcome_of(*r, "d3").reason;
  EXPECT_EQ(outcome_of(*r, "ok1").result, MoveResult::kDone);
}

TEST(PlanExecutor, UnreachableServerErrorsAreFailuresAndPrecheckRefusalsAreSkips) {
  FakeClock clock;
  FakeMoves moves(&clock);
  moves.outcome["drift"].error = Error::conflict("user drift has 2 MiB now, planned 1000 B");
  moves.outcome["gone"].error = Error::unavailable("store9: cannot connect");
  auto plan = make_plan({"a", "b"}, {"drift:a>b", "gone:a>b", "fine:a>b"});
  auto r = execute_plan(plan, fast_options(), moves.factory(), clock);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(outcome_of(*r, "drift").result, MoveResult::kSkipped);
  EXPECT_NE(outcome_of(*r, "drift").reason.find("planned"), std::string::npos);
  EXPECT_EQ(outcome_of(*r, "gone").result, MoveResult::kFailed);
  EXPECT_EQ(outcome_of(*r, "fine").result, MoveResult::kDone);
  EXPECT_EQ(r->servers.at("a").failures, 1) << "a skip is not a server failure";
}

TEST(PlanExecutor, NoMoveStartsAfterTheDeadline) {
  FakeClock clock;
  FakeMoves moves(&clock);
  auto o = fast_options();
  o.slots["a"] = {1, 1};
  o.deadline_ms = clock.now_ms() + 150 * 60'000;  // 2.5 h
  std::vector<std::string> specs;
  for (int i = 0; i < 5; ++i) {
    specs.push_back("u" + std::to_string(i) + ":a>b");
    moves.outcome["u" + std::to_string(i)].duration_ms = 3'600'000;  // 1 h each
  }
  auto r = execute_plan(make_plan({"a", "b"}, specs), o, moves.factory(), clock);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done, 3);  // started at 0, 1 h and 2 h; the one at 3 h is past the deadline
  EXPECT_EQ(r->not_started, 2);
  EXPECT_TRUE(r->deadline_reached);
  EXPECT_NE(outcome_of(*r, "u4").reason.find("deadline"), std::string::npos);
  EXPECT_NE(r->stop_reason.find("deadline"), std::string::npos);
}

TEST(PlanExecutor, TheHardDeadlineRollsBackRunningMovesOnce) {
  FakeClock clock;
  FakeMoves moves(&clock);
  auto o = fast_options();
  o.deadline_ms = clock.now_ms() + 60'000;
  o.hard_deadline_ms = clock.now_ms() + 120'000;
  std::atomic<int> hard_calls{0};
  o.on_hard_stop = [&] {
    ++hard_calls;
    moves.cancel();
  };
  moves.gated = {"u1", "u2", "u3"};
  auto plan = make_plan({"a", "b", "c"}, {"u1:a>b", "u2:b>c", "u3:a>c"});
  o.slots["a"] = {1, 1};
  Runner run(plan, o, moves, clock);
  ASSERT_TRUE(moves.wait_started(2));
  moves.settle();
  clock.advance(60'000);  // the deadline: u3 will not start
  moves.settle();
  EXPECT_EQ(moves.started().size(), 2u);
  EXPECT_EQ(hard_calls.load(), 0) << "the soft deadline lets running moves finish";
  clock.advance(60'000);  // the hard deadline
  auto r = run.join();
  EXPECT_EQ(hard_calls.load(), 1);
  EXPECT_TRUE(r.hard_stopped);
  EXPECT_EQ(outcome_of(r, "u1").result, MoveResult::kFailed);
  EXPECT_EQ(outcome_of(r, "u1").state, "rolled_back");
  EXPECT_EQ(outcome_of(r, "u3").result, MoveResult::kNotStarted);
}

TEST(PlanExecutor, ASoftStopLetsRunningMovesFinishAndAHardStopCancelsThem) {
  FakeClock clock;
  FakeMoves moves(&clock);
  std::atomic<int> level{0};
  auto o = fast_options();
  o.stop = [&] { return StopRequest{static_cast<StopLevel>(level.load()), ""}; };
  o.on_hard_stop = [&] { moves.cancel(); };
  moves.gated = {"u1", "u2"};
  auto plan = make_plan({"a", "b", "c"}, {"u1:a>b", "u2:b>c", "u3:a>c", "u4:c>a"});
  o.slots["a"] = {1, 0};  // u3 waits for a's out slot, u4 can never have its in slot
  o.slots["b"] = {1, 1};
  o.slots["c"] = {1, 1};
  Runner run(plan, o, moves, clock);
  ASSERT_TRUE(moves.wait_started(2));
  moves.settle();
  level = static_cast<int>(StopLevel::kSoft);  // SIGTERM, or `rebalance --stop`
  moves.settle();
  moves.release("u1");
  level = static_cast<int>(StopLevel::kHard);  // a second SIGTERM
  auto r = run.join();
  EXPECT_EQ(outcome_of(r, "u1").result, MoveResult::kDone) << "released before the hard stop";
  EXPECT_EQ(outcome_of(r, "u2").state, "rolled_back");
  EXPECT_EQ(outcome_of(r, "u3").result, MoveResult::kNotStarted);
  EXPECT_EQ(outcome_of(r, "u4").result, MoveResult::kNotStarted);
  EXPECT_NE(outcome_of(r, "u3").reason.find("stop"), std::string::npos);
  EXPECT_TRUE(r.hard_stopped);
}

TEST(PlanExecutor, ProgressReportsShowMovesInFlight) {
  FakeClock clock;
  FakeMoves moves(&clock);
  std::mutex mu;
  std::vector<ExecutionReport> seen;
  auto o = fast_options();
  o.progress_interval_ms = 1;
  o.on_progress = [&](const ExecutionReport& r) {
    std::lock_guard lock(mu);
    seen.push_back(r);
  };
  moves.gated = {"u1"};
  Runner run(make_plan({"a", "b"}, {"u1:a>b"}), o, moves, clock);
  ASSERT_TRUE(moves.wait_started(1));
  clock.advance(10);
  for (int i = 0; i < 1000; ++i) {
    {
      std::lock_guard lock(mu);
      if (!seen.empty() && seen.back().running == 1) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  moves.release_all();
  auto r = run.join();
  std::lock_guard lock(mu);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().running, 1);
  EXPECT_FALSE(seen.back().finished);
  EXPECT_EQ(seen.back().servers.at("a").busy_out, 1);
  EXPECT_EQ(r.running, 0);
  EXPECT_EQ(r.done, 1);
}

TEST(PlanExecutor, APlanWithoutUserNamesIsRefused) {
  FakeClock clock;
  FakeMoves moves(&clock);
  auto plan = make_plan({"a", "b"}, {"u1:a>b"});
  plan.moves[0].user_name.clear();
  auto r = execute_plan(plan, fast_options(), moves.factory(), clock);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
}

TEST(PlanExecutor, OnlyTheChosenNightRuns) {
  FakeClock clock;
  FakeMoves moves(&clock);
  auto plan = make_plan({"a", "b"}, {"u1:a>b", "u2:a>b"});
  plan.moves[1].night = 2;
  auto o = fast_options();
  o.night = 2;
  auto r = execute_plan(plan, o, moves.factory(), clock);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->moves.size(), 1u);
  EXPECT_EQ(r->moves[0].user, "u2");
}

TEST(PlanExecutor, ScheduleBoundIsTheBusiestServersWorkOverItsSlots) {
  ExecutionReport r;
  ServerRun a;
  a.max = {2, 2};
  a.out_ms = 10'000;
  a.in_ms = 3'000;
  ServerRun b;
  b.max = {2, 1};
  b.in_ms = 8'000;
  r.servers["a"] = a;
  r.servers["b"] = b;
  EXPECT_DOUBLE_EQ(schedule_bound_ms(r), 8'000);  // b: 8 s through 1 in slot
  MoveOutcome m;
  m.started_at_ms = 1;
  m.finished_at_ms = 9'001;
  r.moves.push_back(m);
  EXPECT_DOUBLE_EQ(schedule_bound_ms(r), 9'000);  // the longest move
}


// A fake move of 4 stretches for ExecutionOptions::threads: records which
// threads ran it and how many moves were in flight (started, not ended) at once. Its first
// stretch waits (up to 10 s) until `expect` moves were started, so every
// worker has taken its share before any move ends.
struct Stretches {
  std::mutex mu;
  std::condition_variable cv;
  int started = 0, in_flight = 0, peak = 0, expect = 0;
  std::set<std::thread::id> threads;
  class Task final : public MoveTask {
   public:
    Task(Stretches& s, std::string user, std::string to, MoveOptions o)
        : s_(s), user_(std::move(user)), to_(std::move(to)), o_(std::move(o)) {}
    bool advance() override {
      std::unique_lock lock(s_.mu);
      s_.threads.insert(std::this_thread::get_id());
      if (n_ == 0) {
        s_.cv.wait_for(lock, std::chrono::seconds(10), [&] { return s_.started >= s_.expect; });
      }
      if (++n_ < 4) return false;
      --s_.in_flight;
      return true;
    }
    Result<MoveRecord> result() override {
      MoveRecord r;
      r.user = user_;
      r.from_server = o_.expected_from;
      r.to_server = to_;
      r.state = MoveState::kDone;
      return r;
    }

   private:
    Stretches& s_;
    std::string user_, to_;
    MoveOptions o_;
    int n_ = 0;
  };
  MoveWorkerFactory factory() {
    return [this]() -> Result<MoveWorker> {
      MoveWorker w;
      w.move = [](const std::string&, const std::string&, const MoveOptions&) -> Result<MoveRecord> {
        return Error::internal("a worker with start() runs its moves through it");
      };
      w.start = [this](const std::string& user, const std::string& to, const MoveOptions& o) {
        std::lock_guard lock(mu);
        ++started;
        peak = std::max(peak, ++in_flight);
        cv.notify_all();
        return std::unique_ptr<MoveTask>(new Task(*this, user, to, o));
      };
      return w;
    };
  }
};

// 20 moves over 10 servers, each the source of 2 and the destination of 2:
// with the default slots (2 out, 2 in) all 20 may run at once.
Plan twenty_moves_at_once() {
  std::vector<std::string> servers, moves;
  for (int s = 0; s < 10; ++s) servers.push_back("s" + std::to_string(s));
  for (int i = 0; i < 20; ++i) moves.push_back(fmt::format("u{}:s{}>s{}", i, i % 10, (i + 1 + i / 10) % 10));
  return make_plan(servers, moves);
}

TEST(PlanExecutor, AFewThreadsCarryEveryMoveTheSlotsAllowAStretchAtATime) {
  FakeClock clock;
  Stretches st;
  st.expect = 20;
  auto o = fast_options();
  o.threads = 2;
  auto r = execute_plan(twenty_moves_at_once(), o, st.factory(), clock);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->done, 20);
  EXPECT_EQ(r->peak_running, 20) << "every move the slots allow was in flight at once";
  EXPECT_EQ(st.peak, 20);
  EXPECT_EQ(st.threads.size(), 2u) << "on two threads";
}

TEST(PlanExecutor, WithoutThreadsEachMoveInFlightHasItsOwnThread) {
  FakeClock clock;
  Stretches st;
  st.expect = 20;
  auto r = execute_plan(twenty_moves_at_once(), fast_options(), st.factory(), clock);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->done, 20);
  EXPECT_EQ(st.peak, 20);
  EXPECT_EQ(st.threads.size(), 20u);
}

}  // namespace
}  // namespace mailshard
