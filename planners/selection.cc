#include "planners/selection.h"

#include <algorithm>
#include <cmath>

namespace mailshard::planner {

namespace {

// One donor's free users, copied into local columns (largest first) so the
// repeated greedy passes of the lambda search stay in cache.
class Selector {
 public:
  Selector(std::span<const int32_t> users, std::span<const int64_t> sizes, std::span<const double> acts,
           const std::vector<uint8_t>& taken, const ShedRequest& req)
      : req_(req) {
    ids_.reserve(users.size());
    size_.reserve(users.size());
    act_.reserve(users.size());
    double bytes = 0, act = 0;
    for (size_t i = 0; i < users.size(); ++i) {
      if (taken[static_cast<size_t>(users[i])]) continue;
      // A user with no bytes and no activity (an account that never received
      // mail) changes neither dimension: moving it only costs a move.
      if (sizes[i] == 0 && !(acts[i] > 0)) continue;
      ids_.push_back(users[i]);
      size_.push_back(sizes[i]);
      act_.push_back(acts[i]);
      bytes += static_cast<double>(sizes[i]);
      act += act_.back();
    }
    kappa_ = act > 0 ? bytes / act : 0.0;
    chosen_.assign(ids_.size(), 0);
  }

  double kappa() const { return kappa_; }

  // One greedy pass at weight lambda (see selection.h).
  Shed greedy(double lambda) {
    for (size_t i : picked_) chosen_[i] = 0;
    picked_.clear();
    Shed out;
    out.lambda = lambda;
    const int64_t close = std::min(kCloseEnoughBytes, req_.target / 100);
    auto consider = [&](size_t i) {
      if (chosen_[i] || out.bytes + size_[i] > req_.target) return;
      take(i, out);
    };
    // By score while the activity is still short, then largest first: once
    // enough load has left, the rest of the bytes go in the fewest moves.
    if (lambda > 0) {
      reset_order(lambda);
      for (size_t j = 0; j < order_.size() && out.bytes < req_.target - close && out.activity < req_.activity; ++j)
        consider(order_at(j));
    }
    for (size_t i = 0; i < ids_.size() && out.bytes < req_.target - close; ++i) consider(i);
    cover(out);
    std::sort(picked_.begin(), picked_.end());
    for (size_t i : picked_) out.users.push_back(ids_[i]);
    return out;
  }

 private:
  struct Entry {
    double key;
    uint32_t index;  // position in the size order: the tie order
  };

  void take(size_t i, Shed& out) {
    chosen_[i] = 1;
    picked_.push_back(i);
    out.bytes += size_[i];
    out.activity += act_[i];
  }

  // Adds the cheapest cover when the pass stopped short of `min`: the
  // smallest free user that reaches min without passing max; failing that,
  // the largest users that fit, one by one.
  void cover(Shed& out) {
    while (out.bytes < req_.min) {
      const int64_t gap = req_.min - out.bytes, room = req_.max - out.bytes;
      // size_ is descending: [0, k) are >= gap.
      auto k = static_cast<size_t>(std::upper_bound(size_.begin(), size_.end(), gap, std::greater<>()) - size_.begin());
      ptrdiff_t pick = -1;
      for (ptrdiff_t i = static_cast<ptrdiff_t>(k) - 1; i >= 0 && size_[static_cast<size_t>(i)] <= room; --i)
        if (!chosen_[static_cast<size_t>(i)]) {
          pick = i;
          break;
        }
      for (size_t i = k; pick < 0 && i < size_.size(); ++i)
        if (!chosen_[i] && size_[i] <= room) pick = static_cast<ptrdiff_t>(i);
      if (pick < 0) return;  // nothing left that fits
      take(static_cast<size_t>(pick), out);
    }
  }

  // Candidates in score order, put in order lazily: a pass usually stops
  // after a few hundred users, so only a prefix is ever sorted.
  void reset_order(double lambda) {
    order_.resize(ids_.size());
    for (size_t i = 0; i < ids_.size(); ++i)
      order_[i] = {static_cast<double>(size_[i]) + lambda * kappa_ * act_[i], static_cast<uint32_t>(i)};
    sorted_ = 0;
  }
  size_t order_at(size_t j) {
    if (j >= sorted_) {
      auto better = [](const Entry& a, const Entry& b) { return a.key != b.key ? a.key > b.key : a.index < b.index; };
      size_t upto = std::min(order_.size(), std::max<size_t>(j + 1, sorted_ == 0 ? 128 : sorted_ * 2));
      auto first = order_.begin() + static_cast<ptrdiff_t>(sorted_), mid = order_.begin() + static_cast<ptrdiff_t>(upto);
      // The next best entries in order: a heap of them (most of the rest fail
      // one comparison with its top), the same entries and order as a
      // selection followed by a sort, in about a third of the comparisons.
      std::partial_sort(first, mid, order_.end(), better);
      sorted_ = upto;
    }
    return order_[j].index;
  }

  const ShedRequest& req_;
  std::vector<int32_t> ids_;
  std::vector<int64_t> size_;
  std::vector<double> act_;
  double kappa_ = 0;
  std::vector<uint8_t> chosen_;
  std::vector<size_t> picked_;
  std::vector<Entry> order_;
  size_t sorted_ = 0;
};

}  // namespace

bool can_shed(std::span<const int32_t> users, std::span<const int64_t> sizes, std::span<const double> acts,
              const std::vector<uint8_t>& taken, const ShedRequest& req) {
  // Activity first sheds at least as much activity as largest first: one
  // pass at the largest weight answers.
  Selector sel(users, sizes, acts, taken, req);
  if (req.activity <= 0) return true;
  return sel.greedy(sel.kappa() > 0 ? kMaxLambda : 0).activity >= req.activity;
}

Shed choose_shed(std::span<const int32_t> users, std::span<const int64_t> sizes, std::span<const double> acts,
                 const std::vector<uint8_t>& taken, const ShedRequest& req) {
  Selector sel(users, sizes, acts, taken, req);
  Shed best = sel.greedy(0);
  if (req.activity <= 0 || best.activity >= req.activity || sel.kappa() == 0) return best;
  // Search log2(lambda). The useful weights span orders of magnitude (~2 on
  // the benchmark fleets, 30 when one mailbox is 30x the others): walk a
  // ladder of factor 4 from lambda = 1 to the first rung on the other side,
  // then halve that bracket twice (lambda known to a factor 1.4, finer than
  // the moves it could save). Typically five passes.
  const double t_min = std::log2(kMinLambda), t_max = std::log2(kMaxLambda);
  auto try_at = [&](double t, Shed& out) {
    Shed s = sel.greedy(std::exp2(t));
    if (s.activity < req.activity) return false;
    out = std::move(s);
    return true;
  };
  Shed found;
  double t_ok, t_fail;
  if (try_at(0, found)) {
    t_ok = 0;
    t_fail = t_ok - 2;
    while (t_fail >= t_min && try_at(t_fail, found)) {
      t_ok = t_fail;
      t_fail -= 2;
    }
    if (t_fail < t_min) return found;  // even the smallest weight is enough
  } else {
    t_fail = 0;
    t_ok = 2;
    while (t_ok <= t_max && !try_at(t_ok, found)) {
      t_fail = t_ok;
      t_ok += 2;
    }
    if (t_ok > t_max) {  // no weight sheds enough: the most active choice
      Shed hi = sel.greedy(kMaxLambda);
      return hi.activity > best.activity ? hi : best;
    }
  }
  for (int i = 0; i < 2; ++i) {
    double mid = (t_ok + t_fail) / 2;
    if (try_at(mid, found))
      t_ok = mid;
    else
      t_fail = mid;
  }
  return found;  // try_at keeps only successes: this is the pass at t_ok

}

}  // namespace mailshard::planner
