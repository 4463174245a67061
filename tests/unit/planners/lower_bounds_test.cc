// Lower bounds, worked by hand from the formulas of metrics.py
// (planner-notes §4.4) on a four-server fleet.
#include <gtest/gtest.h>

#include "planners/capacity.h"
#include "planners/lower_bounds.h"
#include "tests/unit/planners/fleet_builder.h"

namespace mailshard::planner {
namespace {

// s0 = 400+300+100, s1 = 100+100, s2 draining = 50+30 (+ a pinned 20),
// s3 = 300+200; capacity 1000 each. mean = 1600/3000 = 0.5333:
// U = 583.33, L = 483.33.
//   s0: e = 216.67, k = 1 (400);  s1: d = 283.33, k' = 1 (the class's 400);
//   s2: e = 80 (its movable bytes), k = 2.
// LB_bytes = int(max(296.67, 283.33)) = 296; LB_moves = max(1+2, 1) = 3.
Snapshot fleet() {
  testing::FleetBuilder f;
  for (int i = 0; i < 4; ++i) f.server("std", 1000, 0, 16, i == 2);
  f.user(0, 400);
  f.user(0, 300);
  f.user(0, 100);
  f.user(1, 100);
  f.user(1, 100);
  f.user(2, 50);
  f.user(2, 30);
  f.user(2, 20, 1, /*pinned=*/true);
  f.user(3, 300);
  f.user(3, 200);
  return f.snap;
}

LowerBounds bounds(const Snapshot& snap, const Constraints& c) {
  std::vector<uint8_t> draining;
  for (const auto& s : snap.servers) draining.push_back(s.draining);
  auto used = used_bytes(snap);
  auto load = server_load(snap);
  UserIndex index(snap, c.max_move_bytes);
  return lower_bounds(snap, compute_limits(snap, draining, used, load, c), index, c);
}

TEST(LowerBounds, AsMetricsDefinesThem) {
  Constraints c;
  c.max_bytes = 100;
  c.max_moves = 2;
  c.max_moves_per_server = 1;
  LowerBounds b = bounds(fleet(), c);
  ASSERT_EQ(b.classes.size(), 1u);
  EXPECT_EQ(b.classes[0].excess_bytes, 296);  // int(216.67 + 80)
  EXPECT_EQ(b.classes[0].deficit_bytes, 283);
  EXPECT_EQ(b.lb_bytes, 296);
  EXPECT_EQ(b.classes[0].k_src, 3);
  EXPECT_EQ(b.classes[0].k_recv, 1);
  EXPECT_EQ(b.lb_moves, 3);
  const double alpha = 256.0 * (1 << 20);
  EXPECT_NEAR(b.lb_cost, 1600.0 / 3 * 0 + (800 - 583.0 - 1.0 / 3) + 80 + 3 * alpha, 1e-3);
  // T_LB: the drain, (80 B / 50 MiB/s + 2 x 30 s) / 4 slots.
  EXPECT_NEAR(b.t_lb_s, (80.0 / (50 << 20) + 60) / 4, 1e-9);
  EXPECT_EQ(b.max_server_moves_lb, 2);
  // N_LB = max(ceil(296/100), ceil(3/2), ceil(2/1), ceil(T_LB / 6 h)) = 3.
  EXPECT_EQ(b.nights_lb, 3);
  EXPECT_EQ(b.pinned_on_draining, 1);
  EXPECT_EQ(b.infeasible_servers, 0);
}

// With a 250 B move limit the 400, 300 and 300 no longer count as movable
// (except on the draining server): s0 cannot shed 216.67 with its one 100
// (infeasible, k = 1), and s1 needs the class's 200 and a 100 (k' = 2).
TEST(LowerBounds, MaxMoveSizeMakesLargeMailboxesImmovable) {
  Constraints c;
  c.max_move_bytes = 250;
  LowerBounds b = bounds(fleet(), c);
  EXPECT_EQ(b.classes[0].k_src, 3);
  EXPECT_EQ(b.classes[0].k_recv, 2);
  EXPECT_EQ(b.lb_moves, 3);
  EXPECT_EQ(b.infeasible_servers, 1);
  EXPECT_EQ(b.nights_lb, 1);
}

}  // namespace
}  // namespace mailshard::planner
