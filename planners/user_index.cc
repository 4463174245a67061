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
  std::vector<int64_t> fill(offsets_.begin(), offsets_.end() - 1);
  for (size_t u = 0; u < n; ++u) {
    if (!movable(u)) continue;
    auto s = static_cast<size_t>(snap.user_server[u]);
    ids_[static_cast<size_t>(fill[s]++)] = static_cast<int32_t>(u);
  }
  sorted_.assign(S, 0);
}

// Sorts one group through a small (size, id) buffer: the group fits in
// cache, random reads of the snapshot columns would not.
void UserIndex::sort_group(int32_t server) const {
  const auto s = static_cast<size_t>(server);
  const auto b = static_cast<size_t>(offsets_[s]), e = static_cast<size_t>(offsets_[s + 1]);
  std::vector<std::pair<int64_t, int32_t>> buf;
  buf.reserve(e - b);
  for (size_t i = b; i < e; ++i) buf.emplace_back(snap_.user_size[static_cast<size_t>(ids_[i])], ids_[i]);
  std::sort(buf.begin(), buf.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  for (size_t i = b; i < e; ++i) {
    sizes_[i] = buf[i - b].first;
    ids_[i] = buf[i - b].second;
  }
  sorted_[s] = 1;
}

}  // namespace mailshard::planner
