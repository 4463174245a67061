#include "store/root_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <atomic>
#include <future>

#include <fmt/format.h>

#include "store/content_hasher.h"
#include "store/rsync_delta.h"
#include "core/maildir_scanner.h"
#include "util/strings.h"

namespace mailshard::store {
namespace {

int64_t ts_ns(const struct timespec& ts) { return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec; }

struct timespec ns_ts(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1'000'000'000;
    ts.tv_sec -= 1;
  }
  return ts;
}

EntryType type_from_mode(mode_t m) {
  if (S_ISREG(m)) return EntryType::kFile;
  if (S_ISDIR(m)) return EntryType::kDir;
  if (S_ISLNK(m)) return EntryType::kSymlink;
  return EntryType::kOther;
}

EntryType type_from_dtype(unsigned char t) {
  switch (t) {
    case DT_REG: return EntryType::kFile;
    case DT_DIR: return EntryType::kDir;
    case DT_LNK: return EntryType::kSymlink;
    case DT_UNKNOWN: return EntryType::kUnknown;
    default: return EntryType::kOther;
  }
}

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
}  // namespace

// Open parent directories by path, kept for the life of one call or stream
// (requests come sorted by directory, so most lookups hit).
class DirCache {
 public:
  explicit DirCache(const RootFs& fs) : fs_(fs) {}
  // Directory fds stay open until trim() or the end of the cache: callers
  // trim between their items, never while holding an fd from it.
  Result<int> get(const std::string& dir) {
    auto it = fds_.find(dir);
    if (it != fds_.end()) return it->second.get();
    auto fd = fs_.open_dir(dir);
    if (!fd.ok()) return std::move(fd).error();
    int raw = fd->get();
    fds_.emplace(dir, std::move(*fd));
    return raw;
  }
  // Parent fd and last component of path.
  Result<std::pair<int, std::string>> parent(const std::string& path) {
    MS_CHECK(check_relative_path(path));
    if (path.empty()) return Error::invalid("the mail root has no parent directory");
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? std::string() : path.substr(0, slash);
    int fd = MS_TRY(get(dir).context(fmt::format("'{}'", printable(path))));
    return std::make_pair(fd, slash == std::string::npos ? path : path.substr(slash + 1));
  }
  void trim() {
    if (fds_.size() >= 512) fds_.clear();
  }
  // `path` and everything below it may name other directories now (renamed
  // or removed): looked up again next time.
  void forget(const std::string& path) {
    for (auto it = fds_.begin(); it != fds_.end();) {
      const std::string& k = it->first;
      bool under = path.empty() || k == path || (k.size() > path.size() && k[path.size()] == '/' &&
                                                 k.compare(0, path.size(), path) == 0);
      it = under ? fds_.erase(it) : std::next(it);
    }
  }

 private:
  const RootFs& fs_;
  std::unordered_map<std::string, UniqueFd> fds_;
};

namespace {

Error errno_error(int err, std::string_view what, const std::string& path) {
  return Error::from_errno(err, fmt::format("{} '{}'", what, printable(path)));
}

// Opens a regular file for reading beneath a directory fd, without following
// a symlink and without blocking on a FIFO; kInvalidInput if not regular.
Result<UniqueFd> open_regular(int dirfd, const std::string& name, const std::string& path, struct ::stat* st) {
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return path_error(errno, "cannot open", path);
  UniqueFd owned(fd);
  if (::fstat(fd, st) != 0) return errno_error(errno, "cannot stat", path);
  if (!S_ISREG(st->st_mode)) return Error::invalid(fmt::format("'{}' is not a regular file", printable(path)));
  return owned;
}

// Feeds [from, to) of fd into the hasher.
Status hash_range(int fd, int64_t from, int64_t to, ContentHasher& h, std::vector<char>& buf) {
  int64_t off = from;
  while (off < to) {
    size_t want = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(buf.size()), to - off));
    ssize_t n = ::pread(fd, buf.data(), want, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read");
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    off += n;
  }
  return {};
}

std::string random_token() {
  uint32_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != sizeof v) v = static_cast<uint32_t>(::getpid()) ^ static_cast<uint32_t>(time(nullptr));
  return fmt::format("{:08x}", v);
}

// ---------------------------------------------------------------------------
// Reading

class RootSourceFile final : public SourceFile {
 public:
  RootSourceFile(UniqueFd fd, const struct ::stat& st, ReadSpec spec, std::vector<char>& buf,
                 std::unique_ptr<DeltaJob> delta)
      : fd_(std::move(fd)), spec_(std::move(spec)), buf_(buf), delta_(std::move(delta)) {
    attrs_ = attrs_from_stat(st);
    size_ = st.st_size;
    if (spec_.want_blocks || spec_.mode == ReadSpec::Mode::kBlockDiff)
      hasher_.set_blocks(spec_.block_size, spec_.block_seed);
    pos_ = spec_.mode == ReadSpec::Mode::kWhole ? std::min(spec_.offset, size_) : 0;
    // Fewer blocks than bytes: holes, which the body skips (the hash covers them as zeros).
    sparse_ = static_cast<int64_t>(st.st_blocks) * 512 < st.st_size;
  }

  const FileAttrs& attrs() const override { return attrs_; }
  int native_fd() const override {
    return spec_.mode == ReadSpec::Mode::kWhole && spec_.offset == 0 && !chunked_ ? fd_.get() : -1;
  }

  Result<bool> next_chunk(Chunk& out) override {
    chunked_ = true;
    switch (spec_.mode) {
      case ReadSpec::Mode::kWhole: return next_whole(out);
      case ReadSpec::Mode::kBlockDiff: return next_blockdiff(out);
      case ReadSpec::Mode::kDelta: return next_delta(out);
    }
    return Error::internal("bad read mode");
  }

  Result<SourceTrailer> finish() override {
    if (!trailer_) {
      auto t = finish_once();
      if (!t.ok()) return std::move(t).error();
      trailer_ = std::move(*t);
    }
    return *trailer_;
  }

 private:
  Result<SourceTrailer> finish_once() {
    // Whatever the body did not feed into the hasher (native copies, tails'
    // prefixes, a consumer that stopped early) is hashed now.
    if (spec_.mode == ReadSpec::Mode::kWhole || !chunked_) {
      if (hasher_.fed() < size_) MS_CHECK(hash_range(fd_.get(), hasher_.fed(), size_, hasher_, buf_));
      if (hasher_.fed() < size_) short_read_ = true;
    }
    if (spec_.mode == ReadSpec::Mode::kDelta && chunked_ && !delta_done_) {
      Chunk c;
      while (true) {
        auto more = next_delta(c);
        if (!more.ok()) return std::move(more).error();
        if (!*more) break;
      }
    }
    if (spec_.mode == ReadSpec::Mode::kBlockDiff && chunked_ && !block_eof_) {
      Chunk c;
      while (true) {
        auto more = next_blockdiff(c);
        if (!more.ok()) return std::move(more).error();
        if (!*more) break;
      }
    }
    SourceTrailer t;
    t.hash = hasher_.digest();
    t.size = hasher_.fed();
    struct ::stat st;
    if (::fstat(fd_.get(), &st) != 0) return Error::from_errno(errno, "fstat");
    t.stable = !short_read_ && st.st_size == size_ && ts_ns(st.st_mtim) == attrs_.mtime_ns &&
               ts_ns(st.st_ctim) == attrs_.ctime_ns;
    if (spec_.want_blocks || spec_.mode == ReadSpec::Mode::kBlockDiff) t.new_blocks = hasher_.take_blocks();
    if (!spec_.want_blocks) t.new_blocks.clear();
    return t;
  }

  // Reads up to n bytes at off into buf_; 0 at EOF (which before size_ means
  // the file shrank while we read it).
  Result<size_t> read_at(int64_t off, size_t n) {
    while (true) {
      ssize_t r = ::pread(fd_.get(), buf_.data(), std::min(n, buf_.size()), off);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Error::from_errno(errno, "read");
      return static_cast<size_t>(r);
    }
  }

  Result<bool> next_whole(Chunk& out) {
    if (hasher_.fed() < pos_) MS_CHECK(hash_range(fd_.get(), hasher_.fed(), pos_, hasher_, buf_));  // tail: prefix
    if (pos_ >= size_) return false;
    int64_t end = size_;
    if (sparse_) {
      // Only the data extents travel; a chunk offset past the previous end
      // is a hole, and the writer leaves one too.
      off_t data = ::lseek(fd_.get(), pos_, SEEK_DATA);
      if (data < 0 && errno != ENXIO) return Error::from_errno(errno, "lseek SEEK_DATA");
      int64_t next = data < 0 ? size_ : std::min<int64_t>(data, size_);  // ENXIO: a hole to the end
      hasher_.update_zeros(next - pos_);
      pos_ = next;
      if (pos_ >= size_) return false;
      off_t hole = ::lseek(fd_.get(), pos_, SEEK_HOLE);
      if (hole > pos_) end = std::min<int64_t>(hole, size_);
    }
    size_t n = MS_TRY(read_at(pos_, static_cast<size_t>(end - pos_)));
    if (n == 0) {
      short_read_ = true;
      return false;
    }
    hasher_.update(buf_.data(), n);
    out = Chunk{pos_, buf_.data(), n};
    pos_ += static_cast<int64_t>(n);
    return true;
  }

  // Changed blocks of the current window, emitted one run at a time.
  Result<bool> next_blockdiff(Chunk& out) {
    const uint32_t bs = spec_.block_size;
    if (bs == 0) return Error::invalid("block diff without a block size");
    while (true) {
      if (run_idx_ < runs_.size()) {
        auto [start, len] = runs_[run_idx_++];
        out = Chunk{window_off_ + static_cast<int64_t>(start), buf_.data() + start, len};
        return true;
      }
      if (block_eof_) return false;
      // Next window: a whole number of blocks.
      size_t window = std::max<size_t>(bs, (buf_.size() / bs) * bs);
      if (buf_.size() < window) buf_.resize(window);
      int64_t off = hasher_.fed();
      if (off >= size_) {
        block_eof_ = true;
        return false;
      }
      size_t want = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(window), size_ - off));
      size_t got = 0;
      while (got < want) {
        ssize_t r = ::pread(fd_.get(), buf_.data() + got, want - got, off + static_cast<int64_t>(got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return Error::from_errno(errno, "read");
        if (r == 0) break;
        got += static_cast<size_t>(r);
      }
      if (got < want) short_read_ = true;
      if (got == 0) {
        block_eof_ = true;
        return false;
      }
      hasher_.update(buf_.data(), got);
      window_off_ = off;
      runs_.clear();
      run_idx_ = 0;
      size_t first_block = static_cast<size_t>(off / bs);
      for (size_t b = 0; b * bs < got; ++b) {
        size_t start = b * bs, len = std::min<size_t>(bs, got - start);
        size_t idx = first_block + b;
        bool same = idx < spec_.old_blocks.size() && block_hash(buf_.data() + start, len, spec_.block_seed) ==
                                                         spec_.old_blocks[idx];
        // The old last block may have been partial: a same-hash match then
        // only holds if the lengths agree, which the hash itself covers.
        if (same) continue;
        if (!runs_.empty() && runs_.back().first + runs_.back().second == start)
          runs_.back().second += len;
        else
          runs_.emplace_back(start, len);
      }
      if (got < want) block_eof_ = true;
    }
  }

  Result<bool> next_delta(Chunk& out) {
    delta_out_.clear();
    while (delta_out_.empty() && !delta_done_) {
      int64_t off = hasher_.fed();
      size_t n = 0;
      if (off < size_) {
        n = MS_TRY(read_at(off, static_cast<size_t>(size_ - off)));
        if (n == 0) short_read_ = true;
        hasher_.update(buf_.data(), n);
      }
      bool eof = n == 0 || hasher_.fed() >= size_;
      MS_CHECK(delta_->feed(buf_.data(), n, eof, [&](const char* d, size_t k) -> Status {
        delta_out_.append(d, k);
        return {};
      }));
      if (eof) delta_done_ = true;
    }
    if (delta_out_.empty()) return false;
    out = Chunk{delta_pos_, delta_out_.data(), delta_out_.size()};
    delta_pos_ += static_cast<int64_t>(delta_out_.size());
    return true;
  }

  UniqueFd fd_;
  ReadSpec spec_;
  std::vector<char>& buf_;
  std::unique_ptr<DeltaJob> delta_;
  FileAttrs attrs_;
  int64_t size_ = 0;
  int64_t pos_ = 0;
  bool chunked_ = false;
  bool short_read_ = false;
  bool sparse_ = false;
  ContentHasher hasher_;
  // block diff
  std::vector<std::pair<size_t, size_t>> runs_;
  size_t run_idx_ = 0;
  int64_t window_off_ = 0;
  bool block_eof_ = false;
  // delta
  std::string delta_out_;
  int64_t delta_pos_ = 0;
  bool delta_done_ = false;
  std::optional<SourceTrailer> trailer_;
};

class RootReader final : public FileReader {
 public:
  RootReader(const RootFs& fs, std::vector<ReadSpec> specs)
      : dirs_(fs), specs_(std::move(specs)), buf_(kIoChunk) {}

  Result<Item> next() override {
    current_.reset();
    if (idx_ >= specs_.size()) return Error::not_found("no more files");
    ReadSpec& spec = specs_[idx_++];
    Item item;
    dirs_.trim();
    auto parent = dirs_.parent(spec.path);
    if (!parent.ok()) {
      if (parent.error().code() == ErrorCode::kNotFound) {
        item.status = ReadStatus::kVanished;
        return item;
      }
      item.status = ReadStatus::kFailed;
      item.error = std::move(parent).error();
      return item;
    }
    struct ::stat st;
    auto fd = open_regular(parent->first, parent->second, spec.path, &st);
    if (!fd.ok()) {
      const Error& e = fd.error();
      if (e.code() == ErrorCode::kNotFound) {
        item.status = ReadStatus::kVanished;
      } else if (e.code() == ErrorCode::kInvalidInput) {
        item.status = ReadStatus::kNotRegular;  // a symlink (ELOOP) or a directory or a FIFO now
      } else {
        item.status = ReadStatus::kFailed;
        item.error = std::move(fd).error();
      }
      return item;
    }
    std::unique_ptr<DeltaJob> delta;
    if (spec.mode == ReadSpec::Mode::kDelta) {
      auto job = DeltaJob::start(spec.signature);
      if (!job.ok()) {
        item.status = ReadStatus::kFailed;
        item.error = std::move(job).error().context(fmt::format("delta of '{}'", printable(spec.path)));
        return item;
      }
      delta = std::move(*job);
      spec.signature.clear();
      spec.signature.shrink_to_fit();
    }
    current_ = std::make_unique<RootSourceFile>(std::move(*fd), st, std::move(spec), buf_, std::move(delta));
    item.file = current_.get();
    return item;
  }

 private:
  DirCache dirs_;
  std::vector<ReadSpec> specs_;
  size_t idx_ = 0;
  std::vector<char> buf_;
  std::unique_ptr<RootSourceFile> current_;
};

// ---------------------------------------------------------------------------
// Writing

class RootWriter final : public FileWriter {
 public:
  RootWriter(const RootFs& fs, WriterOptions options)
      : fs_(fs), options_(options), token_(random_token()), buf_(kIoChunk) {}
  ~RootWriter() override { abandon(); }

  Status write(const WriteSpec& spec, SourceFile& src) override {
    Pending p;
    p.path = spec.path;
    auto parent = parent_dir(spec.path);
    if (!parent.ok()) return fail_and_drain(p, std::move(parent).error(), src);
    p.dir = parent->first;
    p.name = parent->second;
    if (auto st = create_temp(p); !st.ok())
      return fail_and_drain(p, std::move(st).error().context(fmt::format("'{}'", printable(spec.path))), src);

    Result<Hash128> written = Error::internal("unset");
    switch (spec.kind) {
      case WriteSpec::Kind::kNew: written = write_new(p, spec, src); break;
      case WriteSpec::Kind::kPatch: written = write_patch(p, spec, src); break;
      case WriteSpec::Kind::kDelta: written = write_delta(p, spec, src); break;
    }
    if (!written.ok()) {
      // A broken stream ends the batch; a local write error (ENOSPC, EIO)
      // fails this file only.
      if (stream_broken_) {
        discard(p);
        return std::move(written).error();
      }
      return fail_and_drain(p, std::move(written).error().context(fmt::format("write '{}'", printable(spec.path))), src);
    }
    auto trailer = src.finish();
    if (!trailer.ok()) {
      discard(p);
      return std::move(trailer).error();
    }
    p.result.hash = *written;
    if (!trailer->stable) {
      p.result.status = WriteStatus::kSourceChanged;
    } else if (!(trailer->hash == *written)) {
      p.result.status = WriteStatus::kHashMismatch;
      p.result.error = Error::verify_failed(fmt::format("'{}': written copy hashes to {}, source to {}",
                                                        printable(spec.path), written->hex(), trailer->hash.hex()));
    } else if (auto st = set_attrs(p.fd.get(), spec.attrs); !st.ok()) {
      p.result.status = WriteStatus::kFailed;
      p.result.error = std::move(st).error().context(fmt::format("'{}'", printable(spec.path)));
    }
    if (p.result.status != WriteStatus::kOk) discard(p);
    pending_.push_back(std::move(p));
    // Unnamed temps live only as open fds: a full sub-batch is made durable
    // and published in the background while the next one is written (the
    // device flushes while we copy), at most one sub-batch in flight.
    if (++open_fds_ >= max_open_) MS_CHECK(publish_in_background());
    return {};
  }

  Result<std::vector<WriteResult>> commit() override {
    MS_CHECK(wait_in_flight());
    std::vector<Pending> batch = std::move(pending_);
    pending_.clear();
    open_fds_ = 0;
    auto [st, results] = publish_batch(std::move(batch));
    for (auto& r : results) done_.push_back(std::move(r));
    MS_CHECK(st);
    std::vector<WriteResult> out;
    out.reserve(done_.size());
    for (auto& r : done_) out.push_back(std::move(r));
    done_.clear();
    return out;
  }

 private:
  // Temps held open per sub-batch (unnamed temps exist only as fds; two
  // sub-batches may be open): 1000, or less under a low RLIMIT_NOFILE.
  static int max_open_temps() {
    struct rlimit rl;
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 100;
    int64_t budget = (static_cast<int64_t>(rl.rlim_cur) - 128) / 4;
    return static_cast<int>(std::clamp<int64_t>(budget, 16, 1000));
  }
  struct Pending {
    std::string path, name;
    std::string tmp;  // named temp (fallback); "" for an O_TMPFILE inode
    std::shared_ptr<UniqueFd> dir;
    UniqueFd fd;
    bool created = false;
    WriteResult result;
  };

  // An unnamed O_TMPFILE inode in the target directory: it has no name until
  // it is complete, durable and linked, so a crash leaves nothing behind.
  // Filesystems without O_TMPFILE get a named ".mailshard-tmp-*" file.
  Status create_temp(Pending& p) {
    if (use_tmpfile_) {
      int fd = ::openat(p.dir->get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (fd >= 0) {
        p.fd.reset(fd);
        p.created = true;
        return {};
      }
      if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return Error::from_errno(errno, "cannot create temp file");
      use_tmpfile_ = false;
    }
    p.tmp = fmt::format("{}{}-{}", kTempPrefix, token_, seq_++);
    int fd = ::openat(p.dir->get(), p.tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Error::from_errno(errno, "cannot create temp file");
    p.fd.reset(fd);
    p.created = true;
    return {};
  }

  // Gives a complete, durable temp its final name (replacing an older file).
  Status publish(Pending& p) {
    int dfd = p.dir->get();
    if (!p.tmp.empty()) {
      if (::renameat(dfd, p.tmp.c_str(), dfd, p.name.c_str()) != 0)
        return errno_error(errno, "cannot rename temp file to", p.path);
      p.created = false;
      return {};
    }
    auto link_to = [&](const std::string& name) -> int {
      if (!no_empty_path_ && ::linkat(p.fd.get(), "", dfd, name.c_str(), AT_EMPTY_PATH) == 0) return 0;
      if (!no_empty_path_ && errno != ENOENT && errno != EPERM) return errno;
      no_empty_path_ = true;  // needs CAP_DAC_READ_SEARCH: go through /proc instead
      std::string proc = fmt::format("/proc/self/fd/{}", p.fd.get());
      return ::linkat(AT_FDCWD, proc.c_str(), dfd, name.c_str(), AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
    };
    int e = link_to(p.name);
    if (e == EEXIST) {
      // Replacing a file: link under a temp name, then rename over it (atomic).
      std::string tmp = fmt::format("{}{}-{}", kTempPrefix, token_, seq_++);
      e = link_to(tmp);
      if (e == 0 && ::renameat(dfd, tmp.c_str(), dfd, p.name.c_str()) != 0) {
        e = errno;
        ::unlinkat(dfd, tmp.c_str(), 0);
      }
    }
    if (e != 0) return errno_error(e, "cannot publish", p.path);
    p.created = false;
    return {};
  }

  // Durable, then named, then the names durable: per sub-batch. Runs on
  // the writer's thread or on a background one; touches only the batch.
  std::pair<Status, std::vector<WriteResult>> publish_batch(std::vector<Pending> batch) {
    std::vector<WriteResult> out;
    out.reserve(batch.size());
    if (options_.durability == Durability::kSyncfs) {
      int any_dir = -1;
      for (auto& p : batch)
        if (p.result.status == WriteStatus::kOk) any_dir = p.dir->get();
      if (any_dir >= 0 && ::syncfs(any_dir) != 0) {
        int e = errno;
        for (auto& p : batch)
          if (p.result.status == WriteStatus::kOk) fail(p, errno_error(e, "syncfs before publishing", p.path));
      }
    } else {
      for (auto& p : batch)
        if (p.result.status == WriteStatus::kOk && ::fsync(p.fd.get()) != 0)
          fail(p, errno_error(errno, "fsync of temp file for", p.path));
    }
    std::vector<int> dirs;
    for (auto& p : batch) {
      if (p.result.status == WriteStatus::kOk) {
        if (auto st = publish(p); !st.ok()) {
          fail(p, std::move(st).error());
        } else if (std::find(dirs.begin(), dirs.end(), p.dir->get()) == dirs.end()) {
          dirs.push_back(p.dir->get());
        }
      }
      discard(p);
      out.push_back(std::move(p.result));
    }
    for (int d : dirs)
      if (::fsync(d) != 0) return {Error::from_errno(errno, "fsync of a directory after publishing"), std::move(out)};
    return {Status(), std::move(out)};
  }

  Status publish_in_background() {
    MS_CHECK(wait_in_flight());
    std::vector<Pending> batch = std::move(pending_);
    pending_.clear();
    open_fds_ = 0;
    in_flight_ = std::async(std::launch::async,
                            [this, b = std::move(batch)]() mutable { return publish_batch(std::move(b)); });
    return {};
  }

  Status wait_in_flight() {
    if (!in_flight_.valid()) return {};
    auto [st, results] = in_flight_.get();
    for (auto& r : results) done_.push_back(std::move(r));
    return st;
  }

  void fail(Pending& p, Error e) {
    p.result.status = WriteStatus::kFailed;
    p.result.error = std::move(e);
    discard(p);
  }

  Result<std::pair<std::shared_ptr<UniqueFd>, std::string>> parent_dir(const std::string& path) {
    MS_CHECK(check_relative_path(path));
    if (path.empty()) return Error::invalid("cannot write the mail root itself");
    std::string dir = parent_of(path);
    auto it = dirs_.find(dir);
    if (it == dirs_.end()) {
      if (dirs_.size() >= 512) dirs_.clear();
      auto fd = fs_.open_dir(dir);
      if (!fd.ok()) return std::move(fd).error();
      it = dirs_.emplace(dir, std::make_shared<UniqueFd>(std::move(*fd))).first;
    }
    return std::make_pair(it->second, base_of(path));
  }

  void discard(Pending& p) {
    p.fd.reset();
    if (p.created && p.dir && !p.tmp.empty()) ::unlinkat(p.dir->get(), p.tmp.c_str(), 0);
    p.created = false;
  }

  // Records a failed file and reads the rest of its body so the stream stays in step.
  Status fail_and_drain(Pending& p, Error e, SourceFile& src) {
    discard(p);
    Chunk c;
    while (true) {
      auto more = src.next_chunk(c);
      if (!more.ok()) return std::move(more).error();
      if (!*more) break;
    }
    auto t = src.finish();
    if (!t.ok()) return std::move(t).error();
    p.result.status = WriteStatus::kFailed;
    p.result.error = std::move(e);
    pending_.push_back(std::move(p));
    return {};
  }

  void throttle(size_t n) {
    if (options_.throttle) options_.throttle->consume(static_cast<int64_t>(n));
  }

  Status write_all_at(int fd, const char* data, size_t n, int64_t off) {
    while (n) {
      ssize_t w = ::pwrite(fd, data, n, off);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Error::from_errno(errno, "write");
      }
      data += w;
      n -= static_cast<size_t>(w);
      off += w;
    }
    return {};
  }

  // Pulls the next chunk; a failure here is the stream's, not the file's.
  Result<bool> pull(SourceFile& src, Chunk& c) {
    auto r = src.next_chunk(c);
    if (!r.ok()) stream_broken_ = true;
    return r;
  }

  Result<Hash128> hash_temp(int fd) {
    ContentHasher h;
    struct ::stat st;
    if (::fstat(fd, &st) != 0) return Error::from_errno(errno, "fstat");
    MS_CHECK(hash_range(fd, 0, st.st_size, h, buf_));
    return h.digest();
  }

  Result<Hash128> write_new(Pending& p, const WriteSpec& spec, SourceFile& src) {
    // Both ends in this process: big files are copied by the kernel
    // (copy_file_range; a reflink where the filesystem can) and the temp is
    // re-read to hash it. Small files (most mail: median ~8 KiB) go through
    // one buffer that is hashed as it is written: one copy less and two
    // syscalls less per file, and the hash is of the very bytes written.
    int in = src.attrs().size >= kKernelCopyMin ? src.native_fd() : -1;
    const int64_t size = src.attrs().size;
    if (in >= 0) {
      // Both ends in this process: let the kernel copy (and reflink where
      // it can) the data extents; holes stay holes.
      loff_t off = 0;
      bool fallback = false;
      while (off < size) {
        off_t data = ::lseek(in, off, SEEK_DATA);
        if (data < 0) {
          if (errno == ENXIO) break;  // a hole to the end
          return Error::from_errno(errno, "lseek SEEK_DATA");
        }
        off_t hole = ::lseek(in, data, SEEK_HOLE);
        int64_t end = hole > data ? std::min<int64_t>(hole, size) : size;
        loff_t off_in = data, off_out = data;
        bool shrank = false;
        while (off_in < end) {
          size_t want = static_cast<size_t>(std::min<int64_t>(end - off_in, options_.throttle ? (1 << 20) : (1ll << 30)));
          throttle(want);
          ssize_t n = ::copy_file_range(in, &off_in, p.fd.get(), &off_out, want, 0);
          if (n < 0) {
            if (errno == EINTR) continue;
            if ((errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) &&
                p.result.body_bytes == 0) {
              fallback = true;
              break;
            }
            return Error::from_errno(errno, "copy_file_range");
          }
          if (n == 0) {
            shrank = true;  // finish() reports it as changed
            break;
          }
          p.result.body_bytes += n;
        }
        if (fallback || shrank) break;
        off = end;
      }
      if (!fallback) {
        if (::ftruncate(p.fd.get(), size) != 0) return Error::from_errno(errno, "ftruncate");
        return hash_temp(p.fd.get());
      }
    }
    ContentHasher h;
    Chunk c;
    int64_t expect = 0;
    while (true) {
      bool more = MS_TRY(pull(src, c));
      if (!more) break;
      if (c.offset < expect || c.offset > size - static_cast<int64_t>(c.size)) {
        stream_broken_ = true;
        return Error::corrupt(fmt::format("chunk {}+{} where offset {}..{} was expected", c.offset, c.size, expect, size));
      }
      h.update_zeros(c.offset - expect);  // a hole of a sparse source: left unwritten
      throttle(c.size);
      MS_CHECK(write_all_at(p.fd.get(), c.data, c.size, c.offset));
      h.update(c.data, c.size);
      expect = c.offset + static_cast<int64_t>(c.size);
      p.result.body_bytes += static_cast<int64_t>(c.size);
    }
    if (expect < size) {  // the source ends in a hole
      h.update_zeros(size - expect);
      if (::ftruncate(p.fd.get(), size) != 0) return Error::from_errno(errno, "ftruncate");
    }
    return h.digest();
  }

  // Opens the current file at the final name as a basis ("" if none).
  Result<UniqueFd> open_basis(Pending& p, int64_t* size) {
    *size = 0;
    int fd = ::openat(p.dir->get(), p.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return UniqueFd();
      return path_error(errno, "cannot open basis", p.path);
    }
    UniqueFd owned(fd);
    struct ::stat st;
    if (::fstat(fd, &st) != 0) return Error::from_errno(errno, "fstat");
    if (!S_ISREG(st.st_mode)) return UniqueFd();
    *size = st.st_size;
    return owned;
  }

  Status copy_prefix(int from, int to, int64_t len) {
    // Reflink where the filesystem can (XFS, btrfs): the temp shares the
    // basis' blocks and only the patched ones are written.
    if (::ioctl(to, FICLONE, from) == 0) {
      if (::ftruncate(to, len) != 0) return Error::from_errno(errno, "ftruncate");
      return {};
    }
    loff_t off_in = 0, off_out = 0;
    while (off_out < len) {
      ssize_t n = ::copy_file_range(from, &off_in, to, &off_out, static_cast<size_t>(len - off_out), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) break;
        return Error::from_errno(errno, "copy_file_range");
      }
      if (n == 0) return {};
    }
    while (off_out < len) {  // plain read/write fallback
      ssize_t n = ::pread(from, buf_.data(), std::min<size_t>(buf_.size(), static_cast<size_t>(len - off_out)), off_out);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::from_errno(errno, "read");
      if (n == 0) return {};
      MS_CHECK(write_all_at(to, buf_.data(), static_cast<size_t>(n), off_out));
      off_out += n;
    }
    return {};
  }

  Result<Hash128> write_patch(Pending& p, const WriteSpec& spec, SourceFile& src) {
    int64_t basis_size = 0;
    UniqueFd basis = MS_TRY(open_basis(p, &basis_size));
    const int64_t size = src.attrs().size;
    if (basis.valid()) MS_CHECK(copy_prefix(basis.get(), p.fd.get(), std::min(basis_size, size)));
    if (::ftruncate(p.fd.get(), size) != 0) return Error::from_errno(errno, "ftruncate");
    Chunk c;
    while (true) {
      bool more = MS_TRY(pull(src, c));
      if (!more) break;
      if (c.offset < 0 || c.offset + static_cast<int64_t>(c.size) > size) {
        stream_broken_ = true;
        return Error::corrupt(fmt::format("patch range {}+{} beyond the file size {}", c.offset, c.size, size));
      }
      throttle(c.size);
      MS_CHECK(write_all_at(p.fd.get(), c.data, c.size, c.offset));
      p.result.body_bytes += static_cast<int64_t>(c.size);
    }
    return hash_temp(p.fd.get());
  }

  Result<Hash128> write_delta(Pending& p, const WriteSpec& spec, SourceFile& src) {
    int64_t basis_size = 0;
    UniqueFd basis = MS_TRY(open_basis(p, &basis_size));
    PatchJob job(basis.valid() ? basis.get() : -1);
    int64_t out_off = 0;
    auto out = [&](const char* d, size_t n) -> Status {
      MS_CHECK(write_all_at(p.fd.get(), d, n, out_off));
      out_off += static_cast<int64_t>(n);
      return {};
    };
    Chunk c;
    while (true) {
      bool more = MS_TRY(pull(src, c));
      throttle(more ? c.size : 0);
      if (more) p.result.body_bytes += static_cast<int64_t>(c.size);
      MS_CHECK(job.feed(more ? c.data : nullptr, more ? c.size : 0, !more, out));
      if (!more) break;
    }
    return hash_temp(p.fd.get());
  }

  Status set_attrs(int fd, const FileAttrs& a) {
    if (::fchown(fd, a.uid, a.gid) != 0) return Error::from_errno(errno, "cannot set owner");
    if (::fchmod(fd, a.mode & 07777) != 0) return Error::from_errno(errno, "cannot set mode");
    struct timespec ts[2] = {{0, UTIME_OMIT}, ns_ts(a.mtime_ns)};
    if (::futimens(fd, ts) != 0) return Error::from_errno(errno, "cannot set mtime");
    return {};
  }

  void abandon() {
    if (in_flight_.valid()) in_flight_.wait();
    for (auto& p : pending_) discard(p);
    pending_.clear();
  }
  std::vector<WriteResult> done_;
  std::future<std::pair<Status, std::vector<WriteResult>>> in_flight_;
  int max_open_ = max_open_temps();
  bool use_tmpfile_ = true;
  std::atomic<bool> no_empty_path_{false};

  const RootFs& fs_;
  WriterOptions options_;
  std::string token_;
  std::atomic<uint64_t> seq_{0};
  std::vector<char> buf_;
  std::unordered_map<std::string, std::shared_ptr<UniqueFd>> dirs_;
  std::vector<Pending> pending_;
  int open_fds_ = 0;
  bool stream_broken_ = false;
};

}  // namespace

void raise_open_file_limit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

FileAttrs attrs_from_stat(const struct ::stat& st) {
  FileAttrs a;
  a.type = type_from_mode(st.st_mode);
  a.mode = st.st_mode & 07777;
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.size = st.st_size;
  a.mtime_ns = ts_ns(st.st_mtim);
  a.ctime_ns = ts_ns(st.st_ctim);
  a.ino = st.st_ino;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  return a;
}

Result<std::unique_ptr<RootStore>> RootStore::open(const std::string& root, const Options& options) {
  auto fs = RootFs::open(root, options.resolver);
  if (!fs.ok()) return std::move(fs).error();
  return std::unique_ptr<RootStore>(new RootStore(std::move(*fs), options));
}

std::string RootStore::describe() const {
  return options_.name.empty() ? "local:" + fs_.root() : options_.name;
}

Result<TreeListing> RootStore::list_tree(const std::string& home) {
  UniqueFd top = MS_TRY(fs_.open_dir(home));
  TreeListing out;
  std::vector<char> buf(256 * 1024);
  // Depth-first, parents first; each directory's fd is open while it is read.
  struct Work {
    std::string rel;
    UniqueFd fd;
  };
  std::vector<Work> stack;
  stack.push_back({"", std::move(top)});
  while (!stack.empty()) {
    Work w = std::move(stack.back());
    stack.pop_back();
    DirListing d;
    d.path = w.rel;
    struct ::stat st;
    if (::fstat(w.fd.get(), &st) != 0) return errno_error(errno, "cannot stat", join_path(home, w.rel));
    d.attrs = attrs_from_stat(st);
    std::vector<std::string> subdirs;
    while (true) {
      ssize_t n = ::getdents64(w.fd.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error(errno, "cannot read directory", join_path(home, w.rel));
      }
      if (n == 0) break;
      for (ssize_t off = 0; off < n;) {
        auto* e = reinterpret_cast<struct dirent64*>(buf.data() + off);
        off += e->d_reclen;
        const char* name = e->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        EntryType t = type_from_dtype(e->d_type);
        if (t == EntryType::kUnknown) {  // some filesystems leave d_type empty
          struct ::stat es;
          if (::fstatat(w.fd.get(), name, &es, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished meanwhile
          t = type_from_mode(es.st_mode);
        }
        d.entries.push_back(DirEntry{name, t});
        if (t == EntryType::kDir) subdirs.emplace_back(name);
      }
    }
    // Push in reverse so that children come out in readdir order.
    for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it) {
      int fd = ::openat(w.fd.get(), it->c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        if (errno == ENOENT) continue;  // removed while we listed
        return path_error(errno, "cannot open directory", join_path(home, join_path(w.rel, *it)));
      }
      stack.push_back({join_path(w.rel, *it), UniqueFd(fd)});
    }
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::vector<StatResult>> RootStore::stat(const std::vector<StatRequest>& requests) {
  DirCache dirs(fs_);
  std::vector<StatResult> out;
  out.reserve(requests.size());
  std::vector<char> buf;
  for (const auto& rq : requests) {
    StatResult r;
    dirs.trim();
    auto parent = dirs.parent(rq.path);
    if (!parent.ok()) {
      r.error = std::move(parent).error();
      out.push_back(std::move(r));
      continue;
    }
    auto [dirfd, name] = std::move(*parent);
    struct ::stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      r.error = errno_error(errno, "cannot stat", rq.path);
      out.push_back(std::move(r));
      continue;
    }
    r.attrs = attrs_from_stat(st);
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlinkat(dirfd, name.c_str(), target, sizeof target);
      if (n < 0) r.error = errno_error(errno, "cannot read symlink", rq.path);
      else r.link_target.assign(target, static_cast<size_t>(n));
    } else if (S_ISREG(st.st_mode) && (rq.hash.whole || rq.hash.prefix_len >= 0)) {
      struct ::stat st2;
      auto fd = open_regular(dirfd, name, rq.path, &st2);
      if (!fd.ok()) {
        r.error = std::move(fd).error();
      } else {
        if (buf.empty()) buf.resize(kIoChunk);
        ContentHasher h;
        h.set_prefix(rq.hash.prefix_len);
        r.attrs = attrs_from_stat(st2);
        // Only the prefix is needed when the whole hash is not.
        int64_t upto = rq.hash.whole ? st2.st_size : std::min<int64_t>(st2.st_size, rq.hash.prefix_len);
        if (auto hs = hash_range(fd->get(), 0, upto, h, buf); !hs.ok()) {
          r.error = std::move(hs).error().context(fmt::format("'{}'", printable(rq.path)));
        } else {
          if (rq.hash.whole) r.hash = h.digest();
          if (h.has_prefix()) r.prefix_hash = h.prefix();
        }
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<Result<std::string>>> RootStore::head(const std::vector<std::string>& paths, uint32_t max_bytes) {
  std::vector<Result<std::string>> out;
  out.reserve(paths.size());
  DirCache dirs(fs_);
  for (const auto& path : paths) {
    dirs.trim();
    auto parent = dirs.parent(path);
    if (!parent.ok()) {
      out.emplace_back(std::move(parent).error());
      continue;
    }
    struct ::stat st;
    auto fd = open_regular(parent->first, parent->second, path, &st);
    if (!fd.ok()) {
      out.emplace_back(std::move(fd).error());
      continue;
    }
    std::string data(std::min<int64_t>(max_bytes, st.st_size), '\0');
    ssize_t n;
    do n = ::pread(fd->get(), data.data(), data.size(), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      out.emplace_back(errno_error(errno, "cannot read", path));
      continue;
    }
    data.resize(static_cast<size_t>(n));
    out.emplace_back(std::move(data));
  }
  return out;
}

Status RootStore::apply_one(const TreeOp& op, DirCache& dirs) {
  if (op.kind == TreeOp::Kind::kSyncDir || op.kind == TreeOp::Kind::kSyncFs) {
    auto fd = fs_.open_dir(op.path);
    if (!fd.ok()) return std::move(fd).error();
    if (op.kind == TreeOp::Kind::kSyncFs) {
      if (::syncfs(fd->get()) != 0) return errno_error(errno, "cannot syncfs", op.path);
    } else if (::fsync(fd->get()) != 0) {
      return errno_error(errno, "cannot fsync directory", op.path);
    }
    return {};
  }
  if (op.path.empty()) {
    // The root itself: it exists, and only its attributes can change.
    if (op.kind == TreeOp::Kind::kMkdir) return {};
    if (op.kind != TreeOp::Kind::kSetAttrs) return Error::invalid("this operation needs a path below the mail root");
    struct ::stat st;
    if (::fstat(fs_.root_fd(), &st) != 0) return errno_error(errno, "cannot stat", "");
    if ((op.attr_mask & TreeOp::kOwner) && ::fchown(fs_.root_fd(), op.attrs.uid, op.attrs.gid) != 0)
      return errno_error(errno, "cannot set owner of", "");
    if ((op.attr_mask & TreeOp::kMode) && ::fchmod(fs_.root_fd(), op.attrs.mode & 07777) != 0)
      return errno_error(errno, "cannot set mode of", "");
    struct timespec ts[2] = {{0, UTIME_OMIT}, ns_ts(op.attrs.mtime_ns)};
    if ((op.attr_mask & TreeOp::kMtime) && ::futimens(fs_.root_fd(), ts) != 0)
      return errno_error(errno, "cannot set mtime of", "");
    return {};
  }
  auto parent = dirs.parent(op.path);
  if (!parent.ok()) return std::move(parent).error();
  const int dfd = parent->first;
  const std::string& name = parent->second;
  const FileAttrs& a = op.attrs;
  // Owner, mode and mtime of an entry, never through a symlink: files and
  // directories via an fd opened with O_NOFOLLOW, symlinks with the *at calls.
  auto set_attrs = [&](int dirfd, const std::string& n, uint8_t mask) -> Status {
    struct ::stat st;
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno_error(errno, "cannot stat", op.path);
    struct timespec ts[2] = {{0, UTIME_OMIT}, ns_ts(a.mtime_ns)};
    if (S_ISLNK(st.st_mode)) {
      if ((mask & TreeOp::kOwner) && ::fchownat(dirfd, n.c_str(), a.uid, a.gid, AT_SYMLINK_NOFOLLOW) != 0)
        return errno_error(errno, "cannot set owner of", op.path);
      if ((mask & TreeOp::kMtime) && ::utimensat(dirfd, n.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
        return errno_error(errno, "cannot set mtime of", op.path);
      return {};
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
      return Error::invalid(fmt::format("'{}' is not a file, directory or symlink", printable(op.path)));
    int fd = ::openat(dirfd, n.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return path_error(errno, "cannot open", op.path);
    UniqueFd owned(fd);
    if ((mask & TreeOp::kOwner) && ::fchown(fd, a.uid, a.gid) != 0)
      return errno_error(errno, "cannot set owner of", op.path);
    if ((mask & TreeOp::kMode) && ::fchmod(fd, a.mode & 07777) != 0)
      return errno_error(errno, "cannot set mode of", op.path);
    if ((mask & TreeOp::kMtime) && ::futimens(fd, ts) != 0) return errno_error(errno, "cannot set mtime of", op.path);
    return {};
  };
  // A temp name next to the target, for replace-by-rename.
  auto temp_name = [&]() { return fmt::format("{}{}-op", kTempPrefix, random_token()); };

  switch (op.kind) {
    case TreeOp::Kind::kMkdir: {
      if (::mkdirat(dfd, name.c_str(), 0700) != 0) {
        int e = errno;
        struct ::stat st;
        if (e != EEXIST) return path_error(e, "cannot create directory", op.path);
        if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
          return Error::conflict(fmt::format("cannot create directory '{}': exists and is not a directory",
                                             printable(op.path)));
        return {};  // an existing directory keeps its attributes
      }
      return set_attrs(dfd, name, op.attr_mask);
    }
    case TreeOp::Kind::kRename: {
      auto from = dirs.parent(op.from);
      if (!from.ok()) return std::move(from).error();
      if (::renameat(from->first, from->second.c_str(), dfd, name.c_str()) != 0)
        return Error::from_errno(errno, fmt::format("cannot rename '{}' to '{}'", printable(op.from), printable(op.path)));
      return {};
    }
    case TreeOp::Kind::kPlace: {
      auto from = dirs.parent(op.from);
      if (!from.ok()) return std::move(from).error();
      auto exists_error = [&]() {
        return Error::conflict(fmt::format("cannot place '{}' at '{}': something is there", printable(op.from),
                                           printable(op.path)));
      };
      if (::renameat2(from->first, from->second.c_str(), dfd, name.c_str(), RENAME_NOREPLACE) == 0) return {};
      if (errno == EEXIST) return exists_error();
      if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return Error::from_errno(errno, fmt::format("cannot rename '{}' to '{}'", printable(op.from), printable(op.path)));
      // No RENAME_NOREPLACE here: link() never replaces either.
      if (::linkat(from->first, from->second.c_str(), dfd, name.c_str(), 0) != 0) {
        if (errno == EEXIST) return exists_error();
        return Error::from_errno(errno, fmt::format("cannot hard-link '{}' to '{}'", printable(op.from), printable(op.path)));
      }
      if (::unlinkat(from->first, from->second.c_str(), 0) != 0)
        return Error::from_errno(errno, fmt::format("cannot unlink '{}'", printable(op.from)));
      return {};
    }
    case TreeOp::Kind::kUnlink:
      if (::unlinkat(dfd, name.c_str(), 0) != 0) return path_error(errno, "cannot unlink", op.path);
      return {};
    case TreeOp::Kind::kRmdir:
      if (::unlinkat(dfd, name.c_str(), AT_REMOVEDIR) != 0) return path_error(errno, "cannot remove directory", op.path);
      return {};
    case TreeOp::Kind::kSymlink: {
      std::string tmp = temp_name();
      if (::symlinkat(op.from.c_str(), dfd, tmp.c_str()) != 0) return path_error(errno, "cannot create symlink", op.path);
      if (auto st = set_attrs(dfd, tmp, op.attr_mask & (TreeOp::kOwner | TreeOp::kMtime)); !st.ok()) {
        ::unlinkat(dfd, tmp.c_str(), 0);
        return st;
      }
      if (::renameat(dfd, tmp.c_str(), dfd, name.c_str()) != 0) {
        int e = errno;
        ::unlinkat(dfd, tmp.c_str(), 0);
        return path_error(e, "cannot create symlink", op.path);
      }
      return {};
    }
    case TreeOp::Kind::kLink: {
      auto from = dirs.parent(op.from);
      if (!from.ok()) return std::move(from).error();
      std::string tmp = temp_name();
      if (::linkat(from->first, from->second.c_str(), dfd, tmp.c_str(), 0) != 0)
        return Error::from_errno(errno, fmt::format("cannot hard-link '{}' to '{}'", printable(op.from), printable(op.path)));
      if (::renameat(dfd, tmp.c_str(), dfd, name.c_str()) != 0) {
        int e = errno;
        ::unlinkat(dfd, tmp.c_str(), 0);
        return path_error(e, "cannot hard-link", op.path);
      }
      return {};
    }
    case TreeOp::Kind::kSetAttrs: return set_attrs(dfd, name, op.attr_mask);
    case TreeOp::Kind::kSyncDir:
    case TreeOp::Kind::kSyncFs: break;
  }
  return Error::invalid("unknown tree operation");
}

// The parent directories are opened once per batch (a conversion renames
// thousands of messages in one cur/). Only rename, place and rmdir can move
// or remove a directory (the others' renameat/unlinkat fail on one): after
// them the cache forgets both paths and what is below them.
Result<std::vector<Status>> RootStore::apply(const std::vector<TreeOp>& ops) {
  std::vector<Status> out;
  out.reserve(ops.size());
  DirCache dirs(fs_);
  for (const auto& op : ops) {
    dirs.trim();
    out.push_back(apply_one(op, dirs));
    if (op.kind == TreeOp::Kind::kRename || op.kind == TreeOp::Kind::kPlace || op.kind == TreeOp::Kind::kRmdir) {
      dirs.forget(op.path);
      if (op.kind != TreeOp::Kind::kRmdir) dirs.forget(op.from);
    }
  }
  return out;
}

Result<Signature> RootStore::signature(const SignatureRequest& request) {
  auto parent = fs_.open_parent(request.path);
  if (!parent.ok()) return std::move(parent).error();
  struct ::stat st;
  UniqueFd fd = MS_TRY(open_regular(parent->first.get(), parent->second, request.path, &st));
  Signature sig;
  sig.basis = attrs_from_stat(st);
  sig.bytes = MS_TRY(make_signature(fd.get(), st.st_size, request.block_len, request.strong_len)
                         .context(fmt::format("'{}'", printable(request.path))));
  return sig;
}

Result<FsSpace> RootStore::space(const std::string& path) {
  UniqueFd fd = MS_TRY(fs_.open_dir(path));
  struct statvfs v;
  if (::fstatvfs(fd.get(), &v) != 0) return errno_error(errno, "cannot statvfs", path);
  FsSpace s;
  s.total_bytes = static_cast<int64_t>(v.f_blocks) * static_cast<int64_t>(v.f_frsize);
  s.avail_bytes = static_cast<int64_t>(v.f_bavail) * static_cast<int64_t>(v.f_frsize);
  return s;
}

namespace {

// After open_dir said kNotFound (ENOENT or ENOTDIR): true if some component
// of home is missing (a home never created), an error if one is not a directory.
Result<bool> home_is_missing(const RootFs& fs, const std::string& home) {
  for (size_t end = home.find('/');; end = home.find('/', end + 1)) {
    const std::string prefix = home.substr(0, end);
    auto fd = fs.open_path(prefix, O_PATH);
    if (!fd.ok()) {
      if (fd.error().code() == ErrorCode::kNotFound) return true;  // every component before it is a directory
      return std::move(fd).error();
    }
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) return errno_error(errno, "cannot stat", prefix);
    if (!S_ISDIR(st.st_mode)) return Error::invalid(fmt::format("'{}' is not a directory", printable(prefix)));
    if (end == std::string::npos) return false;
  }
}

Result<MailboxSize> size_one_home(const RootFs& fs, const std::string& home) {
  if (home.empty()) return Error::invalid("invalid path '': the mail root itself is not a home");
  auto dir = fs.open_dir(home);
  if (!dir.ok()) {
    if (dir.error().code() != ErrorCode::kNotFound) return std::move(dir).error();
    if (!MS_TRY(home_is_missing(fs, home))) return std::move(dir).error();  // it came back meanwhile
    MailboxSize none;  // never created (no mail delivered yet): 0 bytes, like the local scan
    none.exists = false;
    none.messages = 0;
    return none;
  }
  return scan_tree(dir->release(), home);
}

}  // namespace

Status RootStore::size_homes(const std::vector<std::string>& homes, const HomeSizeSink& sink) {
  for (size_t i = 0; i < homes.size(); ++i) MS_CHECK(sink(i, size_one_home(fs_, homes[i])));
  return {};
}

Result<std::unique_ptr<FileReader>> RootStore::open_reader(std::vector<ReadSpec> specs) {
  return std::unique_ptr<FileReader>(std::make_unique<RootReader>(fs_, std::move(specs)));
}

Result<std::unique_ptr<FileWriter>> RootStore::open_writer(const WriterOptions& options) {
  return std::unique_ptr<FileWriter>(std::make_unique<RootWriter>(fs_, options));
}

}  // namespace mailshard::store
