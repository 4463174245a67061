// Capacity math shared by every strategy: class means, band limits, the hard
// ceiling, repair margins and load targets. The band and mean follow
// planner-notes §4.4 (and ../shared/bench/metrics.py) to the last operation, so
// "in band" here is "in band" for the judge:
//   used_s = other_s + sum(mailboxes on s)
//   mean_c = sum(used_s, s in c incl. draining) / sum(C_s, s in c not draining)
//   U_s = min(mean_c + band, hard_cap) * C_s - min_free   (draining: other_s)
//   L_s = max(0, mean_c - band) * C_s                      (draining: 0)
// Integer limits round inward (floor U, ceil L), so a server this code calls in
// band is in band for any reader using the real-valued limits.
//
// Thread-safety: plain values; pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/snapshot.h"

namespace mailshard::planner {

// How far inside the band a repaired server ends, as a fraction of the band:
// Cruise Control repairs to 90 % of its threshold (BALANCE_MARGIN = 0.9) so that
// the next run does not flip-flop; we keep the same 10 %.
constexpr double kRepairFraction = 0.10;
// Load is repaired to mean * (1 + 0.75 * load_band): with the 20 % trigger a
// repaired server ends at 1.15 x mean, leaving room for the load to drift
// before the trigger fires again.
constexpr double kLoadRepairFraction = 0.75;

struct ServerLimits {
  int32_t cls = 0;            // index into FleetLimits::classes
  bool draining = false;
  int64_t capacity = 0;
  int64_t other = 0;
  int64_t used = 0;           // bytes at the start of the plan
  int64_t upper = 0;          // U_s, floored
  int64_t lower = 0;          // L_s, ceiled
  int64_t mid = 0;            // mean_c * C_s: the centre of the band
  int64_t cap = 0;            // hard ceiling: min(hard_cap * C - min_free, C - headroom), floored
  int64_t margin = 0;         // kRepairFraction * band * C_s
  double load = 0;            // activity sum at the start
  double load_capacity = 0;   // 0 = no load goal for this server
  double load_limit = 0;      // load above this is out of the load band (the trigger)
  double load_target = 0;     // a load repair aims at or below this
};

struct ClassLimits {
  std::string name;
  std::vector<int32_t> servers;  // every server of the class, ascending id, draining included
  int64_t used_total = 0;        // all servers
  int64_t capacity_active = 0;   // non-draining servers
  double mean = 0;               // mean_c; +inf when every server drains
  double load_total = 0;
  double load_capacity_active = 0;
  double load_mean = 0;          // activity per unit of load capacity; 0 = no load data
};

struct FleetLimits {
  std::vector<ClassLimits> classes;  // in order of first appearance in servers.csv
  std::vector<ServerLimits> servers; // index = server id
};

// used_s for every server: other bytes plus every mailbox (pinned included).
std::vector<int64_t> used_bytes(const Snapshot& snapshot);
// Activity sum per server.
std::vector<double> server_load(const Snapshot& snapshot);

// Limits for the fleet in `used`/`load` state. `draining` is per server (the
// snapshot's flags plus Constraints::drain).
FleetLimits compute_limits(const Snapshot& snapshot, const std::vector<uint8_t>& draining,
                           const std::vector<int64_t>& used, const std::vector<double>& load, const Constraints& c);

BandState band_state(const ServerLimits& s, int64_t used);

}  // namespace mailshard::planner
