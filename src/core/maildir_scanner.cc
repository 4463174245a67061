#include "core/maildir_scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "util/fs.h"
#include "util/strings.h"

namespace mailshard {
namespace {

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

struct ScanState {
  MailboxSize result;
  // Inodes whose size was counted from a name (no stat, so no link count):
  // hard-linked copies (Dovecot copies messages with link()) are counted once,
  // as du does, by sorting these at the end.
  std::vector<std::pair<ino_t, int64_t>> named;
  std::string path;  // for messages only
};

bool is_dot(const char* n) { return n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0)); }

Error scan_error(int err, const ScanState& st, const char* name = nullptr) {
  std::string p = st.path;
  if (name) p += std::string("/") + name;
  return Error::from_errno(err, fmt::format("scan '{}'", printable(p)));
}

Status walk(int fd, bool message_dir, int depth, ScanState& st) {
  struct stat dst;
  if (fstat(fd, &dst) != 0) {
    int err = errno;
    close(fd);
    return scan_error(err, st);
  }
  st.result.bytes += dst.st_size;
  DIR* d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    return scan_error(err, st);
  }
  struct DirCloser {
    DIR* d;
    ~DirCloser() { closedir(d); }
  } closer{d};
  const int dfd = dirfd(d);

  while (true) {
    errno = 0;
    struct dirent* e = readdir(d);
    if (!e) {
      if (errno != 0) return scan_error(errno, st);
      break;
    }
    const char* name = e->d_name;
    if (is_dot(name)) continue;
    unsigned char type = e->d_type;

    if (type == DT_REG && message_dir) {
      if (auto size = maildir_name_size(name)) {
        st.result.bytes += *size;
        st.named.emplace_back(e->d_ino, *size);
        ++st.result.messages;
        ++st.result.files;
        continue;
      }
    }
    if (type != DT_DIR) {
      // Names without S=, non-message files, symlinks (the link itself),
      // and filesystems that do not fill d_type.
      struct stat sb;
      ++st.result.stat_calls;
      if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed while we scanned (a delivery moved tmp/ -> new/)
        return scan_error(errno, st, name);
      }
      if (!S_ISDIR(sb.st_mode)) {
        st.result.bytes += sb.st_size;
        if (sb.st_nlink > 1 && S_ISREG(sb.st_mode)) st.named.emplace_back(sb.st_ino, sb.st_size);
        ++st.result.files;
        if (message_dir && S_ISREG(sb.st_mode)) ++st.result.messages;
        continue;
      }
      // DT_UNKNOWN that turned out to be a directory: fall through.
    }
    if (depth + 1 > kMaxScanDepth) {
      return Error::invalid(fmt::format("scan '{}/{}': nested deeper than {} directories", printable(st.path),
                                        printable(name, 60), kMaxScanDepth));
    }
    int sub = openat(dfd, name, kDirFlags);
    if (sub < 0) {
      if (errno == ENOENT) continue;  // removed while we scanned
      if (errno == ELOOP || errno == ENOTDIR) {
        // Replaced by a symlink or a file between readdir and open: count it as that.
        struct stat sb;
        ++st.result.stat_calls;
        if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
          st.result.bytes += sb.st_size;
          ++st.result.files;
        }
        continue;
      }
      return scan_error(errno, st, name);
    }
    size_t len = st.path.size();
    st.path += '/';
    st.path += name;
    bool msg = std::strcmp(name, "cur") == 0 || std::strcmp(name, "new") == 0;
    Status r = walk(sub, msg, depth + 1, st);
    if (!r.ok()) return r;
    st.path.resize(len);
  }
  return {};
}

}  // namespace

std::optional<int64_t> maildir_name_size(std::string_view name) {
  size_t info = name.find(":2,");
  std::string_view base = name.substr(0, info);
  size_t pos = base.find(",S=");
  if (pos == std::string_view::npos) return std::nullopt;
  pos += 3;
  int64_t v = 0;
  size_t digits = 0;
  while (pos < base.size() && base[pos] >= '0' && base[pos] <= '9') {
    if (v > (INT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + (base[pos] - '0');
    ++pos;
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (pos < base.size() && base[pos] != ',') return std::nullopt;
  return v;
}

Result<int> open_home(const std::string& mail_root, const std::string& home_rel) {
  UniqueFd fd(open(mail_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(errno, fmt::format("mail_root '{}'", printable(mail_root)));
  std::string walked;
  for (const auto& part : split(home_rel, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") return Error::invalid(fmt::format("home '{}' contains '..'", printable(home_rel)));
    walked += walked.empty() ? part : "/" + part;
    int next = openat(fd.get(), part.c_str(), kDirFlags);
    if (next < 0) {
      int err = errno;
      if (err == ENOENT) return -1;
      // O_NOFOLLOW|O_DIRECTORY on a symlink fails with ELOOP or ENOTDIR
      // depending on the kernel: lstat tells which it was.
      struct stat sb;
      if ((err == ELOOP || err == ENOTDIR) && fstatat(fd.get(), part.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(sb.st_mode))
        return Error::invalid(fmt::format("'{}' under mail_root '{}' is a symbolic link (never followed)",
                                          printable(walked), printable(mail_root)));
      if (err == ENOTDIR)
        return Error::invalid(fmt::format("'{}' under mail_root '{}' is not a directory", printable(walked),
                                          printable(mail_root)));
      return Error::from_errno(err, fmt::format("open '{}' under mail_root '{}'", printable(walked), printable(mail_root)));
    }
    fd = UniqueFd(next);
  }
  return fd.release();
}

Result<MailboxSize> scan_tree(int dir_fd, const std::string& shown) {
  ScanState st;
  st.path = shown;
  st.result.messages = 0;
  MS_CHECK(walk(dir_fd, false, 0, st));
  if (!st.named.empty()) {
    std::sort(st.named.begin(), st.named.end());
    for (size_t i = 1; i < st.named.size(); ++i)
      if (st.named[i].first == st.named[i - 1].first) st.result.bytes -= st.named[i].second;
  }
  return std::move(st.result);
}

}  // namespace mailshard
