// Which users leave a donor: the two-dimensional choice (size AND activity).
//
// Bytes alone are cheapest in moves when the largest mailboxes go first, but
// large mailboxes are cold per byte (planner-notes §5.3): a hot server that
// sheds its largest users keeps its load. So users are ranked by
//     score = size + lambda * kappa * activity
// (kappa = the donor's bytes per unit of activity, so both terms are bytes) and
// taken greedily, best score first, while they fit the byte target and the
// activity is short; the remaining bytes then go largest first. lambda = 0 is
// "largest first" (fewest moves); the smallest lambda that sheds the activity
// the donor must lose is found by bisection on log(lambda). This is the Lagrangian
// relaxation of "fewest users such that bytes ~= B and activity >= R".
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>


namespace mailshard::planner {

struct ShedRequest {
  int64_t target = 0;     // bytes to shed, aimed at
  int64_t min = 0;        // at least this many (the band needs it); <= target
  int64_t max = 0;        // never more (the donor must stay above its floor); >= target
  double activity = 0;    // activity to shed at least; 0 = bytes only
  bool operator==(const ShedRequest&) const = default;
};

struct Shed {
  std::vector<int32_t> users;
  int64_t bytes = 0;
  double activity = 0;
  double lambda = 0;      // the weight that was needed (0 = largest first)
};

// Chooses users among `users` (largest first, with their `sizes` and
// `activities`) that are not yet `taken`. Meets min whenever the donor's free users allow it; meets the
// activity when some lambda <= kMaxLambda does (check Shed::activity).
Shed choose_shed(std::span<const int32_t> users, std::span<const int64_t> sizes, std::span<const double> activities,
                 const std::vector<uint8_t>& taken, const ShedRequest& request);

// Whether some lambda <= kMaxLambda sheds req.activity: two greedy passes
// instead of choose_shed's search.
bool can_shed(std::span<const int32_t> users, std::span<const int64_t> sizes, std::span<const double> activities,
              const std::vector<uint8_t>& taken, const ShedRequest& request);

// The weights searched. At 1/64 activity barely breaks ties between sizes; at
// 1024 it outranks any size difference in a mail fleet (a 100 GiB mailbox
// with activity 0.1 ranks below a 1 GiB one with activity 8).
constexpr double kMinLambda = 1.0 / 64;
constexpr double kMaxLambda = 1024.0;

// The byte target is "reached" when the gap is below this: closing the last
// GiB with ever smaller mailboxes costs moves and buys nothing (a median
// mailbox is ~0.3 GiB; planner-notes §4.1). Scaled down for tiny fleets.
constexpr int64_t kCloseEnoughBytes = 1ll << 30;

}  // namespace mailshard::planner
