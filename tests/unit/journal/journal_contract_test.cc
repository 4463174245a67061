// The Journal contract, run against every backend (see journal_contract.h).
#include "tests/unit/journal/journal_contract.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <thread>

#include <gmock/gmock.h>

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string this_host() {
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

TEST_P(JournalContractTest, ReopenKeepsData) {
  auto id = j_->claim_move(move_of("alice"));
  ASSERT_TRUE(id.ok()) << id.error().message();
  j_.reset();
  j_ = open_journal();
  ASSERT_NE(j_, nullptr);
  auto m = j_->get_move(*id);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->user, "alice");
}

TEST_P(JournalContractTest, ClaimIsExclusivePerUserUntilTerminal) {
  auto a = j_->claim_move(move_of("alice"));
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto again = j_->claim_move(move_of("alice"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(again.error().message(), "user alice is already being moved (move 1, state planned)");
  EXPECT_TRUE(j_->claim_move(move_of("bob")).ok());

  auto m = *j_->get_move(*a);
  m.state = MoveState::kDone;
  ASSERT_TRUE(j_->update_move(m).ok());
  EXPECT_TRUE(j_->claim_move(move_of("alice")).ok());
}

// Two controllers (two journals on one store): the claim holds across them,
// and the ids they get never collide.
TEST_P(JournalContractTest, ClaimHoldsAcrossTwoControllers) {
  auto other = open_journal();
  ASSERT_NE(other, nullptr);
  auto a = j_->claim_move(move_of("alice"));
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto b = other->claim_move(move_of("alice"));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(b.error().message(), "user alice is already being moved (move " + std::to_string(*a) + ", state planned)");
  auto c = other->claim_move(move_of("bob"));
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_NE(*a, *c);
  EXPECT_EQ(j_->get_move(*c)->user, "bob") << "each controller sees the other's moves";
}

// Controllers claiming the same users at the same moment: each user gets
// exactly one move, every other claim is a conflict, and no id is handed out twice.
TEST_P(JournalContractTest, ConcurrentClaimsGiveOneMovePerUser) {
  constexpr int kControllers = 4;
  constexpr int kUsers = 10;
  std::vector<std::unique_ptr<Journal>> journals;
  for (int i = 0; i < kControllers; ++i) {
    journals.push_back(open_journal());
    ASSERT_NE(journals.back(), nullptr);
  }
  std::atomic<int> won{0}, refused{0}, other_errors{0};
  std::mutex mu;
  std::set<int64_t> ids;
  std::vector<std::thread> threads;
  for (int i = 0; i < kControllers; ++i)
    threads.emplace_back([&, i] {
      for (int u = 0; u < kUsers; ++u) {
        auto r = journals[i]->claim_move(move_of("user" + std::to_string(u)));
        if (r.ok()) {
          ++won;
          std::lock_guard lock(mu);
          ids.insert(*r);
        } else if (r.error().code() == ErrorCode::kConflict &&
                   r.error().message().find("is already being moved") != std::string::npos) {
          ++refused;
        } else {
          ++other_errors;
          ADD_FAILURE() << r.error().message();
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), kUsers);
  EXPECT_EQ(refused.load(), kUsers * (kControllers - 1));
  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kUsers));
  MoveFilter f;
  f.active_only = true;
  EXPECT_EQ(j_->list_moves(f)->size(), static_cast<size_t>(kUsers));
}

TEST_P(JournalContractTest, DryRunRecordsDoNotClaim) {
  auto d = move_of("carol");
  d.state = MoveState::kDryRun;
  ASSERT_TRUE(j_->claim_move(d).ok());
  EXPECT_TRUE(j_->claim_move(move_of("carol")).ok());
}

TEST_P(JournalContractTest, UpdateAndListMoves) {
  auto id = *j_->claim_move(move_of("alice"));
  auto m = *j_->get_move(id);
  m.state = MoveState::kFlipped;
  m.step = "flip";
  m.lockout_ms = 420;
  m.bytes_transferred = 12345;
  m.error = "";
  clock_.advance(1000);
  ASSERT_TRUE(j_->update_move(m).ok());
  auto got = *j_->get_move(id);
  EXPECT_EQ(got.state, MoveState::kFlipped);
  EXPECT_EQ(got.lockout_ms, 420);
  EXPECT_EQ(got.bytes_transferred, 12345);
  EXPECT_EQ(got.updated_at_ms, clock_.now_ms());
  MoveFilter f;
  f.user = "alice";
  EXPECT_EQ(j_->list_moves(f)->size(), 1u);
  f.user = "nobody";
  EXPECT_TRUE(j_->list_moves(f)->empty());
  MoveFilter by_id;
  by_id.id = id;
  by_id.user = "alice";
  EXPECT_EQ(j_->list_moves(by_id)->size(), 1u);
  MoveRecord missing;
  missing.id = 999;
  EXPECT_EQ(j_->update_move(missing).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(j_->get_move(999).error().code(), ErrorCode::kNotFound);
}

TEST_P(JournalContractTest, StepsAreOrderedWithPhases) {
  auto id = *j_->claim_move(move_of("alice"));
  ASSERT_TRUE(j_->log_step(id, "precopy", StepPhase::kBegin, "").ok());
  clock_.advance(5);
  ASSERT_TRUE(j_->log_step(id, "precopy", StepPhase::kEnd, R"({"bytes":10})").ok());
  ASSERT_TRUE(j_->log_step(id, "freeze", StepPhase::kError, "ldap down").ok());
  auto steps = *j_->list_steps(id);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[1].phase, StepPhase::kEnd);
  EXPECT_EQ(steps[1].at_ms, clock_.now_ms());
  EXPECT_EQ(steps[2].detail, "ldap down");
}

TEST_P(JournalContractTest, PlansAreIdempotentByHash) {
  PlanRecord p{0, "abcdef0123456789", 0, "balance", "{\"moves\":[]}", "", 0, 0, ""};
  auto a = j_->store_plan(p);
  auto b = j_->store_plan(p);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  auto found = j_->find_plan("abcdef01");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->strategy, "balance");
  EXPECT_EQ(found->status, "planned");
  EXPECT_EQ(j_->find_plan("ffffffff").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(j_->find_plan("abc").error().code(), ErrorCode::kInvalidInput);
}

TEST_P(JournalContractTest, BlobsOverwrite) {
  auto id = *j_->claim_move(move_of("alice"));
  ASSERT_TRUE(j_->put_blob(id, "listing", std::string("a\0b\xff", 4)).ok());
  EXPECT_EQ(**j_->get_blob(id, "listing"), std::string("a\0b\xff", 4));
  ASSERT_TRUE(j_->put_blob(id, "listing", "v2").ok());
  EXPECT_EQ(**j_->get_blob(id, "listing"), "v2");
  EXPECT_FALSE(j_->get_blob(id, "other")->has_value());
}

TEST_P(JournalContractTest, RunsAndSnapshots) {
  auto run = *j_->begin_run("inventory", "{}");
  ASSERT_TRUE(j_->record_snapshot(run, clock_.now_ms(), "/tmp/snap", R"({"users":3})").ok());
  ASSERT_TRUE(j_->record_snapshot(0, clock_.now_ms(), "/tmp/snap2", "{}").ok()) << "no run";
  ASSERT_TRUE(j_->finish_run(run, "ok", "{}").ok());
  auto runs = *j_->list_runs(10);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, "ok");
  EXPECT_EQ(runs[0].kind, "inventory");
}

TEST_P(JournalContractTest, PlanMovesAreCountedFromThePlanJson) {
  ASSERT_TRUE(j_->store_plan(plan_of("aaaaaaaa00000001", 0, 3)).ok());
  PlanRecord not_json = plan_of("aaaaaaaa00000002", 0, 0);
  not_json.plan_json = "not json";
  not_json.moves = 99;  // ignored: the journal counts
  ASSERT_TRUE(j_->store_plan(not_json).ok());
  EXPECT_EQ(j_->find_plan("aaaaaaaa00000001")->moves, 3);
  EXPECT_EQ(j_->find_plan("aaaaaaaa00000002")->moves, 0);
}

TEST_P(JournalContractTest, ApprovalRoundTripIsIdempotent) {
  int64_t id = *j_->store_plan(plan_of("abcdef0123456789", 0, 2));
  auto before = *j_->find_plan("abcdef01");
  EXPECT_EQ(before.approved_at_ms, 0);
  EXPECT_EQ(before.approved_by, "");

  clock_.advance(60'000);
  ASSERT_TRUE(j_->approve_plan(id, "alice").ok());
  const int64_t approved_at = clock_.now_ms();
  auto after = *j_->find_plan("abcdef0123456789");
  EXPECT_EQ(after.approved_at_ms, approved_at);
  EXPECT_EQ(after.approved_by, "alice");
  EXPECT_EQ(after.moves, 2);

  // Again, later and by someone else: the first approval stands.
  clock_.advance(60'000);
  ASSERT_TRUE(j_->approve_plan(id, "bob").ok());
  auto again = *j_->find_plan("abcdef01");
  EXPECT_EQ(again.approved_at_ms, approved_at);
  EXPECT_EQ(again.approved_by, "alice");
  // Storing the same plan again does not touch the approval either.
  ASSERT_EQ(*j_->store_plan(plan_of("abcdef0123456789", 0, 2)), id);
  EXPECT_EQ(j_->find_plan("abcdef01")->approved_by, "alice");
}

TEST_P(JournalContractTest, ApprovingAnUnknownPlanIsNotFound) {
  auto st = j_->approve_plan(42, "alice");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(st.error().message(), "plan 42 is not in the journal");
  int64_t id = *j_->store_plan(plan_of("abcdef0123456789", 0, 0));
  EXPECT_EQ(j_->approve_plan(id, "").error().code(), ErrorCode::kInvalidInput);
}

TEST_P(JournalContractTest, ListPlansIsNewestFirstWithoutThePlanText) {
  ASSERT_TRUE(j_->store_plan(plan_of("11111111aaaaaaaa", 1000, 1)).ok());
  ASSERT_TRUE(j_->store_plan(plan_of("33333333aaaaaaaa", 3000, 3)).ok());
  // Same created_at as the first: the later id is newer.
  int64_t second = *j_->store_plan(plan_of("22222222aaaaaaaa", 1000, 2));
  ASSERT_TRUE(j_->approve_plan(second, "alice").ok());
  auto all = j_->list_plans(0);
  ASSERT_TRUE(all.ok()) << all.error().message();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].hash, "33333333aaaaaaaa");
  EXPECT_EQ((*all)[1].hash, "22222222aaaaaaaa");
  EXPECT_EQ((*all)[2].hash, "11111111aaaaaaaa");
  EXPECT_EQ((*all)[0].moves, 3);
  EXPECT_EQ((*all)[0].status, "planned");
  EXPECT_EQ((*all)[1].approved_by, "alice");
  EXPECT_EQ((*all)[1].approved_at_ms, clock_.now_ms());
  for (const auto& p : *all) EXPECT_EQ(p.plan_json, "");
  EXPECT_EQ(j_->list_plans(2)->size(), 2u);
}

TEST_P(JournalContractTest, LatestPlanWithAndWithoutApproval) {
  EXPECT_FALSE(j_->latest_plan(false)->has_value());
  int64_t old_id = *j_->store_plan(plan_of("11111111aaaaaaaa", 1000, 1));
  ASSERT_TRUE(j_->store_plan(plan_of("22222222aaaaaaaa", 2000, 2)).ok());
  EXPECT_FALSE(j_->latest_plan(true)->has_value());
  auto newest = *j_->latest_plan(false);
  ASSERT_TRUE(newest.has_value());
  EXPECT_EQ(newest->hash, "22222222aaaaaaaa");
  EXPECT_NE(newest->plan_json, "");  // the full record

  ASSERT_TRUE(j_->approve_plan(old_id, "alice").ok());
  auto approved = *j_->latest_plan(true);
  ASSERT_TRUE(approved.has_value());
  EXPECT_EQ(approved->hash, "11111111aaaaaaaa");
  EXPECT_EQ(approved->approved_by, "alice");
  EXPECT_EQ(approved->plan_json, plan_of("11111111aaaaaaaa", 1000, 1).plan_json);
  EXPECT_EQ((*j_->latest_plan(false))->hash, "22222222aaaaaaaa");
}

TEST_P(JournalContractTest, StopRequestRoundTrip) {
  int64_t run = *j_->begin_run("rebalance", "{}");
  int64_t other = *j_->begin_run("inventory", "{}");
  EXPECT_FALSE(*j_->stop_requested(run));
  auto running = *j_->running_runs("rebalance");
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].id, run);
  EXPECT_EQ(running[0].stop_requested_at_ms, 0);

  clock_.advance(5'000);
  const int64_t asked_at = clock_.now_ms();
  ASSERT_TRUE(j_->request_stop(run).ok());
  clock_.advance(5'000);
  ASSERT_TRUE(j_->request_stop(run).ok());  // idempotent: the first time is kept
  EXPECT_TRUE(*j_->stop_requested(run));
  EXPECT_FALSE(*j_->stop_requested(other));
  EXPECT_EQ((*j_->running_runs("rebalance"))[0].stop_requested_at_ms, asked_at);
  EXPECT_EQ((*j_->list_runs(0))[1].stop_requested_at_ms, asked_at);

  ASSERT_TRUE(j_->finish_run(run, "interrupted", "{}").ok());
  EXPECT_TRUE(j_->running_runs("rebalance")->empty());
  auto late = j_->request_stop(run);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(late.error().message(), "run 1 has already finished (interrupted)");
  EXPECT_EQ(j_->request_stop(99).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(j_->stop_requested(99).error().code(), ErrorCode::kNotFound);
}

// Two takes in one process conflict like two processes (SQLite: two open file
// descriptions; PostgreSQL: two sessions).
TEST_P(JournalContractTest, RunLeaseIsExclusiveAndNamesTheHolder) {
  auto first = j_->lease_run("rebalance");
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = j_->lease_run("rebalance");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(second.error().message(), "another rebalance is running: pid " + std::to_string(::getpid()) + " on host " +
                                          this_host() + " since " + format_time_ms(clock_.now_ms()));
  auto other = open_journal();
  ASSERT_NE(other, nullptr);
  auto from_other = other->lease_run("rebalance");
  ASSERT_FALSE(from_other.ok()) << "another controller on the same journal";
  EXPECT_EQ(from_other.error().message(), second.error().message());
  EXPECT_TRUE(j_->lease_run("inventory").ok()) << "other kinds are independent";
  first->reset();
  EXPECT_TRUE(j_->lease_run("rebalance").ok()) << "released when destroyed";
  EXPECT_EQ(j_->lease_run("../x").error().code(), ErrorCode::kInvalidInput);
}

TEST_P(JournalContractTest, MoveLeaseIsExclusiveAcrossControllers) {
  auto id = *j_->claim_move(move_of("alice"));
  auto other = open_journal();
  ASSERT_NE(other, nullptr);
  auto held = j_->lease_move(id);
  ASSERT_TRUE(held.ok()) << held.error().message();
  auto refused = other->lease_move(id);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  EXPECT_THAT(refused.error().message(), StartsWith("move " + std::to_string(id) + " is being run by another process"));
  auto other_move = *j_->claim_move(move_of("bob"));
  EXPECT_TRUE(other->lease_move(other_move).ok()) << "leases are per move";
  held->reset();
  EXPECT_TRUE(other->lease_move(id).ok()) << "released when destroyed";
}

// One controller holds many move leases at once (a night with many moves in
// flight): each is exclusive, and releasing one frees just that one. A second
// lease of a move from the journal that holds it is refused too.
TEST_P(JournalContractTest, ManyMoveLeasesAtOnceAreEachExclusive) {
  constexpr int kMoves = 200;
  std::vector<int64_t> ids;
  std::vector<std::unique_ptr<MoveLease>> leases;
  for (int i = 0; i < kMoves; ++i) {
    auto id = j_->claim_move(move_of("user" + std::to_string(i)));
    ASSERT_TRUE(id.ok()) << id.error().message();
    ids.push_back(*id);
    auto lease = j_->lease_move(*id);
    ASSERT_TRUE(lease.ok()) << lease.error().message();
    leases.push_back(std::move(*lease));
  }
  auto again = j_->lease_move(ids[7]);
  ASSERT_FALSE(again.ok()) << "a held lease taken twice by its own journal";
  EXPECT_EQ(again.error().code(), ErrorCode::kConflict);
  EXPECT_THAT(again.error().message(), StartsWith("move " + std::to_string(ids[7]) + " is being run by another process"));

  leases[7].reset();
  auto other = open_journal();
  ASSERT_NE(other, nullptr);
  auto freed = other->lease_move(ids[7]);
  EXPECT_TRUE(freed.ok()) << freed.error().message();
  for (int i : {0, 6, 8, kMoves - 1}) {
    auto held = other->lease_move(ids[i]);
    ASSERT_FALSE(held.ok()) << "move " << i << " was released with move 7";
    EXPECT_EQ(held.error().code(), ErrorCode::kConflict);
  }
  // The holder still writes the moves it holds.
  MoveRecord m = *j_->get_move(ids[8]);
  m.state = MoveState::kPrecopy;
  EXPECT_TRUE(j_->update_move(m).ok());
  EXPECT_TRUE(j_->log_step(ids[8], "precopy", StepPhase::kBegin, "").ok());
  leases.clear();
  EXPECT_TRUE(other->lease_move(ids[8]).ok()) << "released when destroyed";
}

// A child process takes the lease and reports; `then` runs with the child
// holding it (stopped with SIGSTOP when `stop_child`), then the child is
// killed with SIGKILL. The child touches only the lease, never the parent's
// connection or handle.
template <typename Take, typename Then>
void with_lease_in_child(Take take, Then then, bool stop_child = false) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    bool ok = take();
    char c = ok ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  if (stop_child) ::kill(child, SIGSTOP);
  then(child, c == 'y');
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
}

// claim_move_in_slots: the slots are counted over every controller's active
// moves, a terminal move frees its slot, and a refusal writes nothing.
TEST_P(JournalContractTest, SlotClaimsCountEveryControllersActiveMoves) {
  auto other = open_journal();
  ASSERT_NE(other, nullptr);
  const SlotLimits two_out_one_in{2, 1};
  auto a = j_->claim_move_in_slots(move_of("alice"), two_out_one_in);
  ASSERT_TRUE(a.ok()) << a.error().message();
  ASSERT_EQ(a->outcome, ClaimOutcome::kClaimed);
  EXPECT_GT(a->move_id, 0);
  EXPECT_EQ(j_->get_move(a->move_id)->user, "alice");

  // store2 has its one in slot taken (by the first controller's move).
  auto b = other->claim_move_in_slots(move_of("bob"), two_out_one_in);
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(b->outcome, ClaimOutcome::kSlotsFull);
  EXPECT_EQ(b->move_id, 0);
  EXPECT_EQ(b->message, "slots full: store2 is the destination of 1 active moves (in slots 1)");
  EXPECT_FALSE(b->source_full);
  // To store3 the in slot is free, and store1 has a second out slot.
  auto c_rec = move_of("carol");
  c_rec.to_server = "store3";
  auto c = other->claim_move_in_slots(c_rec, two_out_one_in);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->outcome, ClaimOutcome::kClaimed);
  // Now store1's two out slots are taken.
  auto d_rec = move_of("dave");
  d_rec.to_server = "store4";
  auto d = j_->claim_move_in_slots(d_rec, two_out_one_in);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->outcome, ClaimOutcome::kSlotsFull);
  EXPECT_EQ(d->message, "slots full: store1 is the source of 2 active moves (out slots 2)");
  EXPECT_TRUE(d->source_full);
  // An on-demand move (claim_move) takes a slot too.
  auto e_rec = move_of("erin");
  e_rec.from_server = "store5";
  e_rec.to_server = "store3";
  ASSERT_TRUE(j_->claim_move(e_rec).ok());
  auto f_rec = move_of("frank");
  f_rec.from_server = "store6";
  f_rec.to_server = "store3";
  auto f = other->claim_move_in_slots(f_rec, {1, 2});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->outcome, ClaimOutcome::kSlotsFull);
  EXPECT_EQ(f->message, "slots full: store3 is the destination of 2 active moves (in slots 2)");

  // A refused claim wrote nothing.
  MoveFilter bob;
  bob.user = "bob";
  EXPECT_TRUE(j_->list_moves(bob)->empty());

  // The first move ends: its slots are free again.
  MoveRecord done = *j_->get_move(a->move_id);
  done.state = MoveState::kDone;
  ASSERT_TRUE(j_->update_move(done).ok());
  auto b2 = other->claim_move_in_slots(move_of("bob"), two_out_one_in);
  ASSERT_TRUE(b2.ok()) << b2.error().message();
  EXPECT_EQ(b2->outcome, ClaimOutcome::kClaimed);
}

TEST_P(JournalContractTest, SlotClaimOfABusyUserNamesItsMove) {
  auto first = j_->claim_move(move_of("alice"));
  ASSERT_TRUE(first.ok());
  auto other = open_journal();
  auto r = other->claim_move_in_slots(move_of("alice"), {5, 5});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->outcome, ClaimOutcome::kUserBusy);
  EXPECT_EQ(r->move_id, *first);
  EXPECT_EQ(r->message, "user alice is already being moved (move " + std::to_string(*first) + ", state planned)");
  // A busy user is reported even when the slots are full too.
  auto full = other->claim_move_in_slots(move_of("alice"), {0, 0});
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->outcome, ClaimOutcome::kUserBusy);
}

// A plan's move of a user is done once, whichever controller gets to it.
TEST_P(JournalContractTest, SlotClaimOfAMoveItsPlanDidAlreadyNamesThatMove) {
  auto m = move_of("alice");
  m.plan_id = 5;
  auto first = j_->claim_move_in_slots(m, {5, 5});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->outcome, ClaimOutcome::kClaimed);
  MoveRecord done = *j_->get_move(first->move_id);
  done.state = MoveState::kRolledBack;
  ASSERT_TRUE(j_->update_move(done).ok());
  auto again = j_->claim_move_in_slots(m, {5, 5});  // a rolled back move does not count
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->outcome, ClaimOutcome::kClaimed);
  done = *j_->get_move(again->move_id);
  done.state = MoveState::kDone;
  ASSERT_TRUE(j_->update_move(done).ok());
  auto other = open_journal();
  auto third = other->claim_move_in_slots(m, {5, 5});
  ASSERT_TRUE(third.ok()) << third.error().message();
  EXPECT_EQ(third->outcome, ClaimOutcome::kDoneAlready);
  EXPECT_EQ(third->move_id, again->move_id);
  EXPECT_EQ(third->message,
            "user alice was moved by move " + std::to_string(again->move_id) + " of this plan already");
  auto next_plan = m;
  next_plan.plan_id = 6;
  auto fourth = other->claim_move_in_slots(next_plan, {5, 5});
  ASSERT_TRUE(fourth.ok());
  EXPECT_EQ(fourth->outcome, ClaimOutcome::kClaimed);
}

TEST_P(JournalContractTest, SlotClaimRefusesTerminalOrServerlessMoves) {
  auto d = move_of("carol");
  d.state = MoveState::kDryRun;
  auto r = j_->claim_move_in_slots(d, {1, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  auto n = move_of("carol");
  n.from_server.clear();
  r = j_->claim_move_in_slots(n, {1, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
}

// Processes racing for the last free slot of a server: exactly one gets it.
TEST_P(JournalContractTest, ProcessesRacingForTheLastSlotGetOneMove) {
  constexpr int kRacers = 4;
  // store1 has 2 out slots; one is taken, so one is left.
  auto taken = j_->claim_move_in_slots(move_of("first"), {2, 10});
  ASSERT_TRUE(taken.ok());
  ASSERT_EQ(taken->outcome, ClaimOutcome::kClaimed);
  int go[2], results[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(results), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < kRacers; ++i) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(go[1]);
      ::close(results[0]);
      char out = 'e';
      auto j = backend_->open(clock_);
      if (j.ok()) {
        char c;
        if (::read(go[0], &c, 1) == 1) {
          auto m = move_of("racer" + std::to_string(i));
          m.to_server = "dest" + std::to_string(i);  // its own destination: only store1's out slots are shared
          auto r = (*j)->claim_move_in_slots(m, {2, 10});
          if (r.ok()) out = r->outcome == ClaimOutcome::kClaimed ? 'c' : r->outcome == ClaimOutcome::kSlotsFull ? 'f' : 'b';
        }
      }
      (void)!::write(results[1], &out, 1);
      ::_exit(0);
    }
    children.push_back(child);
  }
  ::close(go[0]);
  ::close(results[1]);
  // Every child opened its journal (or failed) before any claims: the go
  // byte releases them at once.
  ::usleep(300'000);
  const char bytes[kRacers] = {};
  ASSERT_EQ(::write(go[1], bytes, kRacers), kRacers);
  ::close(go[1]);
  std::string got;
  char c;
  while (::read(results[0], &c, 1) == 1) got += c;
  ::close(results[0]);
  for (pid_t p : children) {
    int status = 0;
    ::waitpid(p, &status, 0);
  }
  ASSERT_EQ(got.size(), static_cast<size_t>(kRacers)) << got;
  EXPECT_EQ(std::count(got.begin(), got.end(), 'c'), 1) << got;
  EXPECT_EQ(std::count(got.begin(), got.end(), 'f'), kRacers - 1) << got;
  MoveFilter f;
  f.active_only = true;
  EXPECT_EQ(j_->list_moves(f)->size(), 2u);
}

// The shared side of a run lease: shared holders together, never with an
// exclusive holder.
TEST_P(JournalContractTest, SharedRunLeasesExcludeTheExclusiveOne) {
  auto other = open_journal();
  auto s1 = j_->lease_run_shared("rebalance");
  ASSERT_TRUE(s1.ok()) << s1.error().message();
  auto s2 = other->lease_run_shared("rebalance");
  ASSERT_TRUE(s2.ok()) << s2.error().message();
  auto ex = other->lease_run("rebalance");
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.error().code(), ErrorCode::kConflict);
  EXPECT_THAT(ex.error().message(), StartsWith("another rebalance is running"));
  s1->reset();
  s2->reset();
  auto ex2 = other->lease_run("rebalance");
  ASSERT_TRUE(ex2.ok()) << ex2.error().message();
  auto s3 = j_->lease_run_shared("rebalance");
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.error().code(), ErrorCode::kConflict);
  EXPECT_THAT(s3.error().message(), HasSubstr("another rebalance is running: pid " + std::to_string(::getpid())));
}

// kill -9 of the holder frees the lease at once (the kernel closes its lock
// file or its connection), so recovery never waits for an expiry.
TEST_P(JournalContractTest, RunLeaseIsFreedWhenItsHolderIsKilled) {
  std::unique_ptr<RunLease> child_lease;  // lives in the child only
  pid_t holder = 0;
  with_lease_in_child(
      [&] {
        auto lease = j_->lease_run("rebalance");
        if (!lease.ok()) return false;
        child_lease = std::move(*lease);
        return true;
      },
      [&](pid_t child, bool took) {
        holder = child;
        ASSERT_TRUE(took);
        auto held = j_->lease_run("rebalance");
        ASSERT_FALSE(held.ok());
        EXPECT_EQ(held.error().code(), ErrorCode::kConflict);
        EXPECT_THAT(held.error().message(),
                    HasSubstr("pid " + std::to_string(child) + " on host " + this_host()));
      });
  ASSERT_NE(holder, 0);
  // PostgreSQL ends the dead session asynchronously: allow it a moment.
  Result<std::unique_ptr<RunLease>> after = Error::internal("not tried");
  for (int i = 0; i < 100; ++i) {
    after = j_->lease_run("rebalance");
    if (after.ok()) break;
    ::usleep(50'000);
  }
  EXPECT_TRUE(after.ok()) << after.error().message();
}

TEST_P(JournalContractTest, MoveLeaseIsFreedWhenItsHolderIsKilled) {
  auto id = *j_->claim_move(move_of("alice"));
  std::unique_ptr<MoveLease> child_lease;
  with_lease_in_child(
      [&] {
        auto lease = j_->lease_move(id);
        if (!lease.ok()) return false;
        child_lease = std::move(*lease);
        return true;
      },
      [&](pid_t, bool took) {
        ASSERT_TRUE(took);
        auto held = j_->lease_move(id);
        ASSERT_FALSE(held.ok());
        EXPECT_EQ(held.error().code(), ErrorCode::kConflict);
      });
  Result<std::unique_ptr<MoveLease>> after = Error::internal("not tried");
  for (int i = 0; i < 100; ++i) {
    after = j_->lease_move(id);
    if (after.ok()) break;
    ::usleep(50'000);
  }
  EXPECT_TRUE(after.ok()) << after.error().message();
}

// A holder that is alive but slow (here: stopped, so it does nothing at all
// for a while) keeps its lease: nobody takes over while its process lives.
TEST_P(JournalContractTest, ASlowButLiveHolderKeepsItsLease) {
  auto id = *j_->claim_move(move_of("alice"));
  std::unique_ptr<MoveLease> child_lease;
  with_lease_in_child(
      [&] {
        auto lease = j_->lease_move(id);
        if (!lease.ok()) return false;
        child_lease = std::move(*lease);
        return true;
      },
      [&](pid_t, bool took) {
        ASSERT_TRUE(took);
        for (int i = 0; i < 3; ++i) {
          auto held = j_->lease_move(id);
          ASSERT_FALSE(held.ok()) << "taken over from a live holder";
          EXPECT_EQ(held.error().code(), ErrorCode::kConflict);
          ::usleep(400'000);
        }
      },
      /*stop_child=*/true);
}

}  // namespace
}  // namespace mailshard::testing
