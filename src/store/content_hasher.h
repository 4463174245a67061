// ContentHasher: the whole-file XXH3-128 and, optionally, seeded XXH3-128
// hashes of fixed-size blocks, over content fed in order from offset 0.
// Block hashes let a later pass find changed blocks without a round trip
// (ReadSpec::Mode::kBlockDiff); the random per-state seed keeps precomputed
// collisions of attacker-written content (cached headers) useless.
// Thread-safety: a value; one per thread.
#pragma once

#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "util/hash.h"

namespace mailshard::store {

inline Hash128 block_hash(const void* data, size_t size, uint64_t seed) {
  XXH128_hash_t h = XXH3_128bits_withSeed(data, size, seed);
  return {h.high64, h.low64};
}

class ContentHasher {
 public:
  ContentHasher() : state_(XXH3_createState()) { XXH3_128bits_reset(state_); }
  ~ContentHasher() { XXH3_freeState(state_); }
  ContentHasher(const ContentHasher&) = delete;
  ContentHasher& operator=(const ContentHasher&) = delete;

  // block_size 0 = no block hashes.
  void set_blocks(uint32_t block_size, uint64_t seed) {
    block_size_ = block_size;
    seed_ = seed;
  }
  // A prefix hash is taken when exactly prefix_len bytes have been fed.
  void set_prefix(int64_t prefix_len) { prefix_len_ = prefix_len; }

  void update(const char* data, size_t size) {
    if (prefix_len_ >= 0 && !prefix_done_ && fed_ + static_cast<int64_t>(size) >= prefix_len_) {
      size_t head = static_cast<size_t>(prefix_len_ - fed_);
      feed(data, head);
      XXH128_hash_t p = XXH3_128bits_digest(state_);
      prefix_ = {p.high64, p.low64};
      prefix_done_ = true;
      data += head;
      size -= head;
    }
    feed(data, size);
  }

  // n zero bytes: a hole of a sparse file, which reads as zeros.
  void update_zeros(int64_t n) {
    static const char zeros[64 * 1024] = {};
    while (n > 0) {
      size_t k = static_cast<size_t>(std::min<int64_t>(n, sizeof zeros));
      update(zeros, k);
      n -= static_cast<int64_t>(k);
    }
  }

  int64_t fed() const { return fed_; }
  Hash128 digest() const {
    XXH128_hash_t d = XXH3_128bits_digest(state_);
    return {d.high64, d.low64};
  }
  bool has_prefix() const { return prefix_done_; }
  Hash128 prefix() const { return prefix_; }
  // Block hashes including the last partial block.
  std::vector<Hash128> take_blocks() {
    if (!partial_.empty()) {
      blocks_.push_back(block_hash(partial_.data(), partial_.size(), seed_));
      partial_.clear();
    }
    return std::move(blocks_);
  }

 private:
  void feed(const char* data, size_t size) {
    if (size == 0) return;
    XXH3_128bits_update(state_, data, size);
    fed_ += static_cast<int64_t>(size);
    if (!block_size_) return;
    if (!partial_.empty()) {
      size_t need = block_size_ - partial_.size();
      size_t take = size < need ? size : need;
      partial_.append(data, take);
      data += take;
      size -= take;
      if (partial_.size() == block_size_) {
        blocks_.push_back(block_hash(partial_.data(), partial_.size(), seed_));
        partial_.clear();
      }
    }
    while (size >= block_size_) {
      blocks_.push_back(block_hash(data, block_size_, seed_));
      data += block_size_;
      size -= block_size_;
    }
    if (size) partial_.assign(data, size);
  }

  XXH3_state_t* state_;
  int64_t fed_ = 0;
  int64_t prefix_len_ = -1;
  bool prefix_done_ = false;
  Hash128 prefix_;
  uint32_t block_size_ = 0;
  uint64_t seed_ = 0;
  std::string partial_;
  std::vector<Hash128> blocks_;
};

}  // namespace mailshard::store
