// drain: only empty the draining servers. Their users go to the emptiest
// servers of their class (water-filling, never past a receiver's band);
// servers outside the band are left alone unless they are above the hard
// cap. For "take store7 out tonight" without touching anything else.
#include "planners/engine.h"
#include "planners/planner.h"

namespace mailshard::planner {

Plan plan_drain(const Snapshot& snapshot, const Constraints& constraints) {
  Policy p;
  p.drain = true;
  p.shed_over = false;
  p.fill_under = false;
  p.load = false;
  return run_engine(snapshot, constraints, p);
}

}  // namespace mailshard::planner
