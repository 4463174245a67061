// File helpers: an owning fd, whole-file read, and crash-safe small writes.
// Thread-safety: free functions are thread-safe; UniqueFd is a value.
#pragma once

#include <string>
#include <utility>

#include "util/result.h"

namespace mailshard {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Reads a whole regular file (at most max_bytes; larger is kInvalidInput).
// Errors name the path: "cannot read '/etc/x': No such file or directory".
Result<std::string> read_file(const std::string& path, size_t max_bytes = 64u << 20);

// Writes `data` to path via a temp file in the same directory, fsync, rename,
// fsync of the directory. Mode applies to the new file.
Status write_file_atomic(const std::string& path, const std::string& data, int mode = 0644);

// Creates a directory and its parents (like mkdir -p). Existing dirs are fine.
Status make_dirs(const std::string& path, int mode = 0755);

// Writes all of `len` bytes, retrying on EINTR/short writes.
Status write_all(int fd, const void* data, size_t len);
// Reads exactly `len` bytes; kCorrupt ("unexpected end of stream") on early EOF.
Status read_exact(int fd, void* data, size_t len);

}  // namespace mailshard
