// The rebalancing engine every strategy runs, with a Policy saying which
// imbalances it acts on. Per class (users never leave their class):
//
//  1. Triggers (hysteresis: only servers OUTSIDE a band are acted on):
//     draining servers; servers above U_s; servers below L_s; servers whose
//     load is above mean * (1 + load_band).
//  2. Amounts: a triggered donor must shed to U_s - margin, a triggered
//     receiver must reach L_s + margin ("well inside", capacity.h). The side
//     with more bytes sets the total (that is LB_bytes); the other side is
//     completed by water-filling: the fullest servers give (or the emptiest
//     take) until both sides match, never past the band centre first, never
//     past the band's far edge.
//  3. Selection: each donor picks its users in two dimensions (selection.h):
//     largest first, shifted toward active users as far as its load needs.
//  4. Assignment: users, largest first, go to the receiver with the largest
//     remaining need that stays under its ceiling and load target.
//  5. Repairs: a receiver still below L_s pulls one more user (the smallest
//     that closes the gap); a donor still above U_s pushes more out.
//  6. Load swaps: a server still above its load band trades an active user
//     for a cold one of about the same size with a cool server.
//
// A class that is one storage group (director backends over one mail root,
// SnapshotServer::storage_group) shares one disk: bytes are not balanced
// inside it. Its draining servers are emptied and its servers above the load
// band shed activity by moves that copy nothing (bytes 0; the executor runs
// them as `doveadm director move`), to the coolest server of the group.
//
// Roles make the plan safe in any order: a server either only gives or only
// receives (swap partners excepted), and every placement keeps
// start + all incoming <= the hard ceiling (core/plan.h).
//
// Thread-safety: pure function.
#pragma once

#include "core/plan.h"
#include "core/snapshot.h"

namespace mailshard::planner {

struct Policy {
  bool drain = true;       // empty draining servers
  bool shed_over = true;   // servers above their band must shed
  bool fill_under = true;  // servers below their band must be filled
  bool load = true;        // servers above the load band must shed activity
};

Plan run_engine(const Snapshot& snapshot, const Constraints& constraints, const Policy& policy);

}  // namespace mailshard::planner
