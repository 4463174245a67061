#include "util/fs.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<RegularFile> open_regular_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
  // (and SIGTERM cannot end the wait). It does not matter for regular files.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(errno, fmt::format("cannot read '{}'", printable(path)));
  RegularFile f;
  if (fstat(fd.get(), &f.st) != 0) return Error::from_errno(errno, fmt::format("cannot stat '{}'", printable(path)));
  if (!S_ISREG(f.st.st_mode)) return Error::invalid(fmt::format("cannot read '{}': not a regular file", printable(path)));
  f.fd = std::move(fd);
  return f;
}

namespace {

Result<std::string> read_open_file(const RegularFile& f, const std::string& path, size_t max_bytes) {
  if (static_cast<size_t>(f.st.st_size) > max_bytes)
    return Error::invalid(fmt::format("cannot read '{}': larger than {} bytes", printable(path), max_bytes));
  std::string out;
  out.resize(static_cast<size_t>(f.st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(f.fd.get(), out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, fmt::format("cannot read '{}'", printable(path)));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  RegularFile f = MS_TRY(open_regular_file(path));
  return read_open_file(f, path, max_bytes);
}

Result<std::string> read_secret_file(const std::string& path, GroupReadable group) {
  RegularFile f = MS_TRY(open_regular_file(path));
  const mode_t readable_by = group == GroupReadable::kAllow ? S_IROTH : (S_IRGRP | S_IROTH);
  if (f.st.st_mode & readable_by)
    return Error::permission(fmt::format("secret file '{}' is readable by {} (mode {:04o}); chmod 600 it", printable(path),
                                         group == GroupReadable::kAllow ? "others" : "group or others",
                                         f.st.st_mode & 07777));
  return read_open_file(f, path, 64 * 1024);
}

Status write_all(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "write");
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Status read_exact(int fd, void* data, size_t len) {
  char* p = static_cast<char*>(data);
  while (len > 0) {
    ssize_t n = ::read(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read");
    }
    if (n == 0) return Error::corrupt("unexpected end of stream");
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Status write_file_atomic(const std::string& path, std::string_view data, FileAccess access, FileSync sync) {
  const int mode = access.mode;
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty()) return Error::invalid(fmt::format("cannot write '{}': not a file name", printable(path)));
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return Error::from_errno(errno, fmt::format("cannot open directory '{}'", printable(dir)));
  // A random name (never <path>.tmp.<pid>, which another user could plant a
  // symlink at) created exclusively: EEXIST on a collision, retried.
  std::string tmp;
  UniqueFd fd;
  int err = 0;
  for (int attempt = 0; attempt < 16 && !fd.valid(); ++attempt) {
    uint64_t r = 0;
    if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
      return Error::from_errno(errno, "getrandom");
    tmp = fmt::format(".{}.tmp.{:016x}", base.size() > 64 ? base.substr(0, 64) : base, r);
    fd.reset(::openat(dfd.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      static_cast<mode_t>(mode)));
    err = fd.valid() ? 0 : errno;
    if (err != 0 && err != EEXIST) break;
  }
  const std::string tmp_path = dir + "/" + tmp;
  if (!fd.valid()) return Error::from_errno(err, fmt::format("cannot create '{}'", printable(tmp_path)));
  auto fail = [&](Error e) -> Status {
    ::unlinkat(dfd.get(), tmp.c_str(), 0);
    return e;
  };
  // The umask only takes bits away at create time: a file meant to be read by
  // another user (0644 metrics for node_exporter) must get them back.
  if (access.group >= 0 && ::fchown(fd.get(), static_cast<uid_t>(-1), static_cast<gid_t>(access.group)) != 0)
    return fail(Error::from_errno(errno, fmt::format("cannot give '{}' group {}", printable(tmp_path), access.group)));
  if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0)
    return fail(Error::from_errno(errno, fmt::format("cannot chmod '{}'", printable(tmp_path))));
  if (auto st = write_all(fd.get(), data.data(), data.size()); !st.ok())
    return fail(std::move(st).error().context(fmt::format("cannot write '{}'", printable(tmp_path))));
  if (sync == FileSync::kSync && ::fsync(fd.get()) != 0)
    return fail(Error::from_errno(errno, fmt::format("cannot write '{}'", printable(tmp_path))));
  if (::close(fd.release()) != 0) return fail(Error::from_errno(errno, fmt::format("cannot write '{}'", printable(tmp_path))));
  if (::renameat(dfd.get(), tmp.c_str(), dfd.get(), base.c_str()) != 0)
    return fail(Error::from_errno(errno, fmt::format("cannot rename '{}' to '{}'", printable(tmp_path), printable(path))));
  if (sync == FileSync::kSync) ::fsync(dfd.get());
  return {};
}

Result<int> group_id(const std::string& name) {
  struct group g {};
  struct group* found = nullptr;
  std::vector<char> buf(16384);
  int rc = ::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found);
  if (rc != 0) return Error::from_errno(rc, fmt::format("cannot look up group '{}'", printable(name)));
  if (found == nullptr) return Error::invalid(fmt::format("no group '{}' on this host", printable(name)));
  return static_cast<int>(found->gr_gid);
}

Status make_dirs(const std::string& path, int mode) {
  if (path.empty()) return {};
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      cur = path.substr(0, i);
      if (!cur.empty() && ::mkdir(cur.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST)
        return Error::from_errno(errno, fmt::format("cannot create directory '{}'", printable(cur)));
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Error::invalid(fmt::format("'{}' exists and is not a directory", printable(path)));
  return {};
}

}  // namespace mailshard
