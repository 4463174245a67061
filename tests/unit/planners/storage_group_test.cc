// The planner on a director fleet: a class whose servers are one storage
// group (backends over one mail root) is balanced by load alone, with moves
// that copy nothing, and its draining servers are emptied the same way.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "planners/planner.h"
#include "tests/unit/planners/fleet_builder.h"

namespace mailshard::planner {
namespace {

using testing::FleetBuilder;
using testing::kGiB;

// Three backends over one 10 TiB NFS volume (each reports the whole volume:
// the same fill), and one Maildir store of its own in class "std".
struct DirectorFleet {
  FleetBuilder f;
  int32_t b0, b1, b2, store;
  DirectorFleet() {
    b0 = f.server("nfs", 10240 * kGiB, 4000 * kGiB, 8, false, "backend0");
    b1 = f.server("nfs", 10240 * kGiB, 4000 * kGiB, 8, false, "backend1");
    b2 = f.server("nfs", 10240 * kGiB, 4000 * kGiB, 8, false, "backend2");
    f.group({b0, b1, b2}, "nfs1");
    store = f.server("std", 1024 * kGiB, 0, 8, false, "store");
    f.user(store, 100 * kGiB, 1.0);
  }
};

double load_of(const Snapshot& snap, int32_t s) {
  double l = 0;
  for (size_t u = 0; u < snap.user_count(); ++u)
    if (snap.user_server[u] == s) l += snap.user_activity[u];
  return l;
}

TEST(StorageGroupPlan, AHotBackendShedsLoadByMovesThatCopyNothing) {
  DirectorFleet d;
  // backend0 carries 60 active users, the others 10 each: load 60 / 10 / 10.
  for (int i = 0; i < 60; ++i) d.f.user(d.b0, (i + 1) * kGiB, 1.0);
  for (int i = 0; i < 10; ++i) d.f.user(d.b1, kGiB, 1.0);
  for (int i = 0; i < 10; ++i) d.f.user(d.b2, kGiB, 1.0);
  Constraints c;
  auto p = plan(d.f.snap, c);
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_FALSE(p->moves.empty());
  EXPECT_FALSE(p->partial) << (p->partial_reasons.empty() ? "" : p->partial_reasons[0]);
  for (const auto& m : p->moves) {
    EXPECT_EQ(m.from, d.b0);
    EXPECT_TRUE(m.to == d.b1 || m.to == d.b2) << m.to;
    EXPECT_EQ(m.bytes, 0) << "a move inside a storage group copies nothing";
    EXPECT_EQ(m.reason, MoveReason::kLoad);
  }
  EXPECT_TRUE(testing::hard_violations(d.f.snap, c, *p).empty());
  // Mean load 80/3 per backend; every backend ends at most at the load band's edge.
  const Snapshot after = apply_plan(d.f.snap, *p);
  const double limit = (1 + c.load_band) * 80.0 / 3.0;
  for (int32_t s : {d.b0, d.b1, d.b2}) EXPECT_LE(load_of(after, s), limit) << s;
  // Used bytes do not change: the volume is shared.
  for (int32_t s : {d.b0, d.b1, d.b2}) EXPECT_EQ(p->servers[static_cast<size_t>(s)].used_after,
                                                 p->servers[static_cast<size_t>(s)].used_before);
  EXPECT_EQ(p->estimate.bytes, 0);
  // Planned again, the balanced group needs nothing more.
  auto again = plan(after, c);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->moves.empty());
}

TEST(StorageGroupPlan, FewActiveUsersMoveRatherThanManyIdleOnes) {
  DirectorFleet d;
  // backend0: 4 very active users and 200 idle ones; the others 2 active each.
  for (int i = 0; i < 4; ++i) d.f.user(d.b0, kGiB, 10.0);
  for (int i = 0; i < 200; ++i) d.f.user(d.b0, kGiB, 0.0);
  for (int i = 0; i < 2; ++i) d.f.user(d.b1, kGiB, 1.0);
  for (int i = 0; i < 2; ++i) d.f.user(d.b2, kGiB, 1.0);
  auto p = plan(d.f.snap, Constraints{});
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_FALSE(p->moves.empty());
  EXPECT_LE(p->moves.size(), 2u);
  for (const auto& m : p->moves) EXPECT_EQ(m.activity, 10.0);
}

TEST(StorageGroupPlan, ADrainingBackendIsEmptiedWithoutACopyAndPinnedUsersStay) {
  DirectorFleet d;
  d.f.snap.servers[static_cast<size_t>(d.b2)].draining = true;
  for (int i = 0; i < 10; ++i) d.f.user(d.b0, kGiB, 1.0);
  for (int i = 0; i < 10; ++i) d.f.user(d.b1, kGiB, 1.0);
  std::set<int64_t> on_b2;
  for (int i = 0; i < 12; ++i) on_b2.insert(d.f.user(d.b2, 500 * kGiB, 1.0));  // far too big to copy: no matter
  const int64_t pinned = d.f.user(d.b2, kGiB, 1.0, /*pinned=*/true);
  Constraints c;
  auto p = plan(d.f.snap, c);
  ASSERT_TRUE(p.ok()) << p.error().message();
  std::set<int64_t> moved;
  std::map<int32_t, int> into;
  for (const auto& m : p->moves) {
    EXPECT_EQ(m.from, d.b2);
    EXPECT_EQ(m.bytes, 0);
    EXPECT_EQ(m.reason, MoveReason::kDrain);
    moved.insert(m.user);
    ++into[m.to];
  }
  EXPECT_EQ(moved, on_b2);
  EXPECT_EQ(moved.count(pinned), 0u);
  EXPECT_EQ(into[d.b0], 6);  // the coolest takes each in turn
  EXPECT_EQ(into[d.b1], 6);
  EXPECT_TRUE(testing::hard_violations(d.f.snap, c, *p).empty());
}

TEST(StorageGroupPlan, NothingLeavesOrEntersAGroupAndOtherClassesPlanAsBefore) {
  DirectorFleet d;
  for (int i = 0; i < 30; ++i) d.f.user(d.b0, kGiB, 1.0);
  // A second std store, empty: the std class still balances bytes with copies.
  const int32_t empty = d.f.server("std", 1024 * kGiB, 0, 8, false, "store-new");
  for (int i = 0; i < 8; ++i) d.f.user(d.store, 50 * kGiB, 1.0);
  Constraints c;
  auto p = plan(d.f.snap, c);
  ASSERT_TRUE(p.ok()) << p.error().message();
  int copies = 0, director = 0;
  for (const auto& m : p->moves) {
    if (m.to == empty) {
      ++copies;
      EXPECT_EQ(m.from, d.store);
      EXPECT_GT(m.bytes, 0);
    } else {
      ++director;
      EXPECT_EQ(m.bytes, 0);
    }
  }
  EXPECT_GT(copies, 0);
  EXPECT_GT(director, 0);
  EXPECT_TRUE(testing::hard_violations(d.f.snap, c, *p).empty());
}

TEST(StorageGroupPlan, AClassMixingAGroupWithOtherStorageIsRefusedNamingBoth) {
  DirectorFleet d;
  d.f.server("nfs", 1024 * kGiB, 0, 8, false, "lonely");
  auto p = plan(d.f.snap, Constraints{});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(p.error().message().find("class 'nfs' mixes"), std::string::npos) << p.error().message();
  EXPECT_NE(p.error().message().find("lonely (storage of its own)"), std::string::npos) << p.error().message();
  EXPECT_NE(p.error().message().find("storage group 'nfs1'"), std::string::npos) << p.error().message();
}

TEST(StorageGroupPlan, RandomFleetsWithAGroupKeepEveryHardConstraint) {
  int grouped_moves = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    Snapshot snap = testing::random_fleet(seed);
    for (auto& s : snap.servers)
      if (s.server_class == "c0") s.storage_group = "g0";
    for (const char* strategy : {"balance", "drain"}) {
      Constraints c;
      c.strategy = strategy;
      if (seed % 5 == 0) c.max_moves = 7;
      if (seed % 7 == 0) c.drain.push_back(0);
      auto p = plan(snap, c);
      ASSERT_TRUE(p.ok()) << seed << ": " << p.error().message();
      auto v = testing::hard_violations(snap, c, *p);
      EXPECT_TRUE(v.empty()) << "seed " << seed << " " << strategy << ": " << v.front();
      for (const auto& m : p->moves)
        if (snap.servers[static_cast<size_t>(m.from)].storage_group == "g0") ++grouped_moves;
    }
  }
  EXPECT_GT(grouped_moves, 0) << "no random fleet exercised the group";
}

TEST(StorageGroupPlan, SnapshotKeepsStorageGroupsAndRefusesAWrongCount) {
  DirectorFleet d;
  d.f.user(d.b0, kGiB, 1.0);
  const std::string dir = ::testing::TempDir() + "/storage_group_snapshot";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(write_snapshot(d.f.snap, dir).ok());
  auto r = read_snapshot(dir);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->servers.size(), 4u);
  EXPECT_EQ(r->servers[static_cast<size_t>(d.b1)].storage_group, "nfs1");
  EXPECT_EQ(r->servers[static_cast<size_t>(d.store)].storage_group, "");
  // meta.json with one entry too few.
  std::ofstream(dir + "/meta.json") << R"({"storage_groups": ["nfs1", "nfs1", "nfs1"]})";
  auto bad = read_snapshot(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("storage_groups has 3 entries but servers.csv has 4 servers"), std::string::npos)
      << bad.error().message();
}

}  // namespace
}  // namespace mailshard::planner
