#include "store/root_fs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/transport.h"
#include "util/strings.h"

namespace mailshard::store {
namespace {

int sys_openat2(int dirfd, const char* path, int flags, uint64_t resolve) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = resolve;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

}  // namespace

Error path_error(int err, const char* what, const std::string& path) {
  if (err == ELOOP || err == EXDEV)
    return Error::invalid(fmt::format("{} '{}': path crosses a symlink", what, printable(path)));
  return Error::from_errno(err, fmt::format("{} '{}'", what, printable(path)));
}

Result<RootFs> RootFs::open(const std::string& root, Resolver resolver) {
  if (root.empty() || root.front() != '/')
    return Error::invalid(fmt::format("mail root '{}' must be an absolute path", printable(root)));
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(errno, fmt::format("cannot open mail root '{}'", printable(root)));
  bool use2 = false;
  if (resolver != Resolver::kWalk) {
    int probe = sys_openat2(fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, kResolve);
    if (probe >= 0) {
      ::close(probe);
      use2 = true;
    } else if (resolver == Resolver::kOpenat2) {
      return Error::unsupported("openat2 is not available on this kernel");
    }
  }
  return RootFs(root, std::move(fd), use2);
}

// Returns an fd of path opened with flags, or -errno.
Result<int> RootFs::resolve(const std::string& path, int flags) const {
  flags |= O_NOFOLLOW | O_CLOEXEC;
  auto once = [&](int fl) -> int {
    if (path.empty()) {
      int fd = ::openat(root_fd_.get(), ".", fl);
      return fd >= 0 ? fd : -errno;
    }
    if (openat2_) {
      int fd;
      do fd = sys_openat2(root_fd_.get(), path.c_str(), fl, kResolve);
      while (fd < 0 && errno == EAGAIN);
      return fd >= 0 ? fd : -errno;
    }
    // Component-wise walk: every directory on the way opened with O_NOFOLLOW.
    int dir = root_fd_.get();
    UniqueFd owned;
    size_t start = 0;
    while (true) {
      size_t slash = path.find('/', start);
      std::string comp = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      if (slash == std::string::npos) {
        int fd = ::openat(dir, comp.c_str(), fl);
        return fd >= 0 ? fd : -errno;
      }
      int next = ::openat(dir, comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0) {
        int e = errno;
        // A symlink on the way: report it as such, not as "not a directory".
        struct stat st;
        if (e == ENOTDIR && ::fstatat(dir, comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
          e = ELOOP;
        return -e;
      }
      owned.reset(next);
      dir = next;
      start = slash + 1;
    }
  };
  int fd = once(flags);
  // O_DIRECTORY|O_NOFOLLOW on a final symlink fails with ENOTDIR, not ELOOP
  // (both resolvers): look at the entry itself, so that a symlinked parent
  // of an APPLY or SIGNATURE path reads "path crosses a symlink", never a
  // not-found that the engine would take as "already gone".
  if (fd == -ENOTDIR && (flags & O_DIRECTORY)) {
    int link = once(O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (link == -ELOOP) return -ELOOP;
    if (link >= 0) {
      struct stat st;
      const bool is_link = ::fstat(link, &st) == 0 && S_ISLNK(st.st_mode);
      ::close(link);
      if (is_link) return -ELOOP;
    }
  }
  return fd;
}

Result<UniqueFd> RootFs::open_path(const std::string& path, int flags) const {
  MS_CHECK(check_relative_path(path));
  if (flags & O_CREAT) return Error::internal("RootFs::open_path: O_CREAT is not allowed");
  int fd = MS_TRY(resolve(path, flags));
  if (fd < 0) {
    int e = -fd;
    // O_NOFOLLOW on a final symlink gives ELOOP with openat (and openat2);
    // with O_DIRECTORY, ENOTDIR. Both mean "this is a symlink" here.
    if (e == ENOTDIR && (flags & O_DIRECTORY)) {
      struct stat st;
      auto parent = open_parent(path);
      if (parent.ok() && ::fstatat(parent->first.get(), parent->second.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode))
        e = ELOOP;
    }
    return path_error(e, "cannot open", path);
  }
  return UniqueFd(fd);
}

Result<UniqueFd> RootFs::open_dir(const std::string& path) const {
  return open_path(path, O_RDONLY | O_DIRECTORY);
}

Result<std::pair<UniqueFd, std::string>> RootFs::open_parent(const std::string& path) const {
  MS_CHECK(check_relative_path(path));
  if (path.empty()) return Error::invalid("the mail root has no parent directory");
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? std::string() : path.substr(0, slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  int fd = MS_TRY(resolve(dir, O_RDONLY | O_DIRECTORY));
  if (fd < 0) return path_error(-fd, "cannot open directory of", path);
  return std::make_pair(UniqueFd(fd), std::move(name));
}

}  // namespace mailshard::store
