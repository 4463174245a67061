// When each move runs: night packing under the per-night budgets, and the
// execution order inside a night.
//
// Nights: moves are packed first-fit, most urgent first (rank), then the
// moves touching the busiest servers (those servers set the number of nights
// under a per-server limit). A night takes a move if the night's bytes, moves,
// per-server moves and, for multi-night plans, per-server work (the window)
// allow it. What does not fit in Constraints::nights is returned as dropped.
//
// Order: a simulated list schedule of the execution model (slots per server,
// rate, fixed overhead): whenever slots free up, the servers with the most
// remaining work pick first, each its longest pending move whose other end
// has a free slot. The start order of that simulation is the plan order: a
// round-robin across servers weighted toward the critical ones, so an
// executor that starts moves in plan order keeps every server busy. The end
// of that simulation is the night's estimated duration (metrics.py's list
// schedule of the same order agrees within a few minutes on the benchmark).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "core/plan.h"

namespace mailshard::planner {

struct Schedule {
  std::vector<PlannedMove> moves;        // nights set, in execution order
  std::vector<PlannedMove> dropped;      // did not fit the budgets or the nights
  std::vector<double> night_makespan_s;  // per night (index night - 1): the simulated end of its last move
};

// `rank[i]` orders moves[i] by urgency (lower first).
Schedule schedule_moves(std::vector<PlannedMove> moves, const std::vector<int>& rank, const Constraints& c,
                        size_t n_servers);

// Seconds one move takes in the model.
double move_seconds(int64_t bytes, const ExecutionModel& model);

// A multi-night plan fills at most this share of each server's window
// (slots x night): list scheduling needs some slack over that bound.
constexpr double kWindowFill = 0.9;

}  // namespace mailshard::planner
