#include "planners/user_index.h"

#include <algorithm>
#include <array>
#include <utility>

#include "util/huge_pages.h"

namespace mailshard::planner {

UserIndex::UserIndex(const Snapshot& snap, int64_t max_move_bytes) : snap_(snap) {
  const size_t S = snap.servers.size();
  const size_t n = snap.user_count();
  offsets_.assign(S + 1, 0);
  movable_bytes_.assign(S, 0);
  fixed_count_.assign(S, 0);
  fixed_bytes_.assign(S, 0);
  pinned_count_.assign(S, 0);
  auto movable = [&](size_t u) {
    return !snap.user_pinned[u] && (max_move_bytes <= 0 || snap.user_size[u] <= max_move_bytes);
  };
  // Counting sort by server: one pass to size the groups, one to fill them.
  for (size_t u = 0; u < n; ++u) {
    auto s = static_cast<size_t>(snap.user_server[u]);
    if (movable(u)) {
      ++offsets_[s + 1];
      movable_bytes_[s] += snap.user_size[u];
    } else {
      ++fixed_count_[s];
      fixed_bytes_[s] += snap.user_size[u];
      if (snap.user_pinned[u]) ++pinned_count_[s];
    }
  }
  for (size_t s = 0; s < S; ++s) offsets_[s + 1] += offsets_[s];
  const auto total = static_cast<size_t>(offsets_[S]);
  ids_ = std::make_unique_for_overwrite<int32_t[]>(total);
  sizes_ = std::make_unique_for_overwrite<int64_t[]>(total);
  acts_ = std::make_unique_for_overwrite<double[]>(total);
  advise_huge_pages(ids_.get(), total * sizeof(int32_t));
  advise_huge_pages(sizes_.get(), total * sizeof(int64_t));
  advise_huge_pages(acts_.get(), total * sizeof(double));
  std::vector<int64_t> fill(offsets_.begin(), offsets_.end() - 1);
  for (size_t u = 0; u < n; ++u) {
    if (!movable(u)) continue;
    auto s = static_cast<size_t>(snap.user_server[u]);
    ids_[static_cast<size_t>(fill[s]++)] = static_cast<int32_t>(u);
  }
  // Each group is in ascending id order now: the tie order of the sort.
  sorted_.assign(S, 0);
}

// Sorts one group by size, largest first, keeping ascending ids among equal
// sizes: a stable LSD radix sort on the size (as many passes of at most 11
// bits as the largest size needs, the bits shared out evenly between them so
// that the counts to clear and add up stay few), several times faster
// than a comparison sort on the 10^3-10^5 users of a server. Then writes the
// group's sizes and activities in that order.
void UserIndex::sort_group(int32_t server) const {
  const auto s = static_cast<size_t>(server);
  const auto b = static_cast<size_t>(offsets_[s]), e = static_cast<size_t>(offsets_[s + 1]);
  const size_t n = e - b;
  sorted_[s] = 1;
  int32_t* ids = ids_.get() + b;
  int64_t* sizes = sizes_.get() + b;
  double* acts = acts_.get() + b;
  // Each user's size and activity are read from the snapshot once (reads
  // all over its columns, the costly part at 10^7 users), in id order.
  for (size_t i = 0; i < n; ++i) {
    const auto u = static_cast<size_t>(ids[i]);
    sizes[i] = snap_.user_size[u];
    acts[i] = snap_.user_activity[u];
  }
  if (n < 2) return;
  constexpr int kMaxBits = 11;
  if (key_.size() < n) {
    key_.resize(n);
    key2_.resize(n);
    pos_.resize(n);
    pos2_.resize(n);
    ids_tmp_.resize(n);
    acts_tmp_.resize(n);
  }
  uint64_t* key = key_.data();
  uint64_t* key2 = key2_.data();
  uint32_t* pos = pos_.data();
  uint32_t* pos2 = pos2_.data();
  int64_t max_size = 0;
  for (size_t i = 0; i < n; ++i) max_size = std::max(max_size, sizes[i]);
  // Keys sort ascending; max - size makes that "largest first". No key
  // exceeds max_size, so its bits are the bits to sort on.
  for (size_t i = 0; i < n; ++i) {
    key[i] = static_cast<uint64_t>(max_size - sizes[i]);
    pos[i] = static_cast<uint32_t>(i);
  }
  const int bits = max_size > 0 ? 64 - __builtin_clzll(static_cast<uint64_t>(max_size)) : 0;
  const int passes = (bits + kMaxBits - 1) / kMaxBits;
  const int digit = passes > 0 ? (bits + passes - 1) / passes : 0;
  const size_t buckets = size_t{1} << digit;
  const uint64_t mask = buckets - 1;
  std::array<size_t, size_t{1} << kMaxBits> count;
  for (int shift = 0; shift < passes * digit; shift += digit) {
    std::fill_n(count.begin(), buckets, 0);
    for (size_t i = 0; i < n; ++i) ++count[(key[i] >> shift) & mask];
    size_t sum = 0;
    for (size_t d = 0; d < buckets; ++d) sum += std::exchange(count[d], sum);
    for (size_t i = 0; i < n; ++i) {
      size_t d = count[(key[i] >> shift) & mask]++;
      key2[d] = key[i];
      pos2[d] = pos[i];
    }
    std::swap(key, key2);
    std::swap(pos, pos2);
  }
  // Into sorted order: the sorted keys give the sizes back, the ids and
  // activities are moved inside the group.
  int32_t* sorted_ids = ids_tmp_.data();
  double* sorted_acts = acts_tmp_.data();
  for (size_t i = 0; i < n; ++i) {
    sorted_ids[i] = ids[pos[i]];
    sorted_acts[i] = acts[pos[i]];
    sizes[i] = max_size - static_cast<int64_t>(key[i]);
  }
  std::copy(sorted_ids, sorted_ids + n, ids);
  std::copy(sorted_acts, sorted_acts + n, acts);
}

}  // namespace mailshard::planner
