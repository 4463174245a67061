// File helpers: an owning fd, whole-file read, and crash-safe small writes.
// Thread-safety: free functions are thread-safe; UniqueFd is a value.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>
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

// An open regular file and its fstat.
struct RegularFile {
  UniqueFd fd;
  struct stat st;
};

// Opens an existing file read-only without blocking: a FIFO, socket or device
// is refused ("cannot read '/x': not a regular file", kInvalidInput) before a
// single byte is read, so a FIFO planted as a config, CSV or secret file can
// never hang us. Symlinks are followed (secrets are often mounted as links).
Result<RegularFile> open_regular_file(const std::string& path);

// Reads a whole regular file (at most max_bytes; larger is kInvalidInput).
// Errors name the path: "cannot read '/etc/x': No such file or directory".
Result<std::string> read_file(const std::string& path, size_t max_bytes = 64u << 20);

// Whether a secret file may be readable by its group (never by others).
enum class GroupReadable { kRefuse, kAllow };

// Reads a small secret file (read_file, at most 64 KiB) and refuses it, as ssh
// does with a private key, when its mode lets others (or, unless allowed, the
// group) read it: "secret file '/x' is readable by group or others (mode
// 0644); chmod 600 it" (kPermission).
Result<std::string> read_secret_file(const std::string& path, GroupReadable group);

enum class FileSync {
  kSync,    // fsync the file and its directory: survives a power cut
  kNoSync,  // reports and other outputs that can be made again
};

// Who may read a file mailshard writes: its mode and, when group >= 0, its
// group (chown'd at creation). Private by default.
struct FileAccess {
  FileAccess(int mode_ = 0600, int group_ = -1) : mode(mode_), group(group_) {}  // NOLINT: 0600 converts
  int mode;
  int group;
};

// Writes `data` to path atomically: a fresh file under a random name in the
// same directory (O_CREAT|O_EXCL|O_NOFOLLOW, so a planted file or symlink is
// never opened), fsync, renameat over `path` (which replaces a symlink at
// `path` itself, never its target), fsync of the directory. The new file has
// exactly the access's mode, whatever the umask, and its group when it names
// one (0600 unless said otherwise: everything mailshard writes is private).
Status write_file_atomic(const std::string& path, std::string_view data, FileAccess access = {},
                         FileSync sync = FileSync::kSync);

// The id of a group of this host ("no group 'x' on this host", kInvalidInput).
Result<int> group_id(const std::string& name);

// Creates a directory and its parents (like mkdir -p). Existing dirs are fine.
Status make_dirs(const std::string& path, int mode = 0755);

// Writes all of `len` bytes, retrying on EINTR/short writes.
Status write_all(int fd, const void* data, size_t len);
// Reads exactly `len` bytes; kCorrupt ("unexpected end of stream") on early EOF.
Status read_exact(int fd, void* data, size_t len);

}  // namespace mailshard
