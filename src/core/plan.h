// Plan: what a planner decided, in the order the executor must run it.
//
// A Plan is produced by a pure planner (planners/planner.h) from a Snapshot and
// Constraints and is consumed, move by move in `moves` order, by the executor.
// Its canonical JSON (plan_to_json) is the contract between the two: the dry-run
// report, the journal copy and the nightly run all use that one text, and
// plan_hash() of it identifies the plan ("execute exactly the plan I reviewed").
//
// Safety contract (what every planner guarantees; tests/unit/planners checks it):
//  - a move stays inside its class, never moves a pinned user, never targets a
//    draining server and never moves a mailbox above max_move_bytes;
//  - for every server, start bytes + ALL bytes the plan moves into it stay at or
//    below min(hard_cap * C - min_free, C - headroom). The source copy lives
//    until a move ends, so this is what keeps a server under its hard cap at
//    every step, in plan order AND under any concurrency the executor chooses;
//  - per night: bytes <= max_bytes, moves <= max_moves, moves touching one
//    server <= max_moves_per_server.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace mailshard {

// Why a user moves: what the source (or, failing that, the destination) needed.
enum class MoveReason {
  kDrain,      // the source is draining: every movable mailbox leaves
  kOverBand,   // the source is above its band (or its hard cap)
  kUnderBand,  // the destination is below its band
  kLoad,       // the source is above the load band
  kSwap,       // one half of a load swap between two in-band servers
  kSpread,     // neither end is out of band: absorbs another server's excess or deficit
};
std::string_view move_reason_name(MoveReason r);
Result<MoveReason> parse_move_reason(std::string_view name);

struct PlannedMove {
  int64_t user = 0;        // snapshot user id
  std::string user_name;   // directory name; "" for generated fleets (the id is the name)
  int32_t from = 0;        // snapshot server ids
  int32_t to = 0;
  int64_t bytes = 0;
  double activity = 0;     // the user's load figure, moved along with the mailbox
  MoveReason reason = MoveReason::kSpread;
  int32_t night = 1;       // 1-based; nights run in order, moves of a night in plan order
};

// The execution model used for time estimates and night packing (planner-notes
// §4.3): every server runs at most `slots` moves at once, each streams at
// `rate` plus a fixed `overhead` (lock, final delta sync, flip).
struct ExecutionModel {
  int slots_per_server = 4;                  // Exchange MRS / Cruise Control norms: 2-5 per server
  double rate_bytes_per_s = 50.0 * (1 << 20);  // one rsync-like stream on a busy disk
  double overhead_s = 30;                    // freeze, final pass, LDAP flip, thaw
  double night_hours = 6;                    // the maintenance window
};

struct Constraints {
  std::string strategy = "balance";
  double band = 0.05;         // servers end within class mean +- band (fraction of capacity)
  double hard_cap = 0.85;     // no server ever above this utilisation, mid-plan included
  int64_t min_free_bytes = 0; // bytes always kept free (lowers the hard cap line)
  int64_t headroom_bytes = 0; // free bytes a destination keeps while receiving
  double load_band = 0.20;    // load (activity / load capacity) stays within mean * (1 + load_band)
  std::vector<int32_t> drain; // servers to drain on top of the snapshot's draining flags
  // Budgets, per night; 0 = unlimited.
  int64_t max_bytes = 0;
  int64_t max_moves = 0;
  int64_t max_moves_per_server = 0;  // moves touching one server (as source or destination)
  int64_t max_move_bytes = 0;        // larger mailboxes never move
  int nights = 1;                    // the plan may span this many nights
  ExecutionModel execution;
  int64_t cost_alpha_bytes = 256ll << 20;  // bytes-equivalent of one move in LB_cost (planner-notes §4.3)
};

enum class BandState { kBelow, kInside, kAbove };
std::string_view band_state_name(BandState s);

struct ServerOutcome {
  int32_t id = 0;
  std::string name;            // "" = the id is the name
  std::string server_class;
  bool draining = false;
  int64_t capacity_bytes = 0;
  int64_t other_bytes = 0;
  int64_t lower_bytes = 0;     // L_s: the band's lower edge (0 when draining)
  int64_t upper_bytes = 0;     // U_s: the band's upper edge (other_bytes when draining)
  int64_t cap_bytes = 0;       // the hard ceiling (hard cap, min_free, headroom)
  int64_t used_before = 0, used_after = 0;
  double load_capacity = 0;
  double load_before = 0, load_after = 0;  // activity sums
  int32_t moves_in = 0, moves_out = 0;
  int64_t bytes_in = 0, bytes_out = 0;
  BandState before = BandState::kInside, after = BandState::kInside;
};

// Per class figures, before and after the plan.
struct ClassOutcome {
  std::string name;
  int32_t servers = 0;              // not draining
  double mean_util = 0;             // bytes / capacity of non-draining servers
  double load_mean = 0;             // activity / load capacity of non-draining servers (0 = no load data)
  double max_minus_mean_before = 0, max_minus_mean_after = 0;  // utilisation, fraction
  double std_before = 0, std_after = 0;
  double load_max_over_mean_before = 0, load_max_over_mean_after = 0;
  int32_t out_of_band_before = 0, out_of_band_after = 0;
  int32_t above_load_band_after = 0;
};

// Lower bounds, exactly as ../shared/bench/metrics.py defines them (planner-notes §4.4).
struct ClassBounds {
  std::string name;
  int64_t excess_bytes = 0, deficit_bytes = 0;
  int64_t lb_bytes = 0;
  int64_t k_src = 0, k_recv = 0, lb_moves = 0;
  double lb_cost = 0;
};

struct LowerBounds {
  std::vector<ClassBounds> classes;
  int64_t lb_bytes = 0;
  int64_t lb_moves = 0;
  double lb_cost = 0;
  double t_lb_s = 0;                // fleet time bound with the execution model
  int64_t max_server_moves_lb = 0;  // max over servers of max(k_s, k'_s)
  int32_t nights_lb = 1;            // N_LB with the per-night budgets
  int32_t infeasible_servers = 0;   // servers whose excess/deficit cannot be covered at all
  int32_t pinned_on_draining = 0;
};

struct NightEstimate {
  int32_t night = 1;
  int64_t bytes = 0;
  int64_t moves = 0;
  double makespan_s = 0;  // greedy list schedule of this night in plan order
};

struct PlanEstimate {
  int64_t bytes = 0;
  int64_t moves = 0;
  double makespan_s = 0;     // sum over nights
  double plan_lb_s = 0;      // max(max_s work touching s / slots, longest move)
  int32_t nights = 0;        // nights used (1 when the plan fits one window)
  std::vector<NightEstimate> per_night;
};

struct Plan {
  std::string strategy;
  Constraints constraints;
  // Which snapshot this plan was computed from.
  int64_t snapshot_users = 0;
  int32_t snapshot_servers = 0;
  int64_t snapshot_taken_at_ms = 0;
  std::string snapshot_source;

  std::vector<PlannedMove> moves;     // execution order
  std::vector<ServerOutcome> servers; // index = server id
  std::vector<ClassOutcome> classes;
  LowerBounds bounds;
  PlanEstimate estimate;
  std::vector<std::string> warnings;  // one line each, for a person
  bool partial = false;               // the plan does not reach every goal
  std::vector<std::string> partial_reasons;
};

// Canonical JSON text of a plan: keys sorted, no whitespace, numbers as
// written by nlohmann::json. Deterministic: the same Plan gives the same bytes.
std::string plan_to_json(const Plan& plan);
// The same document pretty-printed with the hash added as "plan_hash" (for
// --output files meant to be read by people and tools).
std::string plan_to_pretty_json(const Plan& plan, const std::string& hash);
// Hex XXH3-128 of plan_to_json(plan).
std::string plan_hash(const Plan& plan);
// plan_hash(plan) and, with PrettyJson::kYes, plan_to_pretty_json(plan,
// hash) -- the same texts, in one pass over the moves (what `mailshard plan
// --output` needs; cheaper than the two calls).
enum class PrettyJson { kNo, kYes };
struct PlanTexts {
  std::string hash;
  std::string pretty_json;  // "" with PrettyJson::kNo
};
PlanTexts plan_texts(const Plan& plan, PrettyJson pretty);
// Parses plan_to_json / plan_to_pretty_json output ("plan_hash" is ignored).
// kInvalidInput naming the first bad field.
Result<Plan> plan_from_json(std::string_view text);
// A plan file to execute (`rebalance --plan FILE`): plan_from_json, and the
// file must carry "plan_hash" equal to plan_hash() of its content, so what
// runs is exactly what was reviewed. Errors (kInvalidInput) are one line.
Result<Plan> plan_from_file_json(std::string_view text);

}  // namespace mailshard
