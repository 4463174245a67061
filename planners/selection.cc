#include "planners/selection.h"

#include <algorithm>
#include <cmath>

namespace mailshard::planner {

namespace {

struct Ctx {
  const Snapshot& snap;
  std::span<const int32_t> users;
  std::span<const int64_t> sizes;
  const std::vector<uint8_t>& taken;
  const ShedRequest& req;
  double kappa;  // bytes per activity unit of this donor's free users
};

bool is_free(const Ctx& c, size_t i) { return !c.taken[static_cast<size_t>(c.users[i])]; }

// Adds the cheapest cover when the greedy pass stopped short of `min`: the
// smallest free user that reaches min without passing max; failing that, the
// largest users that fit, one by one.
void cover(const Ctx& c, std::vector<uint8_t>& chosen, Shed& out) {
  while (out.bytes < c.req.min) {
    const int64_t gap = c.req.min - out.bytes, room = c.req.max - out.bytes;
    // sizes are descending: [0, k) are >= gap.
    size_t k = static_cast<size_t>(std::upper_bound(c.sizes.begin(), c.sizes.end(), gap, std::greater<>()) -
                                   c.sizes.begin());
    ptrdiff_t pick = -1;
    for (ptrdiff_t i = static_cast<ptrdiff_t>(k) - 1; i >= 0; --i) {
      auto iu = static_cast<size_t>(i);
      if (c.sizes[iu] > room) break;
      if (!chosen[iu] && is_free(c, iu)) {
        pick = i;
        break;
      }
    }
    if (pick < 0) {
      for (size_t i = k; i < c.sizes.size(); ++i)
        if (!chosen[i] && is_free(c, i) && c.sizes[i] <= room) {
          pick = static_cast<ptrdiff_t>(i);
          break;
        }
    }
    if (pick < 0) return;  // the donor has nothing left that fits
    auto p = static_cast<size_t>(pick);
    chosen[p] = 1;
    out.bytes += c.sizes[p];
    out.activity += c.snap.user_activity[static_cast<size_t>(c.users[p])];
  }
}

// Candidates in score order, sorted lazily: the greedy pass usually stops
// after a few hundred users, so only a prefix is ever put in order.
class ScoreOrder {
 public:
  struct Entry {
    double key;
    uint32_t index;  // position in the size-sorted group: the tie order
  };
  void reset(const Ctx& c, double lambda) {
    entries_.clear();
    for (size_t i = 0; i < c.users.size(); ++i) {
      if (!is_free(c, i)) continue;
      double k = static_cast<double>(c.sizes[i]) +
                 lambda * c.kappa * c.snap.user_activity[static_cast<size_t>(c.users[i])];
      entries_.push_back({k, static_cast<uint32_t>(i)});
    }
    sorted_ = 0;
  }
  size_t size() const { return entries_.size(); }
  // The j-th best candidate (j < size()).
  size_t at(size_t j) {
    if (j >= sorted_) {
      size_t upto = std::min(entries_.size(), std::max<size_t>(j + 1, sorted_ == 0 ? 1024 : sorted_ * 2));
      std::partial_sort(entries_.begin() + static_cast<ptrdiff_t>(sorted_), entries_.begin() + static_cast<ptrdiff_t>(upto),
                        entries_.end(), [](const Entry& a, const Entry& b) {
                          return a.key != b.key ? a.key > b.key : a.index < b.index;
                        });
      sorted_ = upto;
    }
    return entries_[j].index;
  }

 private:
  std::vector<Entry> entries_;
  size_t sorted_ = 0;
};

// One greedy pass at weight lambda.
Shed greedy(const Ctx& c, double lambda, ScoreOrder& order) {
  const size_t n = c.users.size();
  std::vector<uint8_t> chosen(n, 0);
  Shed out;
  out.lambda = lambda;
  const int64_t close = std::min(kCloseEnoughBytes, c.req.target / 100);
  auto consider = [&](size_t i) {
    if (out.bytes + c.sizes[i] > c.req.target) return;
    chosen[i] = 1;
    out.bytes += c.sizes[i];
    out.activity += c.snap.user_activity[static_cast<size_t>(c.users[i])];
  };
  // By score while the activity is still short, then largest first: once
  // enough load has left, the rest of the bytes go in the fewest moves.
  if (lambda > 0) {
    order.reset(c, lambda);
    for (size_t j = 0; j < order.size() && out.bytes < c.req.target - close && out.activity < c.req.activity; ++j) {
      size_t i = order.at(j);
      if (!chosen[i]) consider(i);
    }
  }
  for (size_t i = 0; i < n && out.bytes < c.req.target - close; ++i)
    if (is_free(c, i) && !chosen[i]) consider(i);
  cover(c, chosen, out);
  for (size_t i = 0; i < n; ++i)
    if (chosen[i]) out.users.push_back(c.users[i]);
  return out;
}

}  // namespace

Shed choose_shed(const Snapshot& snap, std::span<const int32_t> users, std::span<const int64_t> sizes,
                 const std::vector<uint8_t>& taken, const ShedRequest& req) {
  double bytes = 0, act = 0;
  for (size_t i = 0; i < users.size(); ++i) {
    if (taken[static_cast<size_t>(users[i])]) continue;
    bytes += static_cast<double>(sizes[i]);
    act += snap.user_activity[static_cast<size_t>(users[i])];
  }
  Ctx c{snap, users, sizes, taken, req, act > 0 ? bytes / act : 0.0};
  ScoreOrder order;
  Shed best = greedy(c, 0, order);
  if (req.activity <= 0 || best.activity >= req.activity || c.kappa == 0) return best;
  Shed hi = greedy(c, kMaxLambda, order);
  if (hi.activity < req.activity) return hi.activity > best.activity ? hi : best;
  // Bisection on log(lambda) between kMinLambda and kMaxLambda: the useful
  // weights span orders of magnitude (2 on the benchmark fleets, 30 when one
  // mailbox is 30x the others), and 12 halvings of 16 octaves resolve lambda
  // to 0.3 %, finer than the moves it could save.
  best = std::move(hi);
  double lo = std::log2(kMinLambda), up = std::log2(kMaxLambda);
  Shed low = greedy(c, kMinLambda, order);
  if (low.activity >= req.activity) return low;
  for (int i = 0; i < 12; ++i) {
    double mid = (lo + up) / 2;
    Shed s = greedy(c, std::exp2(mid), order);
    if (s.activity >= req.activity) {
      up = mid;
      best = std::move(s);
    } else {
      lo = mid;
    }
  }
  return best;
}

}  // namespace mailshard::planner
