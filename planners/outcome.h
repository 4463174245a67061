// What a plan does to the fleet: per-server before/after, per-class balance
// figures, the execution estimate, and the warnings and partial reasons that
// can be read off the final state (servers left out of band, unfinished
// drains, load left above its band).
//
// Thread-safety: pure function.
#pragma once

#include <vector>

#include "core/plan.h"
#include "core/snapshot.h"
#include "planners/capacity.h"
#include "planners/user_index.h"

namespace mailshard::planner {

// Fills plan.servers, plan.classes and plan.estimate from plan.moves, and
// appends to plan.warnings / plan.partial_reasons (setting plan.partial).
// `night_makespan_s` is the scheduler's estimate per night (ordering.h).
void fill_outcome(Plan& plan, const Snapshot& snapshot, const FleetLimits& limits, const UserIndex& index,
                  const Constraints& c, const std::vector<double>& night_makespan_s);

// "12.3 %" for a fraction.
std::string percent(double fraction);

}  // namespace mailshard::planner
