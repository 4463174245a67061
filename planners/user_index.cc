#include "planners/user_index.h"

#include <algorithm>
#include <utility>

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
  ids_.resize(static_cast<size_t>(offsets_[S]));
  sizes_.resize(ids_.size());
  acts_.resize(ids_.size());
  std::vector<int64_t> fill(offsets_.begin(), offsets_.end() - 1);
  for (size_t u = 0; u < n; ++u) {
    if (!movable(u)) continue;
    auto s = static_cast<size_t>(snap.user_server[u]);
    auto i = static_cast<size_t>(fill[s]++);
    ids_[i] = static_cast<int32_t>(u);
    sizes_[i] = snap.user_size[u];
    acts_[i] = snap.user_activity[u];
  }
  // Each group is in ascending id order now: the tie order of the sort.
  sorted_.assign(S, 0);
}

// Sorts one group by size, largest first, keeping ascending ids among equal
// sizes: a stable LSD radix sort on the size (11-bit digits, as many passes
// as the largest size needs), several times faster than a comparison sort
// on the 10^4-10^5 users of a server.
void UserIndex::sort_group(int32_t server) const {
  const auto s = static_cast<size_t>(server);
  const auto b = static_cast<size_t>(offsets_[s]), e = static_cast<size_t>(offsets_[s + 1]);
  const size_t n = e - b;
  sorted_[s] = 1;
  if (n < 2) return;
  constexpr int kBits = 11;
  constexpr size_t kBuckets = size_t{1} << kBits;
  int64_t max_size = 0;
  for (size_t i = b; i < e; ++i) max_size = std::max(max_size, sizes_[i]);
  // Keys sort ascending; max - size makes that "largest first".
  std::vector<uint64_t> key(n), key2(n);
  std::vector<uint32_t> pos(n), pos2(n);
  for (size_t i = 0; i < n; ++i) {
    key[i] = static_cast<uint64_t>(max_size - sizes_[b + i]);
    pos[i] = static_cast<uint32_t>(i);
  }
  std::vector<size_t> count(kBuckets);
  for (int shift = 0; shift < 64 && (static_cast<uint64_t>(max_size) >> shift) != 0; shift += kBits) {
    std::fill(count.begin(), count.end(), 0);
    for (size_t i = 0; i < n; ++i) ++count[(key[i] >> shift) & (kBuckets - 1)];
    size_t sum = 0;
    for (auto& c : count) sum += std::exchange(c, sum);
    for (size_t i = 0; i < n; ++i) {
      size_t d = count[(key[i] >> shift) & (kBuckets - 1)]++;
      key2[d] = key[i];
      pos2[d] = pos[i];
    }
    key.swap(key2);
    pos.swap(pos2);
  }
  std::vector<int32_t> ids(n);
  std::vector<int64_t> sizes(n);
  std::vector<double> acts(n);
  for (size_t i = 0; i < n; ++i) {
    ids[i] = ids_[b + pos[i]];
    sizes[i] = sizes_[b + pos[i]];
    acts[i] = acts_[b + pos[i]];
  }
  std::copy(ids.begin(), ids.end(), ids_.begin() + static_cast<ptrdiff_t>(b));
  std::copy(sizes.begin(), sizes.end(), sizes_.begin() + static_cast<ptrdiff_t>(b));
  std::copy(acts.begin(), acts.end(), acts_.begin() + static_cast<ptrdiff_t>(b));
}

}  // namespace mailshard::planner
