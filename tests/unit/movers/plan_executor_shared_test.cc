// The executor's shared nights: several executors ("controllers") on one
// journal (a real SQLite journal; its slot claims and move leases are the
// Journal contract's, tested for both backends in tests/unit/journal) with
// fake moves that claim, lease and end like MoveRunner's, and a fake
// directory that says where each user lives.
//
// Checked: the slots bound the moves of all controllers together; every user
// is moved once; a move whose slots are full waits (no busy loop); a move of
// a controller that died is recovered (rolled back and run again, or
// finished); no takeover while a live process holds the move.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/clock.h"
#include "journal/sqlite_journal.h"
#include "movers/plan_executor.h"
#include "tests/unit/movers/executor_fixture.h"
#include "util/fs.h"

namespace mailshard {
namespace {

using testing::make_plan;
using testing::outcome_of;


// A journal whose server went away: every call fails as PgJournal's do then.
class DownJournal final : public Journal {
 public:
  static Error down() { return Error::unavailable("journal postgresql://db1:5432/mailshard: the connection is lost"); }
  Result<int64_t> begin_run(const std::string&, const std::string&) override { return down(); }
  Status finish_run(int64_t, const std::string&, const std::string&) override { return down(); }
  Result<std::vector<RunRecord>> list_runs(int) override { return down(); }
  Result<std::vector<RunRecord>> running_runs(const std::string&) override { return down(); }
  Status request_stop(int64_t) override { return down(); }
  Result<bool> stop_requested(int64_t) override { return down(); }
  Result<std::unique_ptr<RunLease>> lease_run(const std::string&) override { return down(); }
  Result<std::unique_ptr<RunLease>> lease_run_shared(const std::string&) override { return down(); }
  Result<int64_t> record_snapshot(int64_t, int64_t, const std::string&, const std::string&) override { return down(); }
  Result<int64_t> store_plan(const PlanRecord&) override { return down(); }
  Result<PlanRecord> find_plan(const std::string&) override { return down(); }
  Status set_plan_status(int64_t, const std::string&) override { return down(); }
  Status approve_plan(int64_t, const std::string&) override { return down(); }
  Result<std::vector<PlanRecord>> list_plans(int) override { return down(); }
  Result<std::optional<PlanRecord>> latest_plan(bool) override { return down(); }
  Result<int64_t> claim_move(const MoveRecord&) override { return down(); }
  Result<SlotClaim> claim_move_in_slots(const MoveRecord&, const SlotLimits&) override { return down(); }
  Status update_move(const MoveRecord&) override { return down(); }
  Result<MoveRecord> get_move(int64_t) override { return down(); }
  Result<std::vector<MoveRecord>> list_moves(const MoveFilter&) override { return down(); }
  Result<std::unique_ptr<MoveLease>> lease_move(int64_t) override { return down(); }
  Status log_step(int64_t, const std::string&, StepPhase, const std::string&) override { return down(); }
  Result<std::vector<StepRecord>> list_steps(int64_t) override { return down(); }
  Status put_blob(int64_t, const std::string&, const std::string&) override { return down(); }
  Result<std::optional<std::string>> get_blob(int64_t, const std::string&) override { return down(); }
};

// What every controller shares: the journal's file, where users live (the
// directory), and what the moves of all controllers did.
class Fleet {
 public:
  explicit Fleet(const std::string& test) {
    dir_ = ::testing::TempDir() + "/plan_executor_shared_" + std::to_string(::getpid()) + "_" + test;
    std::filesystem::remove_all(dir_);
    EXPECT_TRUE(make_dirs(dir_, 0700).ok());
    path_ = dir_ + "/j.sqlite";
    journal_ = open();
  }
  ~Fleet() {
    journal_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<Journal> open() {
    auto j = SqliteJournal::open(path_, clock_);
    EXPECT_TRUE(j.ok()) << j.error().message();
    return j.ok() ? std::unique_ptr<Journal>(std::move(*j)) : nullptr;
  }
  Journal& journal() { return *journal_; }
  Clock& clock() { return clock_; }

  // From now on the moves' claims go to a journal whose server is down.
  void take_journal_down() { down_ = true; }

  void place(const std::string& user, const std::string& server) {
    std::lock_guard lock(mu_);
    where_[user] = server;
  }
  std::string where(const std::string& user) {
    std::lock_guard lock(mu_);
    return where_[user];
  }

  // A worker of one controller: its own journal handle, moves like
  // MoveRunner's (re-check the directory, claim through the hook, lease, run,
  // flip, done) that take `move_ms` real time.
  MoveWorkerFactory workers(int move_ms) {
    return [this, move_ms]() -> Result<MoveWorker> {
      std::shared_ptr<Journal> j = open();
      if (!j) return Error::internal("cannot open the journal");
      MoveWorker w;
      w.move = [this, j, move_ms](const std::string& user, const std::string& to,
                                  const MoveOptions& o) -> Result<MoveRecord> {
        if (where(user) != o.expected_from)
          return Error::conflict(fmt::format("user {} is on {} now, not on {} as planned", user, where(user),
                                             o.expected_from));
        MoveRecord rec;
        rec.user = user;
        rec.from_server = o.expected_from;
        rec.to_server = to;
        rec.plan_id = o.plan_id;
        rec.state = MoveState::kPlanned;
        DownJournal gone;
        Journal& journal = down_ ? static_cast<Journal&>(gone) : *j;
        rec.id = MS_TRY(o.claim ? o.claim(journal, rec) : journal.claim_move(rec));
        auto lease = MS_TRY(j->lease_move(rec.id));
        MS_CHECK(check_claim_still_ours(*j, rec.id));
        ++claims_;
        begin(rec.from_server, rec.to_server);
        std::this_thread::sleep_for(std::chrono::milliseconds(move_ms));
        end(rec.from_server, rec.to_server);
        place(user, to);
        rec.state = MoveState::kDone;
        MS_CHECK(j->update_move(rec));
        return rec;
      };
      // resume as MoveRunner does it: the lease first; a move that had not
      // flipped rolls back, a flipped one finishes.
      w.resume = [this, j](int64_t id) -> Result<TakeOver> {
        ++resume_attempts_;
        auto lease = MS_TRY(j->lease_move(id));
        MoveRecord m = MS_TRY(j->get_move(id));
        if (is_terminal(m.state)) return TakeOver{m, false};
        if (m.state >= MoveState::kFlipped) {
          place(m.user, m.to_server);
          m.state = MoveState::kDone;
        } else {
          m.state = MoveState::kRolledBack;
          m.error = "interrupted; rolled back by resume";
        }
        MS_CHECK(j->update_move(m));
        return TakeOver{m, true};
      };
      w.list_moves = [j](const MoveFilter& f) { return j->list_moves(f); };
      return w;
    };
  }

  // The most moves seen at once with a server as source / destination, over
  // every controller.
  int max_out(const std::string& s) {
    std::lock_guard lock(mu_);
    return max_out_[s];
  }
  int max_in(const std::string& s) {
    std::lock_guard lock(mu_);
    return max_in_[s];
  }
  int resume_attempts() const { return resume_attempts_.load(); }

  // The journal's done moves per user.
  std::map<std::string, int> done_moves() {
    std::map<std::string, int> out;
    auto moves = journal_->list_moves({});
    EXPECT_TRUE(moves.ok());
    if (moves.ok())
      for (const auto& m : *moves) out[m.user] += m.state == MoveState::kDone;
    return out;
  }

 private:
  void begin(const std::string& from, const std::string& to) {
    std::lock_guard lock(mu_);
    max_out_[from] = std::max(max_out_[from], ++out_[from]);
    max_in_[to] = std::max(max_in_[to], ++in_[to]);
  }
  void end(const std::string& from, const std::string& to) {
    std::lock_guard lock(mu_);
    --out_[from];
    --in_[to];
  }

  std::string dir_, path_;
  SystemClock clock_;
  std::unique_ptr<Journal> journal_;
  std::mutex mu_;
  std::map<std::string, std::string> where_;
  std::map<std::string, int> out_, in_, max_out_, max_in_;
  std::atomic<int> claims_{0}, resume_attempts_{0};
  std::atomic<bool> down_{false};
};

ExecutionOptions shared_options(int64_t plan_id, int slots) {
  ExecutionOptions o;
  o.poll_interval_ms = 5;
  o.sample_interval_ms = 60'000;
  o.shared = true;
  o.shared_retry_ms = 20;
  o.plan_id = plan_id;
  for (const char* s : {"a", "b", "c", "d"}) o.slots[s] = {slots, slots};
  return o;
}

int64_t store_plan(Journal& j) {
  PlanRecord p;
  p.hash = "feedfacefeedface";
  p.plan_json = "{\"moves\":[]}";
  return *j.store_plan(p);
}

// A move of `user` claimed in the journal in `state`, as another controller
// (or an operator, plan_id 0) left it.
MoveRecord claimed(Journal& j, const std::string& user, const std::string& from, const std::string& to,
                   int64_t plan_id, MoveState state) {
  MoveRecord m;
  m.user = user;
  m.from_server = from;
  m.to_server = to;
  m.plan_id = plan_id;
  m.state = state;
  m.id = *j.claim_move(m);
  return m;
}


TEST(SharedNight, TwoControllersStayWithinTheSlotsTogetherAndMoveEveryUserOnce) {
  Fleet fleet("two");
  std::vector<std::string> specs;
  for (int i = 0; i < 12; ++i) {
    const std::string user = "u" + std::to_string(i);
    const std::string from = i % 2 ? "a" : "b", to = i % 2 ? "c" : "d";
    fleet.place(user, from);
    specs.push_back(user + ":" + from + ">" + to);
  }
  const Plan plan = make_plan({"a", "b", "c", "d"}, specs);
  const int64_t plan_id = store_plan(fleet.journal());
  // One slot out and in per server: each controller alone could run two
  // moves at once (a>c and b>d); both together still only two.
  const ExecutionOptions o = shared_options(plan_id, 1);
  std::optional<Result<ExecutionReport>> ra, rb;
  std::thread ta([&] { ra.emplace(execute_plan(plan, o, fleet.workers(30), fleet.clock())); });
  std::thread tb([&] { rb.emplace(execute_plan(plan, o, fleet.workers(30), fleet.clock())); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra->ok()) << ra->error().message();
  ASSERT_TRUE(rb->ok()) << rb->error().message();
  const ExecutionReport& a = **ra;
  const ExecutionReport& b = **rb;

  for (const char* s : {"a", "b"}) EXPECT_EQ(fleet.max_out(s), 1) << s;
  for (const char* s : {"c", "d"}) EXPECT_EQ(fleet.max_in(s), 1) << s;
  auto done = fleet.done_moves();
  for (int i = 0; i < 12; ++i) {
    const std::string user = "u" + std::to_string(i);
    EXPECT_EQ(done[user], 1) << user;
    EXPECT_EQ(fleet.where(user), i % 2 ? "c" : "d") << user;
    // Done by one controller, reported by the other as done elsewhere.
    const MoveOutcome& x = outcome_of(a, user);
    const MoveOutcome& y = outcome_of(b, user);
    EXPECT_NE(x.elsewhere, y.elsewhere) << user << ": " << x.reason << " / " << y.reason;
    const MoveOutcome& other = x.elsewhere ? x : y;
    EXPECT_EQ(other.result, MoveResult::kSkipped);
    EXPECT_EQ(other.reason, fmt::format("run by another controller: move {}, done", other.move_id));
  }
  EXPECT_EQ(a.done + b.done, 12);
  EXPECT_EQ(a.done + a.elsewhere_done, 12);
  EXPECT_EQ(b.done + b.elsewhere_done, 12);
  EXPECT_EQ(a.failed + b.failed + a.not_started + b.not_started, 0);
  // The journal's slot counts refused claims that each controller's own
  // counts would have allowed.
  int waits = 0;
  for (const auto& m : a.moves) waits += m.slot_waits;
  for (const auto& m : b.moves) waits += m.slot_waits;
  EXPECT_GT(waits, 0);
}

// A full slot (here: another process's live move into b) makes the move wait
// and try again every shared_retry_ms, not spin; it runs once the slot frees.
TEST(SharedNight, AMoveWhoseSlotsAreFullWaitsAndRunsWhenOneFrees) {
  Fleet fleet("full");
  fleet.place("u1", "a");
  fleet.place("x", "c");
  const int64_t plan_id = store_plan(fleet.journal());
  MoveRecord foreign = claimed(fleet.journal(), "x", "c", "b", 0, MoveState::kPrecopy);
  auto other = fleet.open();
  auto lease = other->lease_move(foreign.id);
  ASSERT_TRUE(lease.ok());

  ExecutionOptions o = shared_options(plan_id, 1);
  o.shared_retry_ms = 50;
  const Plan plan = make_plan({"a", "b", "c"}, {"u1:a>b"});
  std::optional<Result<ExecutionReport>> r;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread t([&] { r.emplace(execute_plan(plan, o, fleet.workers(5), fleet.clock())); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(fleet.where("u1"), "a") << "it moved while b's only in slot was taken";
  foreign.state = MoveState::kDone;
  ASSERT_TRUE(other->update_move(foreign).ok());
  lease->reset();
  t.join();
  const auto waited_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r->ok()) << r->error().message();
  const MoveOutcome& m = outcome_of(**r, "u1");
  EXPECT_EQ(m.result, MoveResult::kDone) << m.reason;
  EXPECT_EQ(fleet.where("u1"), "b");
  // One claim per retry interval at most (plus the first): no busy loop.
  EXPECT_GE(m.slot_waits, 3);
  EXPECT_LE(m.slot_waits, waited_ms / o.shared_retry_ms + 2);
}

// What PgJournal::watch_move_ends gives the executor, told by the test.
class FakeMoveEnds final : public MoveEndWatcher {
 public:
  void ended(EndedMove e) {
    std::lock_guard lock(mu_);
    ended_.push_back(std::move(e));
    cv_.notify_all();
  }
  Result<std::vector<EndedMove>> wait(int64_t timeout_ms) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return !ended_.empty() || woken_; });
    woken_ = false;
    ++waits_;
    return std::exchange(ended_, {});
  }
  void wake() override {
    std::lock_guard lock(mu_);
    woken_ = true;
    cv_.notify_all();
  }
  int waits() {
    std::lock_guard lock(mu_);
    return waits_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<EndedMove> ended_;
  bool woken_ = false;
  int waits_ = 0;
};

int64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

// A slot another process's move holds: the waiting move is tried again as
// soon as the journal says that move ended, not after the retry interval
// (a minute here), and not before (one refused claim in all).
TEST(SharedNight, AMoveWaitingForAnotherProcesssSlotRunsWhenTheJournalSaysItEnded) {
  Fleet fleet("ended");
  fleet.place("u1", "a");
  fleet.place("x", "c");
  const int64_t plan_id = store_plan(fleet.journal());
  MoveRecord foreign = claimed(fleet.journal(), "x", "c", "b", 0, MoveState::kPrecopy);
  auto other = fleet.open();
  auto lease = other->lease_move(foreign.id);
  ASSERT_TRUE(lease.ok());

  ExecutionOptions o = shared_options(plan_id, 1);
  o.shared_retry_ms = 60'000;
  auto ends = std::make_shared<FakeMoveEnds>();
  o.move_ends = ends;
  const Plan plan = make_plan({"a", "b", "c"}, {"u1:a>b"});
  std::optional<Result<ExecutionReport>> r;
  std::thread t([&] { r.emplace(execute_plan(plan, o, fleet.workers(5), fleet.clock())); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(fleet.where("u1"), "a") << "it moved while b's only in slot was taken";
  foreign.state = MoveState::kDone;
  ASSERT_TRUE(other->update_move(foreign).ok());
  lease->reset();
  ends->ended({99, "d", "a"});  // another server's move: nothing to do with u1's slots
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(fleet.where("u1"), "a");
  const auto t0 = std::chrono::steady_clock::now();
  ends->ended({foreign.id, "c", "b"});
  t.join();
  EXPECT_LT(ms_since(t0), 5'000) << "it waited for the retry interval";
  ASSERT_TRUE(r->ok()) << r->error().message();
  const MoveOutcome& m = outcome_of(**r, "u1");
  EXPECT_EQ(m.result, MoveResult::kDone) << m.reason;
  EXPECT_EQ(fleet.where("u1"), "b");
  EXPECT_EQ(m.slot_waits, 1) << "claims tried before a move ended";
  EXPECT_GE(ends->waits(), 2) << "the watcher was waited on, and woken at the end";
}

// A user in another controller's move: looked at when that move ends (the
// journal says so), not after the retry interval.
TEST(SharedNight, AWatchedMoveIsLookedAtWhenItEnds) {
  Fleet fleet("watched");
  fleet.place("u1", "a");
  const int64_t plan_id = store_plan(fleet.journal());
  MoveRecord foreign = claimed(fleet.journal(), "u1", "a", "b", plan_id, MoveState::kPrecopy);
  auto other = fleet.open();
  auto lease = other->lease_move(foreign.id);
  ASSERT_TRUE(lease.ok());

  ExecutionOptions o = shared_options(plan_id, 2);
  o.shared_retry_ms = 60'000;
  auto ends = std::make_shared<FakeMoveEnds>();
  o.move_ends = ends;
  const Plan plan = make_plan({"a", "b"}, {"u1:a>b"});
  std::optional<Result<ExecutionReport>> r;
  std::thread t([&] { r.emplace(execute_plan(plan, o, fleet.workers(5), fleet.clock())); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  fleet.place("u1", "b");
  foreign.state = MoveState::kDone;
  ASSERT_TRUE(other->update_move(foreign).ok());
  lease->reset();
  const auto t0 = std::chrono::steady_clock::now();
  ends->ended({foreign.id, "a", "b"});
  t.join();
  EXPECT_LT(ms_since(t0), 5'000) << "it waited for the retry interval";
  ASSERT_TRUE(r->ok()) << r->error().message();
  const MoveOutcome& m = outcome_of(**r, "u1");
  EXPECT_EQ(m.result, MoveResult::kSkipped) << m.reason;
  EXPECT_TRUE(m.elsewhere);
  EXPECT_EQ(m.move_id, foreign.id);
  EXPECT_EQ(fleet.resume_attempts(), 1) << "looked at once, when it ended";
}

// Without a watcher (SQLite), a slot this process's own move frees is taken
// at once by the move that waited for it; the interval is only for slots
// other processes hold.
TEST(SharedNight, AMoveWaitingForASlotThisProcessFreesRunsWhenItsMoveEnds) {
  Fleet fleet("own");
  fleet.place("u1", "a");
  fleet.place("u2", "c");
  fleet.place("x", "d");
  const int64_t plan_id = store_plan(fleet.journal());
  // b takes 2 moves in: one is another process's (held all along), so this
  // run's two moves into b go one after the other.
  MoveRecord foreign = claimed(fleet.journal(), "x", "d", "b", 0, MoveState::kPrecopy);
  auto other = fleet.open();
  auto lease = other->lease_move(foreign.id);
  ASSERT_TRUE(lease.ok());

  ExecutionOptions o = shared_options(plan_id, 2);
  o.shared_retry_ms = 60'000;
  const Plan plan = make_plan({"a", "b", "c", "d"}, {"u1:a>b", "u2:c>b"});
  const auto t0 = std::chrono::steady_clock::now();
  auto r = execute_plan(plan, o, fleet.workers(200), fleet.clock());
  EXPECT_LT(ms_since(t0), 5'000) << "it waited for the retry interval";
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(outcome_of(*r, "u1").result, MoveResult::kDone) << outcome_of(*r, "u1").reason;
  EXPECT_EQ(outcome_of(*r, "u2").result, MoveResult::kDone) << outcome_of(*r, "u2").reason;
  EXPECT_EQ(outcome_of(*r, "u1").slot_waits + outcome_of(*r, "u2").slot_waits, 1);
  EXPECT_EQ(fleet.max_in("b"), 1) << "never both at once";
}

// A controller died (kill -9) with a move that had not flipped: nobody holds
// its lease. The survivor rolls it back (as resume would) and runs the user's
// move itself; a dead controller's flipped move is finished instead.
TEST(SharedNight, TheMovesOfADeadControllerAreRecovered) {
  Fleet fleet("dead");
  fleet.place("u1", "a");
  fleet.place("u2", "a");
  fleet.place("u3", "b");
  const int64_t plan_id = store_plan(fleet.journal());
  auto orphan = [&](const std::string& user, const std::string& from, const std::string& to, MoveState state) {
    return claimed(fleet.journal(), user, from, to, plan_id, state).id;
  };
  const int64_t frozen = orphan("u1", "a", "c", MoveState::kFrozen);
  const int64_t flipped = orphan("u2", "a", "c", MoveState::kFlipped);
  fleet.place("u2", "c");  // its flip happened before the crash

  const Plan plan = make_plan({"a", "b", "c"}, {"u1:a>c", "u2:a>c", "u3:b>c"});
  auto r = execute_plan(plan, shared_options(plan_id, 2), fleet.workers(5), fleet.clock());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->done, 3);
  EXPECT_EQ(r->taken_over, 2);
  EXPECT_EQ(fleet.journal().get_move(frozen)->state, MoveState::kRolledBack);
  EXPECT_EQ(fleet.journal().get_move(flipped)->state, MoveState::kDone);
  EXPECT_EQ(outcome_of(*r, "u2").move_id, flipped);
  EXPECT_NE(outcome_of(*r, "u1").move_id, frozen) << "u1 runs again in a move of its own";
  for (const char* u : {"u1", "u2", "u3"}) EXPECT_EQ(fleet.where(u), "c") << u;
  auto done = fleet.done_moves();
  for (const char* u : {"u1", "u2", "u3"}) EXPECT_EQ(done[u], 1) << u;
  MoveFilter active;
  active.active_only = true;
  EXPECT_TRUE(fleet.journal().list_moves(active)->empty());
}

// A controller that is alive but slow keeps its move: the survivor only
// watches it (its resume attempts fail on the lease) and reports it as run
// elsewhere once it ends.
TEST(SharedNight, NoTakeOverWhileALiveProcessHoldsTheMove) {
  Fleet fleet("alive");
  fleet.place("u1", "a");
  const int64_t plan_id = store_plan(fleet.journal());
  MoveRecord held = claimed(fleet.journal(), "u1", "a", "b", plan_id, MoveState::kFinalSync);
  auto slow = fleet.open();
  auto lease = slow->lease_move(held.id);
  ASSERT_TRUE(lease.ok());

  const Plan plan = make_plan({"a", "b"}, {"u1:a>b"});
  std::optional<Result<ExecutionReport>> r;
  std::thread t([&] { r.emplace(execute_plan(plan, shared_options(plan_id, 2), fleet.workers(5), fleet.clock())); });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_GE(fleet.resume_attempts(), 3) << "the executor watches the move";
  EXPECT_EQ(fleet.journal().get_move(held.id)->state, MoveState::kFinalSync) << "taken over from a live holder";
  // The slow controller finishes its move.
  fleet.place("u1", "b");
  held.state = MoveState::kDone;
  ASSERT_TRUE(slow->update_move(held).ok());
  lease->reset();
  t.join();
  ASSERT_TRUE(r->ok()) << r->error().message();
  const MoveOutcome& m = outcome_of(**r, "u1");
  EXPECT_EQ(m.result, MoveResult::kSkipped);
  EXPECT_TRUE(m.elsewhere);
  EXPECT_EQ(m.reason, fmt::format("run by another controller: move {}, done", held.id));
  EXPECT_EQ((*r)->taken_over, 0);
  EXPECT_EQ((*r)->elsewhere_done, 1);
  EXPECT_EQ(fleet.done_moves()["u1"], 1);
}

// A stop while a move waits for another controller's: it is reported as not
// started, naming the move it waited for.
TEST(SharedNight, AStopReportsWhatAWatchedMoveWaitedFor) {
  Fleet fleet("stop");
  fleet.place("u1", "a");
  const int64_t plan_id = store_plan(fleet.journal());
  MoveRecord held = claimed(fleet.journal(), "u1", "a", "b", plan_id, MoveState::kPrecopy);
  auto slow = fleet.open();
  auto lease = slow->lease_move(held.id);
  ASSERT_TRUE(lease.ok());
  ExecutionOptions o = shared_options(plan_id, 2);
  std::atomic<bool> stop{false};
  o.stop = [&] { return stop ? StopRequest{StopLevel::kSoft, "SIGTERM"} : StopRequest{}; };
  const Plan plan = make_plan({"a", "b"}, {"u1:a>b"});
  std::optional<Result<ExecutionReport>> r;
  std::thread t([&] { r.emplace(execute_plan(plan, o, fleet.workers(5), fleet.clock())); });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  stop = true;
  t.join();
  ASSERT_TRUE(r->ok()) << r->error().message();
  const MoveOutcome& m = outcome_of(**r, "u1");
  EXPECT_EQ(m.result, MoveResult::kNotStarted);
  EXPECT_EQ(m.reason, fmt::format("not started: SIGTERM (its user is in move {}, held by another process)", held.id));
}

// The race the journal closes: another controller's move of the user ended
// done between this controller's re-check of the directory and its claim.
// The claim says so, and the move is reported as done elsewhere, not run twice.
TEST(SharedNight, AMoveItsPlanDidAlreadyIsNotRunAgain) {
  Fleet fleet("again");
  fleet.place("u1", "a");  // what this controller's re-check still saw
  const int64_t plan_id = store_plan(fleet.journal());
  MoveRecord m = claimed(fleet.journal(), "u1", "a", "b", plan_id, MoveState::kPlanned);
  m.state = MoveState::kDone;
  ASSERT_TRUE(fleet.journal().update_move(m).ok());
  const Plan plan = make_plan({"a", "b"}, {"u1:a>b"});
  auto r = execute_plan(plan, shared_options(plan_id, 2), fleet.workers(5), fleet.clock());
  ASSERT_TRUE(r.ok()) << r.error().message();
  const MoveOutcome& o = outcome_of(*r, "u1");
  EXPECT_TRUE(o.elsewhere);
  EXPECT_EQ(o.reason, fmt::format("run by another controller: move {}, done", m.id));
  EXPECT_EQ(r->elsewhere_done, 1);
  EXPECT_EQ(fleet.done_moves()["u1"], 1);
  EXPECT_EQ(fleet.where("u1"), "a") << "moved again";
}

// The journal goes away mid-night: no move can be claimed, so the night
// stops starting moves with one line saying why; the move running finishes.
TEST(SharedNight, TheJournalDownMidNightStopsTheNight) {
  Fleet fleet("down");
  std::vector<std::string> specs;
  for (int i = 0; i < 6; ++i) {
    fleet.place("u" + std::to_string(i), "a");
    specs.push_back("u" + std::to_string(i) + ":a>b");
  }
  const int64_t plan_id = store_plan(fleet.journal());
  ExecutionOptions o = shared_options(plan_id, 1);
  std::atomic<int> progress{0};
  o.on_progress = [&](const ExecutionReport& r) {
    if (r.done >= 2) fleet.take_journal_down();
    ++progress;
  };
  o.progress_interval_ms = 1;
  auto r = execute_plan(make_plan({"a", "b"}, specs), o, fleet.workers(20), fleet.clock());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_GE(r->done, 2);
  EXPECT_EQ(r->failed, 0);
  EXPECT_EQ(r->done + r->not_started, 6);
  EXPECT_GT(r->not_started, 0);
  EXPECT_TRUE(r->deadline_reached);
  EXPECT_EQ(r->stop_reason,
            "the journal cannot claim moves: journal postgresql://db1:5432/mailshard: the connection is lost");
  MoveFilter active;
  active.active_only = true;
  EXPECT_TRUE(fleet.journal().list_moves(active)->empty()) << "a move was left half-claimed";
}

TEST(SharedNight, NeedsThePlansJournalIdAndWorkersThatCanResume) {
  Fleet fleet("needs");
  const Plan plan = make_plan({"a", "b"}, {"u1:a>b"});
  auto r = execute_plan(plan, shared_options(0, 1), fleet.workers(1), fleet.clock());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "a shared night needs the plan's journal id (its controllers share its moves)");
  MoveFnFactory only_moves = [] {
    return Result<MoveFn>(MoveFn([](const std::string&, const std::string&, const MoveOptions&) -> Result<MoveRecord> {
      return Error::internal("not called");
    }));
  };
  auto r2 = execute_plan(plan, shared_options(7, 1), only_moves, fleet.clock());
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().message(), "a shared night's workers must be able to resume another controller's moves");
}

}  // namespace
}  // namespace mailshard
