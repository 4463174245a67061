#include "wire/wire.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard::wire {

std::string_view msg_type_name(MsgType t) {
  switch (t) {
    case MsgType::kHello: return "HELLO";
    case MsgType::kHelloOk: return "HELLO_OK";
    case MsgType::kBye: return "BYE";
    case MsgType::kList: return "LIST";
    case MsgType::kStat: return "STAT";
    case MsgType::kHead: return "HEAD";
    case MsgType::kApply: return "APPLY";
    case MsgType::kSignature: return "SIGNATURE";
    case MsgType::kSpace: return "SPACE";
    case MsgType::kReadSpec: return "READ_SPEC";
    case MsgType::kBlob: return "BLOB";
    case MsgType::kReadGo: return "READ_GO";
    case MsgType::kSize: return "SIZE";
    case MsgType::kWriteBegin: return "WRITE_BEGIN";
    case MsgType::kFileBegin: return "FILE_BEGIN";
    case MsgType::kData: return "DATA";
    case MsgType::kFileEnd: return "FILE_END";
    case MsgType::kCommit: return "COMMIT";
    case MsgType::kCommitResult: return "COMMIT_RESULT";
    case MsgType::kListDir: return "LIST_DIR";
    case MsgType::kListEnd: return "LIST_END";
    case MsgType::kStatResult: return "STAT_RESULT";
    case MsgType::kHeadResult: return "HEAD_RESULT";
    case MsgType::kApplyResult: return "APPLY_RESULT";
    case MsgType::kSigEnd: return "SIG_END";
    case MsgType::kSpaceResult: return "SPACE_RESULT";
    case MsgType::kFileMeta: return "FILE_META";
    case MsgType::kReadEnd: return "READ_END";
    case MsgType::kWriteAbort: return "WRITE_ABORT";
    case MsgType::kSizeResult: return "SIZE_RESULT";
    case MsgType::kError: return "ERROR";
  }
  return "UNKNOWN";
}

namespace {
Error corrupt(std::string_view what) { return Error::corrupt(fmt::format("malformed frame: {}", what)); }

Result<bool> flag(Decoder& d) {
  uint8_t v = MS_TRY(d.u8());
  if (v > 1) return corrupt("bad flag");
  return v == 1;
}
}  // namespace

// ---------------------------------------------------------------------------
// Messages

std::string encode_hello(const Hello& h, bool with_server) {
  Encoder e;
  e.raw(std::string_view(kMagic, 4));
  e.u32(h.version);
  e.u32(h.max_frame);
  if (with_server) e.str(h.server);
  return e.take();
}

Result<Hello> decode_hello(std::string_view p, bool with_server) {
  if (p.size() < 4 || std::memcmp(p.data(), kMagic, 4) != 0) return corrupt("not a mailshard agent greeting");
  Decoder d(p.substr(4));
  Hello h;
  h.version = MS_TRY(d.u32());
  h.max_frame = MS_TRY(d.u32());
  if (with_server) h.server = MS_TRY(d.str());
  MS_CHECK(d.done());
  return h;
}

std::string encode_error(const Error& err) {
  Encoder e;
  e.error(err);
  return e.take();
}

Result<ErrorValue> decode_error(std::string_view p) {
  Decoder d(p);
  ErrorValue e = MS_TRY(d.error());
  MS_CHECK(d.done());
  return e;
}

std::string encode_stat_requests(const std::vector<StatRequest>& r, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    e.str(r[i].path);
    e.u8(r[i].hash.whole ? 1 : 0);
    e.i64(r[i].hash.prefix_len);
  }
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_stat_requests(std::string_view p, std::vector<StatRequest>& out, bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(13));
  for (uint32_t i = 0; i < n; ++i) {
    StatRequest r;
    r.path = MS_TRY(d.str());
    r.hash.whole = MS_TRY(flag(d));
    r.hash.prefix_len = MS_TRY(d.i64());
    out.push_back(std::move(r));
  }
  last = MS_TRY(flag(d));
  return d.done();
}

std::string encode_stat_results(const std::vector<StatResult>& r, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    const StatResult& s = r[i];
    e.u8(s.error ? 1 : 0);
    if (s.error) e.error(*s.error);
    e.attrs(s.attrs);
    e.str(s.link_target);
    e.u8(s.hash ? 1 : 0);
    if (s.hash) e.hash(*s.hash);
    e.u8(s.prefix_hash ? 1 : 0);
    if (s.prefix_hash) e.hash(*s.prefix_hash);
  }
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_stat_results(std::string_view p, std::vector<StatResult>& out, bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(1 + kEncodedAttrsBytes + 4 + 2));
  for (uint32_t i = 0; i < n; ++i) {
    StatResult s;
    if (MS_TRY(flag(d))) s.error = MS_TRY(d.error()).error;
    s.attrs = MS_TRY(d.attrs());
    s.link_target = MS_TRY(d.str());
    if (MS_TRY(flag(d))) s.hash = MS_TRY(d.hash());
    if (MS_TRY(flag(d))) s.prefix_hash = MS_TRY(d.hash());
    out.push_back(std::move(s));
  }
  last = MS_TRY(flag(d));
  return d.done();
}

std::string encode_head_request(uint32_t max_bytes, const std::vector<std::string>& paths, size_t begin, size_t end,
                                bool last) {
  Encoder e;
  e.u32(max_bytes);
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) e.str(paths[i]);
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_head_request(std::string_view p, uint32_t& max_bytes, std::vector<std::string>& out, bool& last) {
  Decoder d(p);
  max_bytes = MS_TRY(d.u32());
  uint32_t n = MS_TRY(d.count(4));
  for (uint32_t i = 0; i < n; ++i) out.push_back(MS_TRY(d.str()));
  last = MS_TRY(flag(d));
  return d.done();
}

std::string encode_head_results(const std::vector<Result<std::string>>& r, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    if (r[i].ok()) {
      e.u8(0);
      e.str(*r[i]);
    } else {
      e.u8(1);
      e.error(r[i].error());
    }
  }
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_head_results(std::string_view p, std::vector<Result<std::string>>& out, bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(5));
  for (uint32_t i = 0; i < n; ++i) {
    if (MS_TRY(flag(d))) out.emplace_back(MS_TRY(d.error()).error);
    else out.emplace_back(MS_TRY(d.str()));
  }
  last = MS_TRY(flag(d));
  return d.done();
}

std::string encode_ops(const std::vector<TreeOp>& ops, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    e.u8(static_cast<uint8_t>(ops[i].kind));
    e.str(ops[i].path);
    e.str(ops[i].from);
    e.attrs(ops[i].attrs);
    e.u8(ops[i].attr_mask);
  }
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_ops(std::string_view p, std::vector<TreeOp>& out, bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(1 + 8 + kEncodedAttrsBytes + 1));
  for (uint32_t i = 0; i < n; ++i) {
    TreeOp op;
    uint8_t k = MS_TRY(d.u8());
    if (k < 1 || k > static_cast<uint8_t>(TreeOp::Kind::kSyncFs)) return corrupt("bad operation kind");
    op.kind = static_cast<TreeOp::Kind>(k);
    op.path = MS_TRY(d.str());
    op.from = MS_TRY(d.str());
    op.attrs = MS_TRY(d.attrs());
    op.attr_mask = MS_TRY(d.u8());
    if (op.attr_mask & ~TreeOp::kAllAttrs) return corrupt("bad attribute mask");
    out.push_back(std::move(op));
  }
  last = MS_TRY(flag(d));
  return d.done();
}

std::string encode_statuses(const std::vector<Status>& r, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) e.status(r[i]);
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_statuses(std::string_view p, std::vector<Status>& out, bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(1));
  for (uint32_t i = 0; i < n; ++i) out.push_back(MS_TRY(d.status()));
  last = MS_TRY(flag(d));
  return d.done();
}

std::string encode_signature_request(const SignatureRequest& r) {
  Encoder e;
  e.str(r.path);
  e.u32(r.block_len);
  e.u32(r.strong_len);
  return e.take();
}

Result<SignatureRequest> decode_signature_request(std::string_view p) {
  Decoder d(p);
  SignatureRequest r;
  r.path = MS_TRY(d.str());
  r.block_len = MS_TRY(d.u32());
  r.strong_len = MS_TRY(d.u32());
  MS_CHECK(d.done());
  return r;
}

std::string encode_sig_end(const FileAttrs& basis, uint64_t length) {
  Encoder e;
  e.attrs(basis);
  e.u64(length);
  return e.take();
}

Status decode_sig_end(std::string_view p, FileAttrs& basis, uint64_t& length) {
  Decoder d(p);
  basis = MS_TRY(d.attrs());
  length = MS_TRY(d.u64());
  return d.done();
}

std::string encode_space(const FsSpace& s) {
  Encoder e;
  e.i64(s.total_bytes);
  e.i64(s.avail_bytes);
  return e.take();
}

Result<FsSpace> decode_space(std::string_view p) {
  Decoder d(p);
  FsSpace s;
  s.total_bytes = MS_TRY(d.i64());
  s.avail_bytes = MS_TRY(d.i64());
  MS_CHECK(d.done());
  return s;
}

std::string encode_size_request(const std::vector<std::string>& homes, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) e.str(homes[i]);
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_size_request(std::string_view p, std::vector<std::string>& out, bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(4));
  if (n > kMaxSizeHomes - std::min<size_t>(out.size(), kMaxSizeHomes))
    return corrupt(fmt::format("SIZE: more than {} homes in one request", kMaxSizeHomes));
  for (uint32_t i = 0; i < n; ++i) out.push_back(MS_TRY(d.str()));
  last = MS_TRY(flag(d));
  return d.done();
}

std::string encode_size_results(const std::vector<Result<MailboxSize>>& r, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    if (!r[i].ok()) {
      e.u8(1);
      e.error(r[i].error());
      continue;
    }
    const MailboxSize& m = *r[i];
    e.u8(0);
    e.u8(m.exists ? 1 : 0);
    e.i64(m.bytes);
    e.i64(m.messages);
    e.i64(m.files);
    e.i64(m.stat_calls);
    const size_t notes = std::min<size_t>(m.notes.size(), kMaxSizeNotes);
    e.u32(static_cast<uint32_t>(notes));
    for (size_t k = 0; k < notes; ++k) e.str(m.notes[k]);
  }
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_size_results(std::string_view p, std::vector<Result<MailboxSize>>& out, bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(1 + 5));  // the smallest entry: an error with an empty message
  for (uint32_t i = 0; i < n; ++i) {
    if (MS_TRY(flag(d))) {
      out.emplace_back(MS_TRY(d.error()).error);
      continue;
    }
    MailboxSize m;
    m.exists = MS_TRY(flag(d));
    m.bytes = MS_TRY(d.i64());
    m.messages = MS_TRY(d.i64());
    m.files = MS_TRY(d.i64());
    m.stat_calls = MS_TRY(d.i64());
    if (m.bytes < 0 || m.messages < -1 || m.files < 0 || m.stat_calls < 0)
      return corrupt("SIZE_RESULT: negative size or count");
    uint32_t notes = MS_TRY(d.count(4));
    if (notes > kMaxSizeNotes) return corrupt(fmt::format("SIZE_RESULT: {} notes (at most {})", notes, kMaxSizeNotes));
    for (uint32_t k = 0; k < notes; ++k) m.notes.push_back(MS_TRY(d.str()));
    out.emplace_back(std::move(m));
  }
  last = MS_TRY(flag(d));
  return d.done();
}

std::string encode_list_dir(const DirListing& dir, size_t begin, size_t end, bool continuation) {
  Encoder e;
  e.u8(continuation ? 1 : 0);
  e.str(dir.path);
  e.attrs(dir.attrs);
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    e.str(dir.entries[i].name);
    e.u8(static_cast<uint8_t>(dir.entries[i].type));
  }
  return e.take();
}

Status decode_list_dir(std::string_view p, TreeListing& out) {
  Decoder d(p);
  bool cont = MS_TRY(flag(d));
  std::string path = MS_TRY(d.str());
  FileAttrs attrs = MS_TRY(d.attrs());
  if (cont && (out.empty() || out.back().path != path)) return corrupt("listing continuation of another directory");
  if (!cont) {
    out.push_back(DirListing{std::move(path), attrs, {}});
  }
  DirListing& dir = out.back();
  uint32_t n = MS_TRY(d.count(5));
  dir.entries.reserve(dir.entries.size() + n);
  for (uint32_t i = 0; i < n; ++i) {
    DirEntry e;
    e.name = MS_TRY(d.str());
    uint8_t t = MS_TRY(d.u8());
    if (t > static_cast<uint8_t>(EntryType::kOther)) return corrupt("bad entry type");
    e.type = static_cast<EntryType>(t);
    dir.entries.push_back(std::move(e));
  }
  return d.done();
}

std::string encode_read_spec(const ReadSpec& s) {
  Encoder e;
  e.str(s.path);
  e.u8(static_cast<uint8_t>(s.mode));
  e.i64(s.offset);
  e.u32(s.block_size);
  e.u64(s.block_seed);
  e.u8(s.want_blocks ? 1 : 0);
  e.u64(s.signature.size());
  e.u64(s.old_blocks.size());
  return e.take();
}

Status decode_read_spec(std::string_view p, ReadSpec& s, uint64_t& signature_len, uint64_t& block_count) {
  Decoder d(p);
  s.path = MS_TRY(d.str());
  uint8_t m = MS_TRY(d.u8());
  if (m < 1 || m > 3) return corrupt("bad read mode");
  s.mode = static_cast<ReadSpec::Mode>(m);
  s.offset = MS_TRY(d.i64());
  if (s.offset < 0) return corrupt("negative offset");
  s.block_size = MS_TRY(d.u32());
  s.block_seed = MS_TRY(d.u64());
  s.want_blocks = MS_TRY(flag(d));
  signature_len = MS_TRY(d.u64());
  block_count = MS_TRY(d.u64());
  if (block_count > kMaxBlockHashes) return corrupt(fmt::format("READ_SPEC: {} block hashes (at most {})", block_count, kMaxBlockHashes));
  return d.done();
}

std::string encode_file_meta(ReadStatus status, const std::optional<Error>& error, const FileAttrs& attrs) {
  Encoder e;
  e.u8(static_cast<uint8_t>(status));
  e.u8(error ? 1 : 0);
  if (error) e.error(*error);
  e.attrs(attrs);
  return e.take();
}

Status decode_file_meta(std::string_view p, ReadStatus& status, std::optional<Error>& error, FileAttrs& attrs) {
  Decoder d(p);
  uint8_t s = MS_TRY(d.u8());
  if (s > static_cast<uint8_t>(ReadStatus::kFailed)) return corrupt("bad read status");
  status = static_cast<ReadStatus>(s);
  error.reset();
  if (MS_TRY(flag(d))) error = MS_TRY(d.error()).error;
  attrs = MS_TRY(d.attrs());
  return d.done();
}

std::string encode_trailer(const SourceTrailer& t) {
  Encoder e;
  e.hash(t.hash);
  e.u8(t.stable ? 1 : 0);
  e.i64(t.size);
  e.u64(t.new_blocks.size());
  return e.take();
}

Status decode_trailer(std::string_view p, SourceTrailer& t, uint64_t& block_count) {
  Decoder d(p);
  t.hash = MS_TRY(d.hash());
  t.stable = MS_TRY(flag(d));
  t.size = MS_TRY(d.i64());
  block_count = MS_TRY(d.u64());
  if (block_count > kMaxBlockHashes) return corrupt(fmt::format("trailer: {} block hashes (at most {})", block_count, kMaxBlockHashes));
  return d.done();
}

std::string encode_file_begin(const WriteSpec& w, const FileAttrs& source) {
  Encoder e;
  e.str(w.path);
  e.u8(static_cast<uint8_t>(w.kind));
  e.attrs(w.attrs);
  e.attrs(source);
  return e.take();
}

Status decode_file_begin(std::string_view p, WriteSpec& w, FileAttrs& source) {
  Decoder d(p);
  w.path = MS_TRY(d.str());
  uint8_t k = MS_TRY(d.u8());
  if (k < 1 || k > 3) return corrupt("bad write kind");
  w.kind = static_cast<WriteSpec::Kind>(k);
  w.attrs = MS_TRY(d.attrs());
  source = MS_TRY(d.attrs());
  return d.done();
}

std::string encode_write_results(const std::vector<WriteResult>& r, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    e.u8(static_cast<uint8_t>(r[i].status));
    e.u8(r[i].error ? 1 : 0);
    if (r[i].error) e.error(*r[i].error);
    e.hash(r[i].hash);
    e.i64(r[i].body_bytes);
  }
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_write_results(std::string_view p, std::vector<WriteResult>& out, bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(2 + 16 + 8));
  for (uint32_t i = 0; i < n; ++i) {
    WriteResult r;
    uint8_t s = MS_TRY(d.u8());
    if (s > static_cast<uint8_t>(WriteStatus::kFailed)) return corrupt("bad write status");
    r.status = static_cast<WriteStatus>(s);
    if (MS_TRY(flag(d))) r.error = MS_TRY(d.error()).error;
    r.hash = MS_TRY(d.hash());
    r.body_bytes = MS_TRY(d.i64());
    out.push_back(std::move(r));
  }
  last = MS_TRY(flag(d));
  return d.done();
}

Status decode_data(std::string_view p, int64_t& offset, std::string_view& bytes) {
  Decoder d(p);
  offset = MS_TRY(d.i64());
  if (offset < 0) return corrupt("negative offset");
  bytes = d.rest();
  return {};
}

std::string encode_hashes(const std::vector<Hash128>& h, size_t begin, size_t end) {
  Encoder e;
  for (size_t i = begin; i < end; ++i) e.hash(h[i]);
  return e.take();
}

Status decode_hashes(std::string_view p, std::vector<Hash128>& out) {
  if (p.size() % 16) return corrupt("hash list is not a multiple of 16 bytes");
  Decoder d(p);
  while (!d.rest().empty()) out.push_back(MS_TRY(d.hash()));
  return {};
}

// ---------------------------------------------------------------------------
// FrameChannel

namespace {
void put_header(std::string& buf, size_t payload, MsgType type) {
  uint32_t len = static_cast<uint32_t>(payload + 1);
  char h[5];
  for (int i = 0; i < 4; ++i) h[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  h[4] = static_cast<char>(type);
  buf.append(h, 5);
}
constexpr size_t kFlushAt = 256 * 1024;
}  // namespace

Status FrameChannel::send(MsgType type, std::string_view payload) {
  if (payload.size() + 1 > kMaxFrameBytes) return Error::internal(fmt::format("frame of {} bytes is too large", payload.size()));
  put_header(obuf_, payload.size(), type);
  obuf_.append(payload);
  if (obuf_.size() >= kFlushAt) return flush();
  return {};
}

Status FrameChannel::send_data(int64_t offset, const char* data, size_t size) {
  if (size + 9 > kMaxFrameBytes) return Error::internal("DATA frame too large");
  put_header(obuf_, size + 8, MsgType::kData);
  uint64_t v = static_cast<uint64_t>(offset);
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  obuf_.append(b, 8);
  obuf_.append(data, size);
  if (obuf_.size() >= kFlushAt) return flush();
  return {};
}

Status FrameChannel::send_blob(std::string_view bytes) {
  constexpr size_t kPiece = 1u << 20;
  for (size_t off = 0; off < bytes.size(); off += kPiece) MS_CHECK(send(MsgType::kBlob, bytes.substr(off, kPiece)));
  return {};
}

Status FrameChannel::flush() {
  size_t off = 0;
  while (off < obuf_.size()) {
    ssize_t n = ::write(out_, obuf_.data() + off, obuf_.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      obuf_.clear();
      if (e == EPIPE) return Error::unavailable(fmt::format("{} closed the connection", peer_));
      return Error::from_errno(e, fmt::format("write to {}", peer_));
    }
    off += static_cast<size_t>(n);
  }
  bytes_out_ += obuf_.size();
  obuf_.clear();
  return {};
}

Status FrameChannel::fill(size_t need) {
  if (ipos_ > 0 && (ipos_ >= ibuf_.size() || ipos_ > (1u << 20))) {
    ibuf_.erase(0, ipos_);
    ipos_ = 0;
  }
  while (ibuf_.size() - ipos_ < need) {
    size_t have = ibuf_.size();
    size_t want = std::max<size_t>(need - (have - ipos_), 256 * 1024);
    ibuf_.resize(have + want);
    ssize_t n = ::read(in_, ibuf_.data() + have, want);
    if (n < 0 && errno == EINTR) {
      ibuf_.resize(have);
      continue;
    }
    if (n <= 0) {
      int e = errno;
      ibuf_.resize(have);
      if (n < 0) return Error::from_errno(e, fmt::format("read from {}", peer_));
      if (ibuf_.size() == ipos_) {
        closed_ = true;
        return Error::unavailable(fmt::format("{} closed the connection", peer_));
      }
      return Error::unavailable(fmt::format("{} closed the connection in the middle of a frame", peer_));
    }
    ibuf_.resize(have + static_cast<size_t>(n));
    bytes_in_ += static_cast<uint64_t>(n);
  }
  return {};
}

Result<Frame> FrameChannel::recv() {
  MS_CHECK(flush());
  MS_CHECK(fill(4));
  const unsigned char* p = reinterpret_cast<const unsigned char*>(ibuf_.data() + ipos_);
  uint32_t len = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                 (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  if (len == 0 || len > kMaxFrameBytes)
    return Error::corrupt(fmt::format("frame of {} bytes from {} (the limit is {})", len, peer_, kMaxFrameBytes));
  MS_CHECK(fill(4 + static_cast<size_t>(len)));
  Frame f;
  f.type = static_cast<MsgType>(static_cast<uint8_t>(ibuf_[ipos_ + 4]));
  f.payload.assign(ibuf_.data() + ipos_ + 5, len - 1);
  ipos_ += 4 + len;
  return f;
}

Result<std::string> FrameChannel::recv_blob(uint64_t length, uint64_t max_length) {
  if (length > max_length) return Error::corrupt(fmt::format("blob of {} bytes from {} is too large", length, peer_));
  std::string out;
  out.reserve(static_cast<size_t>(length));
  while (out.size() < length) {
    Frame f = MS_TRY(recv());
    if (f.type != MsgType::kBlob) return unexpected(f, "BLOB", peer_);
    if (out.size() + f.payload.size() > length) return Error::corrupt(fmt::format("blob from {} is longer than announced", peer_));
    out.append(f.payload);
  }
  return out;
}

bool FrameChannel::readable_now() {
  if (ibuf_.size() > ipos_) return true;
  struct pollfd p{in_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

Error unexpected(const Frame& f, std::string_view want, std::string_view peer) {
  if (f.type == MsgType::kError || f.type == MsgType::kWriteAbort) {
    auto e = decode_error(f.payload);
    if (e.ok()) return std::move(e->error);
  }
  return Error::corrupt(fmt::format("protocol error: expected {} from {}, got {} ({} bytes)", want, peer,
                                    msg_type_name(f.type), f.payload.size()));
}

}  // namespace mailshard::wire
