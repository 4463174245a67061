// Property tests on random fleets (seeded, deterministic): whatever the
// fleet and the constraints, no hard constraint is ever broken, a complete
// plan leaves every server in band, planning again after applying a complete
// plan moves nothing, and the same input gives the same plan hash.
#include <gtest/gtest.h>

#include "planners/planner.h"
#include "tests/unit/planners/fleet_builder.h"

namespace mailshard::planner {
namespace {

constexpr int kIterations = 1000;

Constraints random_constraints(uint64_t seed, const Snapshot& snap) {
  std::mt19937_64 rng(seed * 7919 + 13);
  auto pick = [&](int a, int b) { return std::uniform_int_distribution<int>(a, b)(rng); };
  Constraints c;
  const char* strategies[] = {"balance", "balance", "balance", "drain", "fill"};
  c.strategy = strategies[pick(0, 4)];
  const double bands[] = {0.01, 0.03, 0.05, 0.10};
  c.band = bands[pick(0, 3)];
  const double caps[] = {0.80, 0.85, 0.95};
  c.hard_cap = caps[pick(0, 2)];
  int64_t total = 0;
  for (auto w : snap.user_size) total += w;
  if (pick(0, 4) == 0) c.max_bytes = std::max<int64_t>(1, total / pick(5, 200));
  if (pick(0, 4) == 0) c.max_moves = pick(1, 40);
  if (pick(0, 4) == 0) c.max_moves_per_server = pick(1, 30);
  if (pick(0, 5) == 0) c.max_move_bytes = std::max<int64_t>(1, total / static_cast<int64_t>(snap.user_count() + 1) * pick(1, 8));
  if (pick(0, 3) == 0) c.nights = pick(2, 10);
  if (pick(0, 6) == 0) c.drain.push_back(pick(0, static_cast<int>(snap.servers.size()) - 1));
  if (pick(0, 5) == 0) c.min_free_bytes = snap.servers[0].capacity_bytes / 50;
  if (pick(0, 5) == 0) c.headroom_bytes = snap.servers[0].capacity_bytes / 40;
  return c;
}

TEST(PlannerProperty, RandomFleetsKeepEveryHardConstraint) {
  int complete = 0, partial = 0, with_moves = 0;
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE(::testing::Message() << "seed " << i);
    Snapshot snap = testing::random_fleet(static_cast<uint64_t>(i));
    Constraints c = random_constraints(static_cast<uint64_t>(i), snap);
    auto p = plan(snap, c);
    ASSERT_TRUE(p.ok()) << p.error().message();
    auto v = testing::hard_violations(snap, c, *p);
    ASSERT_TRUE(v.empty()) << v.front() << " (" << v.size() << " violations)";
    if (!p->moves.empty()) ++with_moves;
    if (p->partial) {
      ++partial;
      continue;
    }
    ++complete;
    // Complete: the judge's band holds for the strategies that act on it.
    if (c.strategy == "balance") {
      auto oob = testing::out_of_band(snap, c, *p);
      ASSERT_TRUE(oob.empty()) << oob.front();
    }
  }
  // The generator must exercise both outcomes, or the test proves little.
  EXPECT_GT(complete, kIterations / 6);
  EXPECT_GT(partial, kIterations / 10);
  EXPECT_GT(with_moves, kIterations / 2);
}

TEST(PlannerProperty, ReplanningAfterACompletePlanMovesNothing) {
  int checked = 0;
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE(::testing::Message() << "seed " << i);
    Snapshot snap = testing::random_fleet(1000 + static_cast<uint64_t>(i));
    Constraints c;
    c.band = i % 2 ? 0.05 : 0.02;
    c.nights = i % 3 == 0 ? 5 : 1;
    if (i % 3 == 0) c.max_moves_per_server = 10;
    auto p = plan(snap, c);
    ASSERT_TRUE(p.ok());
    if (p->partial || p->moves.empty()) continue;
    ++checked;
    auto again = plan(apply_plan(snap, *p), c);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->moves.size(), 0u) << again->moves.size() << " moves, first from server " << again->moves[0].from;
  }
  EXPECT_GT(checked, kIterations / 3);
}

TEST(PlannerProperty, SameInputSamePlan) {
  for (int i = 0; i < kIterations / 3; ++i) {
    SCOPED_TRACE(::testing::Message() << "seed " << i);
    Snapshot snap = testing::random_fleet(2000 + static_cast<uint64_t>(i));
    Constraints c = random_constraints(2000 + static_cast<uint64_t>(i), snap);
    auto a = plan(snap, c), b = plan(Snapshot(snap), c);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(plan_to_json(*a), plan_to_json(*b));
    EXPECT_EQ(plan_hash(*a), plan_hash(*b));
  }
}

TEST(PlannerProperty, PlanJsonRoundTrips) {
  for (int i = 0; i < 20; ++i) {
    Snapshot snap = testing::random_fleet(3000 + static_cast<uint64_t>(i));
    Constraints c = random_constraints(3000 + static_cast<uint64_t>(i), snap);
    auto p = plan(snap, c);
    ASSERT_TRUE(p.ok());
    std::string hash = plan_hash(*p);
    auto back = plan_from_json(plan_to_pretty_json(*p, hash));
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(plan_hash(*back), hash);
  }
}

}  // namespace
}  // namespace mailshard::planner
