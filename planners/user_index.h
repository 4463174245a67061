// The movable users of every server, grouped by server and sorted by size,
// largest first (ties: lower user id first, so the order is deterministic).
// "Movable" = not pinned and not larger than Constraints::max_move_bytes.
//
// Columnar (id, size and activity arrays, CSR offsets) so 10 M users cost
// 20 bytes each and no per-user heap object exists. A group is sorted the
// first time it is read: most servers are never looked into. Only the ids
// are written up front; a group's sizes and activities are written when it
// is sorted, into arrays allocated without being zeroed, so the pages of
// groups nobody reads are never touched (the kernel maps them lazily).
// Thread-safety: not thread-safe (reads sort lazily); the planner is single-threaded.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/snapshot.h"

namespace mailshard::planner {

class UserIndex {
 public:
  UserIndex(const Snapshot& snapshot, int64_t max_move_bytes);

  // Movable users of `server`, largest first, and their sizes (same order).
  std::span<const int32_t> users(int32_t server) const {
    ensure_sorted(server);
    return {ids_.get() + begin(server), count(server)};
  }
  std::span<const int64_t> sizes(int32_t server) const {
    ensure_sorted(server);
    return {sizes_.get() + begin(server), count(server)};
  }
  // Their activities (same order).
  std::span<const double> activities(int32_t server) const {
    ensure_sorted(server);
    return {acts_.get() + begin(server), count(server)};
  }
  int64_t movable_bytes(int32_t server) const { return movable_bytes_[static_cast<size_t>(server)]; }
  // Users that may not move (pinned or too large) and their bytes.
  int64_t fixed_count(int32_t server) const { return fixed_count_[static_cast<size_t>(server)]; }
  int64_t fixed_bytes(int32_t server) const { return fixed_bytes_[static_cast<size_t>(server)]; }
  int64_t pinned_count(int32_t server) const { return pinned_count_[static_cast<size_t>(server)]; }

 private:
  size_t begin(int32_t s) const { return static_cast<size_t>(offsets_[static_cast<size_t>(s)]); }
  size_t count(int32_t s) const {
    return static_cast<size_t>(offsets_[static_cast<size_t>(s) + 1] - offsets_[static_cast<size_t>(s)]);
  }

  void ensure_sorted(int32_t server) const {
    if (!sorted_[static_cast<size_t>(server)]) sort_group(server);
  }
  void sort_group(int32_t server) const;

  const Snapshot& snap_;
  std::vector<int64_t> offsets_;  // servers + 1
  // Allocated without zeroing; ids_ is written whole by the constructor,
  // sizes_ and acts_ only inside sorted groups (see above).
  std::unique_ptr<int32_t[]> ids_;
  mutable std::unique_ptr<int64_t[]> sizes_;
  mutable std::unique_ptr<double[]> acts_;
  mutable std::vector<uint8_t> sorted_;
  // Scratch of sort_group, kept between calls (sized to the largest group sorted).
  mutable std::vector<uint64_t> key_, key2_;
  mutable std::vector<uint32_t> pos_, pos2_;
  mutable std::vector<int32_t> ids_tmp_;
  mutable std::vector<double> acts_tmp_;
  std::vector<int64_t> movable_bytes_, fixed_count_, fixed_bytes_, pinned_count_;
};

}  // namespace mailshard::planner
