// fill: steer mail toward new, empty servers. Only servers below the band
// are acted on; the fullest servers of the class give (water-filling), so
// over-full servers shed first without being a trigger themselves. For
// "we just racked four new servers".
#include "planners/engine.h"
#include "planners/planner.h"

namespace mailshard::planner {

Plan plan_fill(const Snapshot& snapshot, const Constraints& constraints) {
  Policy p;
  p.drain = false;
  p.shed_over = false;
  p.fill_under = true;
  p.load = false;
  return run_engine(snapshot, constraints, p);
}

}  // namespace mailshard::planner
