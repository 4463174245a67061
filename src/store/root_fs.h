// RootFs: opens paths strictly beneath one mail root, never following a
// symlink (not on the way, not as the last component). This is the only way
// the agent and the local transport touch the filesystem, so "nothing
// outside the root is read or written" holds by construction.
//
// Resolution: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS) where the kernel has it (5.6+), else a walk of
// openat(O_DIRECTORY | O_NOFOLLOW) per component. Paths are checked first by
// check_relative_path() (no "..", no absolute path, no empty component).
//
// Errors: kInvalidInput for a bad path or one that crosses a symlink
// ("path 'a/b' crosses a symlink"), otherwise from errno (kNotFound, ...).
// Thread-safety: const methods are safe from any thread.
#pragma once

#include <string>
#include <utility>

#include "util/fs.h"
#include "util/result.h"

namespace mailshard::store {

class RootFs {
 public:
  enum class Resolver { kAuto, kOpenat2, kWalk };

  // root: an absolute path of an existing directory (it may itself be reached
  // through symlinks; only what lies beneath it is confined).
  static Result<RootFs> open(const std::string& root, Resolver resolver = Resolver::kAuto);

  RootFs(RootFs&&) = default;
  RootFs& operator=(RootFs&&) = default;

  const std::string& root() const { return root_; }
  int root_fd() const { return root_fd_.get(); }
  bool uses_openat2() const { return openat2_; }

  // open(2) of path beneath the root with `flags` (O_NOFOLLOW is implied;
  // O_CREAT is not allowed here: use open_parent + openat on the name).
  Result<UniqueFd> open_path(const std::string& path, int flags) const;
  // The directory at path (O_RDONLY | O_DIRECTORY).
  Result<UniqueFd> open_dir(const std::string& path) const;
  // The parent directory of path and the last component ("a/b/c" -> fd of
  // "a/b", "c"). The root itself has no parent: kInvalidInput.
  Result<std::pair<UniqueFd, std::string>> open_parent(const std::string& path) const;

 private:
  RootFs(std::string root, UniqueFd fd, bool openat2) : root_(std::move(root)), root_fd_(std::move(fd)), openat2_(openat2) {}
  Result<int> resolve(const std::string& path, int flags) const;

  std::string root_;
  UniqueFd root_fd_;
  bool openat2_ = false;
};

// "cannot open 'a/b': No such file or directory" with the code from errno,
// and ELOOP/EXDEV turned into the symlink message above.
Error path_error(int err, const char* what, const std::string& path);

}  // namespace mailshard::store
