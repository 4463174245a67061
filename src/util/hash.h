// Content hashes: XXH3-128, the one hash used to compare copies.
// Thread-safety: Hasher is a value (one per thread); free functions are safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <xxhash.h>

#include "util/result.h"

namespace mailshard {

struct Hash128 {
  uint64_t hi = 0, lo = 0;
  bool operator==(const Hash128&) const = default;
  std::string hex() const;  // 32 lower-case hex digits
  static Result<Hash128> from_hex(std::string_view hex);
};

class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  Hash128 digest() const;
  void reset();

 private:
  XXH3_state_t* state_;
};

Hash128 hash_bytes(std::string_view data);
// Hashes a file by path (no symlink following: O_NOFOLLOW). Returns the size too.
Result<Hash128> hash_file(const std::string& path, int64_t* size_out = nullptr);
// Hashes an open fd from offset 0 up to `limit` bytes (-1 = to EOF) with pread.
Result<Hash128> hash_fd(int fd, int64_t limit = -1, int64_t* size_out = nullptr);

}  // namespace mailshard
