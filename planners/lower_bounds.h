// Lower bounds on any plan's bytes, moves, cost, time and nights, computed
// exactly as ../shared/bench/metrics.py does (planner-notes §4.4), so the
// ratios a plan reports are the ratios the benchmark judges:
//   e_s = max(0, used_s - U_s), or every movable byte of a draining server
//   d_s = max(0, L_s - used_s)
//   LB_bytes = sum_c max(sum e_s, sum d_s)
//   k_s  = fewest of s's own movable mailboxes (largest first) reaching e_s
//   k'_s = fewest of the class's largest movable mailboxes reaching d_s
//   LB_moves = sum_c max(sum k_s, sum k'_s);  LB_cost = sum_c max(sum e+a*k, sum d+a*k')
//   T_LB = max_s max(e/r + k*o, d/r + k'*o) / slots
//   N_LB = max(1, ceil(LB_bytes/max_bytes), ceil(LB_moves/max_moves),
//              ceil(max_s max(k,k')/max_moves_per_server), ceil(T_LB/night))
// "Movable" means not pinned and, with max_move_bytes, not larger than it
// except on a draining server (as metrics.py counts them).
//
// Thread-safety: pure function.
#pragma once

#include <vector>

#include "core/plan.h"
#include "core/snapshot.h"
#include "planners/capacity.h"
#include "planners/user_index.h"

namespace mailshard::planner {

// `index` must have been built with c.max_move_bytes: its groups are the
// movable users of non-draining servers in metrics.py's sense.
LowerBounds lower_bounds(const Snapshot& snapshot, const FleetLimits& limits, const UserIndex& index,
                         const Constraints& c);

}  // namespace mailshard::planner
