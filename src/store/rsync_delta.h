// librsync 2.3 wrappers for the three halves of a delta copy: the signature
// of the destination's copy, the delta of the source's file against it, and
// the patch that rebuilds the new file from the old one plus the delta.
//
// Always RS_RK_BLAKE2_SIG_MAGIC (mail content is attacker-controlled; MD4
// block collisions can be crafted). rs_sig_args() is called with the real
// file size (rs_sig_begin() alone would not look at it), and
// rs_build_hash_table() always follows loading a signature. librsync streams
// carry no end-to-end checksum: callers hash the result themselves.
//
// Thread-safety: one job per thread; jobs share nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

namespace mailshard::store {

// Signatures larger than this are refused (a 64 GiB file at the recommended
// block length has a ~70 MB signature; nothing in a mailbox is near that).
inline constexpr size_t kMaxSignatureBytes = 256u << 20;

using OutputFn = std::function<Status(const char* data, size_t size)>;

// The signature of the first `size` bytes of fd (read with pread).
// block_len/strong_len 0 = librsync's recommendation for `size`.
Result<std::string> make_signature(int fd, int64_t size, uint32_t block_len, uint32_t strong_len);

// Produces a delta of the bytes fed in against a loaded signature.
class DeltaJob {
 public:
  // Errors: kCorrupt if the signature is malformed.
  static Result<std::unique_ptr<DeltaJob>> start(std::string_view signature);
  ~DeltaJob();
  // Feeds the next bytes of the new file (eof = no more after these); delta
  // bytes are passed to out as they are produced.
  Status feed(const char* data, size_t size, bool eof, const OutputFn& out);
  bool done() const { return done_; }

 private:
  DeltaJob() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool done_ = false;
};

// Rebuilds a file from a basis fd (read with pread) and a delta fed in.
class PatchJob {
 public:
  explicit PatchJob(int basis_fd);
  ~PatchJob();
  // Feeds delta bytes; the new file's bytes go to out in order.
  // Errors: kCorrupt for a malformed or truncated delta.
  Status feed(const char* data, size_t size, bool eof, const OutputFn& out);
  bool done() const { return done_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool done_ = false;
};

}  // namespace mailshard::store
