#include "store/rsync_delta.h"

#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <librsync.h>

namespace mailshard::store {
namespace {

constexpr size_t kBuf = 256 * 1024;  // librsync wants >= ~32 KiB windows

void quiet_librsync() {
  static std::once_flag once;
  // Process-global: set once, before any job (librsync's default is INFO to stderr).
  std::call_once(once, [] { rs_trace_set_level(RS_LOG_ERR); });
}

Error rs_error(rs_result r, std::string_view what) {
  ErrorCode code = (r == RS_MEM_ERROR) ? ErrorCode::kInternal : ErrorCode::kCorrupt;
  if (r == RS_IO_ERROR) code = ErrorCode::kInternal;
  return Error(code, fmt::format("{}: librsync: {}", what, rs_strerror(r)));
}

// The rs_job_iter() loop over a caller-fed input: unconsumed input is kept in
// `pending` and offered again with the next feed.
struct Pump {
  rs_job_t* job = nullptr;
  std::string pending;
  std::vector<char> out = std::vector<char>(kBuf);

  // Returns true once the job reported RS_DONE.
  Result<bool> run(const char* data, size_t size, bool eof, const OutputFn& emit, std::string_view what) {
    pending.append(data, size);
    while (true) {
      rs_buffers_t b{};
      b.next_in = pending.data();
      b.avail_in = pending.size();
      b.eof_in = eof ? 1 : 0;
      b.next_out = out.data();
      b.avail_out = out.size();
      rs_result r = rs_job_iter(job, &b);
      size_t consumed = pending.size() - b.avail_in;
      size_t produced = static_cast<size_t>(b.next_out - out.data());
      if (consumed) pending.erase(0, consumed);
      if (produced) MS_CHECK(emit(out.data(), produced));
      if (r == RS_DONE) return true;
      if (r != RS_BLOCKED) return rs_error(r, what);
      if (consumed == 0 && produced == 0) {
        if (eof) return rs_error(RS_INPUT_ENDED, what);
        return false;  // needs more input
      }
    }
  }
};

}  // namespace

Result<std::string> make_signature(int fd, int64_t size, uint32_t block_len, uint32_t strong_len) {
  quiet_librsync();
  rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
  size_t bl = block_len, sl = strong_len;
  if (rs_result r = rs_sig_args(size, &magic, &bl, &sl); r != RS_DONE) return rs_error(r, "signature parameters");
  Pump p;
  p.job = rs_sig_begin(bl, sl, magic);
  if (!p.job) return Error::internal("rs_sig_begin failed");
  std::string sig;
  auto emit = [&](const char* d, size_t n) -> Status {
    sig.append(d, n);
    return {};
  };
  std::vector<char> buf(kBuf);
  int64_t off = 0;
  Result<bool> done = false;
  while (true) {
    size_t want = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(buf.size()), size - off));
    ssize_t n = want ? ::pread(fd, buf.data(), want, off) : 0;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rs_job_free(p.job);
      return Error::from_errno(errno, "read");
    }
    off += n;
    bool eof = (n == 0 || off >= size);
    done = p.run(buf.data(), static_cast<size_t>(n), eof, emit, "signature");
    if (!done.ok() || *done || eof) break;
  }
  rs_job_free(p.job);
  if (!done.ok()) return std::move(done).error();
  if (!*done) return Error::internal("signature: librsync did not finish");
  return sig;
}

struct DeltaJob::Impl {
  rs_signature_t* sig = nullptr;
  Pump pump;
  ~Impl() {
    if (pump.job) rs_job_free(pump.job);
    if (sig) rs_free_sumset(sig);
  }
};

Result<std::unique_ptr<DeltaJob>> DeltaJob::start(std::string_view signature) {
  quiet_librsync();
  if (signature.size() > kMaxSignatureBytes) return Error::corrupt("signature too large");
  std::unique_ptr<DeltaJob> job(new DeltaJob());
  job->impl_ = std::make_unique<Impl>();
  Impl& im = *job->impl_;
  // Load the signature.
  Pump load;
  load.job = rs_loadsig_begin(&im.sig);
  if (!load.job) return Error::internal("rs_loadsig_begin failed");
  auto ignore = [](const char*, size_t) -> Status { return {}; };
  auto loaded = load.run(signature.data(), signature.size(), true, ignore, "load signature");
  rs_job_free(load.job);
  if (!loaded.ok()) return std::move(loaded).error();
  if (!*loaded || !im.sig) return Error::corrupt("load signature: incomplete signature");
  if (rs_result r = rs_build_hash_table(im.sig); r != RS_DONE) return rs_error(r, "signature hash table");
  im.pump.job = rs_delta_begin(im.sig);
  if (!im.pump.job) return Error::internal("rs_delta_begin failed");
  return job;
}

DeltaJob::~DeltaJob() = default;

Status DeltaJob::feed(const char* data, size_t size, bool eof, const OutputFn& out) {
  if (done_) return size ? Status(Error::internal("delta: input after the end")) : Status();
  auto r = impl_->pump.run(data, size, eof, out, "delta");
  if (!r.ok()) return std::move(r).error();
  done_ = *r;
  if (eof && !done_) return Error::internal("delta: librsync did not finish");
  return {};
}

struct PatchJob::Impl {
  int basis_fd = -1;
  Pump pump;
  ~Impl() {
    if (pump.job) rs_job_free(pump.job);
  }
  // The copy callback: synchronous pread of the basis (never RS_BLOCKED).
  static rs_result copy_cb(void* arg, rs_long_t pos, size_t* len, void** buf) {
    int fd = *static_cast<int*>(arg);
    ssize_t n;
    do n = ::pread(fd, *buf, *len, static_cast<off_t>(pos));
    while (n < 0 && errno == EINTR);
    if (n < 0) return RS_IO_ERROR;
    if (n == 0) return RS_INPUT_ENDED;
    *len = static_cast<size_t>(n);
    return RS_DONE;
  }
};

PatchJob::PatchJob(int basis_fd) : impl_(std::make_unique<Impl>()) {
  quiet_librsync();
  impl_->basis_fd = basis_fd;
  impl_->pump.job = rs_patch_begin(&Impl::copy_cb, &impl_->basis_fd);
}

PatchJob::~PatchJob() = default;

Status PatchJob::feed(const char* data, size_t size, bool eof, const OutputFn& out) {
  if (!impl_->pump.job) return Error::internal("rs_patch_begin failed");
  if (done_) return size ? Status(Error::corrupt("patch: data after the end of the delta")) : Status();
  auto r = impl_->pump.run(data, size, eof, out, "patch");
  if (!r.ok()) return std::move(r).error();
  done_ = *r;
  if (eof && !done_) return Error::corrupt("patch: delta ended early");
  return {};
}

}  // namespace mailshard::store
