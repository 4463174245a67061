// Internal to planners/: the state of one engine run, shared by the files
// that implement its phases (engine.cc: triggers and the finished plan;
// allocation.cc: amounts; placement.cc: selection, assignment, repairs;
// load_repair.cc: destination exchange and swaps). See engine.h for the
// algorithm. Not a public interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/plan.h"
#include "core/snapshot.h"
#include "planners/capacity.h"
#include "planners/engine.h"
#include "planners/selection.h"
#include "planners/user_index.h"

namespace mailshard::planner::detail {

// Repair margins cost bytes on the side of the class that sets LB_bytes (the
// other side is free: its bytes move anyway). They get at most this share of
// LB_bytes, half of the 2 % the issue allows over the bound; the other half
// absorbs mailbox granularity.
constexpr double kMarginAllowance = 0.01;
// Receivers tried from the top of the need heap before a wider search.
constexpr int kHeapTries = 8;
// Load swaps: a partner's user may differ in size by this fraction from the
// user it replaces (bytes stay nearly put, both servers stay in band)...
constexpr double kSwapSizeTolerance = 0.10;
// ...and the search is bounded: the hot server's most active users, the
// coolest partners, the users of a partner in the size window.
constexpr size_t kSwapCandidates = 256;
constexpr size_t kSwapPartners = 8;
constexpr size_t kSwapWindow = 64;

enum class Role : uint8_t { kNone, kDonor, kReceiver };
enum Trigger : uint8_t { kDrain = 1, kOver = 2, kUnder = 4, kLoadHot = 8, kHardCap = 16 };

struct Item {
  int32_t user;
  int32_t from;
  int32_t to;  // -1 while unplaced
  bool swap;
  bool zero_copy = false;  // inside a storage group: the director moves the user, no byte is copied
};

class Engine {
 public:
  Engine(const Snapshot& snap, const Constraints& c, const Policy& p)
      : snap_(snap), c_(c), policy_(p), index_(snap, c.max_move_bytes) {
    const size_t S = snap.servers.size();
    draining_.assign(S, 0);
    for (size_t s = 0; s < S; ++s) draining_[s] = snap.servers[s].draining ? 1 : 0;
    for (int32_t s : c.drain) draining_[static_cast<size_t>(s)] = 1;
    used_ = used_bytes(snap);
    load_ = server_load(snap);
    lim_ = compute_limits(snap, draining_, used_, load_, c);
    incoming_.assign(S, 0);
    role_.assign(S, Role::kNone);
    trig_.assign(S, 0);
    out_min_.assign(S, 0);
    out_plan_.assign(S, 0);
    in_min_.assign(S, 0);
    in_plan_.assign(S, 0);
    act_need_.assign(S, 0);
    src_margin_.assign(S, 0);
    rcv_margin_.assign(S, 0);
    taken_.assign(snap.user_count(), 0);
    shed_cache_.resize(S);
  }

  Plan run() {
    for (const auto& cl : lim_.classes) plan_class(cl);
    return finish();
  }

 private:
  const ServerLimits& L(int32_t s) const { return lim_.servers[static_cast<size_t>(s)]; }
  size_t ix(int32_t s) const { return static_cast<size_t>(s); }
  int64_t size_of(int32_t u) const { return snap_.user_size[static_cast<size_t>(u)]; }
  double act_of(int32_t u) const { return snap_.user_activity[static_cast<size_t>(u)]; }
  // The most a receiver may hold: inside the band by its margin, under the hard ceiling.
  int64_t ceiling(int32_t s) const { return std::min(L(s).upper - L(s).margin, L(s).cap); }
  // The least a water-filled donor keeps: inside the band by its margin.
  int64_t floor_of(int32_t s) const { return std::min(L(s).lower + L(s).margin, L(s).mid); }

  // Can `s` take `w` more bytes while staying under `limit` and keeping
  // start + all incoming under the hard ceiling?
  bool fits(int32_t s, int64_t w, int64_t limit) const {
    return used_[ix(s)] + w <= limit && L(s).used + incoming_[ix(s)] + w <= L(s).cap;
  }
  bool load_ok(int32_t s, double a) const { return load_[ix(s)] + a <= L(s).load_target; }

  void take(int32_t u, int32_t from, bool swap = false) {
    taken_[static_cast<size_t>(u)] = 1;
    used_[ix(from)] -= size_of(u);
    load_[ix(from)] -= act_of(u);
    items_.push_back({u, from, -1, swap});
  }
  void untake(Item& it) {
    taken_[static_cast<size_t>(it.user)] = 0;
    used_[ix(it.from)] += size_of(it.user);
    load_[ix(it.from)] += act_of(it.user);
    it.from = -1;  // marks a dead item
  }
  void place(Item& it, int32_t to) {
    it.to = to;
    used_[ix(to)] += size_of(it.user);
    load_[ix(to)] += act_of(it.user);
    incoming_[ix(to)] += size_of(it.user);
    if (role_[ix(to)] == Role::kNone) role_[ix(to)] = Role::kReceiver;
  }

  void plan_class(const ClassLimits& cl);
  // A class that is one storage group behind a director (director_phase.cc):
  // its servers share the disk, so only load is balanced and draining servers
  // emptied, by moves that copy nothing.
  bool is_storage_group(const ClassLimits& cl) const {
    return !cl.servers.empty() && !snap_.servers[ix(cl.servers.front())].storage_group.empty();
  }
  void plan_storage_group(const ClassLimits& cl);
  void move_in_group(int32_t u, int32_t from, int32_t to);
  // Adds a partial reason when the class cannot reach its band whatever moves.
  void explain_infeasible(const ClassLimits& cl);
  void find_triggers(const ClassLimits& cl);
  void allocate(const ClassLimits& cl);
  // Completes the smaller side by water-filling; true when receivers need
  // more than donors must give (the deficit sets LB_bytes).
  bool water_fill(const ClassLimits& cl);
  void select_donors(const ClassLimits& cl);
  void assign(const ClassLimits& cl, size_t first_item);
  void top_up(const ClassLimits& cl);
  // Moves the destination of one planned user of this class from another
  // receiver (which stays at or above its own target) to r. The smallest such
  // user that closes `gap`, else the largest. False if none fits.
  bool reroute_into(int32_t r, int64_t gap);
  void push_out(const ClassLimits& cl);
  // A receiver pushed above its load band by active users planned into it
  // trades destinations with a receiver that got a colder user of about the
  // same size: no byte more moves.
  void exchange_destinations(const ClassLimits& cl);
  void swap_load(const ClassLimits& cl);
  bool try_swap(const ClassLimits& cl, int32_t hot, int32_t u, const std::vector<int32_t>& partners);
  void undo_last_item();
  // The emptiest non-donor that fits w (inside its margin, or just inside the
  // band), and, when activity >= 0 is given, stays under its load target.
  int32_t best_overflow(const ClassLimits& cl, int64_t w, bool margin, double activity = -1) const;
  Plan finish();

  const Snapshot& snap_;
  const Constraints& c_;
  Policy policy_;
  UserIndex index_;
  std::vector<uint8_t> draining_;
  FleetLimits lim_;
  std::vector<int64_t> used_;      // bytes per server as planned so far
  std::vector<double> load_;
  std::vector<int64_t> incoming_;  // bytes planned into each server
  std::vector<Role> role_;
  std::vector<uint8_t> trig_;
  std::vector<int64_t> out_min_, out_plan_, in_min_, in_plan_;
  std::vector<double> act_need_;
  std::vector<int64_t> src_margin_, rcv_margin_;  // margins after the allowance
  std::vector<uint8_t> taken_;     // per user
  std::vector<int64_t> spare_;     // reroute_into's scratch, per server
  std::vector<std::vector<size_t>> into_;  // top_up: the class's items by destination
  // The last selection allocate() made for a donor, reused by
  // select_donors() when it asks the same question (same free users).
  std::vector<std::optional<std::pair<ShedRequest, Shed>>> shed_cache_;
  std::vector<Item> items_;
  size_t class_first_item_ = 0;  // items_ of the class being planned start here
  std::vector<std::string> reasons_;  // partial reasons found while planning
};

}  // namespace mailshard::planner::detail
