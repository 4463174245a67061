// balance: every server into the band around its class mean, load as the
// second goal, draining servers emptied on the way. The default strategy.
#include "planners/engine.h"
#include "planners/planner.h"

namespace mailshard::planner {

Plan plan_balance(const Snapshot& snapshot, const Constraints& constraints) {
  Policy p;
  p.drain = true;
  p.shed_over = true;
  p.fill_under = true;
  p.load = true;
  return run_engine(snapshot, constraints, p);
}

}  // namespace mailshard::planner
