#include "util/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(errno, fmt::format("cannot read '{}'", printable(path)));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Error::from_errno(errno, fmt::format("cannot stat '{}'", printable(path)));
  if (!S_ISREG(st.st_mode)) return Error::invalid(fmt::format("cannot read '{}': not a regular file", printable(path)));
  if (static_cast<size_t>(st.st_size) > max_bytes)
    return Error::invalid(fmt::format("cannot read '{}': larger than {} bytes", printable(path), max_bytes));
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
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

Status write_file_atomic(const std::string& path, const std::string& data, int mode) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd.valid()) return Error::from_errno(errno, fmt::format("cannot create '{}'", printable(tmp)));
    auto st = write_all(fd.get(), data.data(), data.size());
    if (!st.ok() || ::fsync(fd.get()) != 0) {
      int e = st.ok() ? errno : EIO;
      ::unlink(tmp.c_str());
      return st.ok() ? Error::from_errno(e, fmt::format("cannot write '{}'", printable(tmp)))
                     : std::move(st).error().context(fmt::format("cannot write '{}'", printable(tmp)));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Error::from_errno(e, fmt::format("cannot rename '{}' to '{}'", printable(tmp), printable(path)));
  }
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.valid()) ::fsync(dfd.get());
  return {};
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
