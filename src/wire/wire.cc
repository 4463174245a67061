#include "wire/wire.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <zlib.h>

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
    case MsgType::kPull: return "PULL";
    case MsgType::kPullSpec: return "PULL_SPEC";
    case MsgType::kPullGo: return "PULL_GO";
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
    case MsgType::kPullResult: return "PULL_RESULT";
    case MsgType::kZFrames: return "ZFRAMES";
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
  if (h.features) e.u32(h.features);
  return e.take();
}

Result<Hello> decode_hello(std::string_view p, bool with_server) {
  if (p.size() < 4 || std::memcmp(p.data(), kMagic, 4) != 0) return corrupt("not a mailshard agent greeting");
  Decoder d(p.substr(4));
  Hello h;
  h.version = MS_TRY(d.u32());
  h.max_frame = MS_TRY(d.u32());
  if (with_server) h.server = MS_TRY(d.str());
  if (!d.rest().empty()) h.features = MS_TRY(d.u32());
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
    if (k < 1 || k > static_cast<uint8_t>(TreeOp::Kind::kPlace)) return corrupt("bad operation kind");
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

namespace {
void put_read_spec(Encoder& e, const ReadSpec& s) {
  e.str(s.path);
  e.u8(static_cast<uint8_t>(s.mode));
  e.i64(s.offset);
  e.u32(s.block_size);
  e.u64(s.block_seed);
  e.u8(s.want_blocks ? 1 : 0);
  e.u64(s.signature.size());
  e.u64(s.old_blocks.size());
}

Status get_read_spec(Decoder& d, ReadSpec& s, uint64_t& signature_len, uint64_t& block_count) {
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
  return {};
}
}  // namespace

std::string encode_read_spec(const ReadSpec& s) {
  Encoder e;
  put_read_spec(e, s);
  return e.take();
}

Status decode_read_spec(std::string_view p, ReadSpec& s, uint64_t& signature_len, uint64_t& block_count) {
  Decoder d(p);
  MS_CHECK(get_read_spec(d, s, signature_len, block_count));
  return d.done();
}

std::string encode_pull(const PeerRef& peer, Durability durability) {
  Encoder e;
  e.str(peer.name);
  e.u32(static_cast<uint32_t>(peer.argv.size()));
  for (const auto& a : peer.argv) e.str(a);
  e.u8(static_cast<uint8_t>(durability));
  return e.take();
}

Status decode_pull(std::string_view p, PeerRef& peer, Durability& durability) {
  Decoder d(p);
  peer.name = MS_TRY(d.str());
  uint32_t n = MS_TRY(d.count(4));
  if (n == 0) return corrupt("PULL: no peer command");
  if (n > kMaxPeerArgs) return corrupt(fmt::format("PULL: {} peer arguments (at most {})", n, kMaxPeerArgs));
  peer.argv.clear();
  for (uint32_t i = 0; i < n; ++i) peer.argv.push_back(MS_TRY(d.str()));
  uint8_t dur = MS_TRY(d.u8());
  if (dur != static_cast<uint8_t>(Durability::kFsyncEach) && dur != static_cast<uint8_t>(Durability::kSyncfs))
    return corrupt("bad durability");
  durability = static_cast<Durability>(dur);
  return d.done();
}

std::string encode_pull_spec(const CopySpec& c) {
  Encoder e;
  put_read_spec(e, c.read);
  e.u8(static_cast<uint8_t>(c.kind));
  e.str(c.dst_path);
  e.u32(c.basis_block_len);
  return e.take();
}

Status decode_pull_spec(std::string_view p, CopySpec& c, uint64_t& signature_len, uint64_t& block_count) {
  Decoder d(p);
  MS_CHECK(get_read_spec(d, c.read, signature_len, block_count));
  uint8_t k = MS_TRY(d.u8());
  if (k < 1 || k > 3) return corrupt("bad write kind");
  c.kind = static_cast<WriteSpec::Kind>(k);
  c.dst_path = MS_TRY(d.str());
  c.basis_block_len = MS_TRY(d.u32());
  return d.done();
}

std::string encode_pull_results(const std::vector<CopyOutcome>& r, size_t begin, size_t end, bool last) {
  Encoder e;
  e.u32(static_cast<uint32_t>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    const CopyOutcome& o = r[i];
    e.u8(static_cast<uint8_t>(o.read));
    e.u8(o.error ? 1 : 0);
    if (o.error) e.error(*o.error);
    e.attrs(o.attrs);
    e.u8(o.whole_fallback ? 1 : 0);
    e.i64(o.signature_bytes);
    e.u64(o.new_blocks.size());
    e.u8(o.written ? 1 : 0);
    if (o.written) {
      e.u8(static_cast<uint8_t>(o.result.status));
      e.u8(o.result.error ? 1 : 0);
      if (o.result.error) e.error(*o.result.error);
      e.hash(o.result.hash);
      e.i64(o.result.body_bytes);
    }
  }
  e.u8(last ? 1 : 0);
  return e.take();
}

Status decode_pull_results(std::string_view p, std::vector<CopyOutcome>& out, std::vector<uint64_t>& block_counts,
                           bool& last) {
  Decoder d(p);
  uint32_t n = MS_TRY(d.count(2 + kEncodedAttrsBytes + 1 + 8 + 8 + 1));
  for (uint32_t i = 0; i < n; ++i) {
    CopyOutcome o;
    uint8_t s = MS_TRY(d.u8());
    if (s > static_cast<uint8_t>(ReadStatus::kFailed)) return corrupt("bad read status");
    o.read = static_cast<ReadStatus>(s);
    if (MS_TRY(flag(d))) o.error = MS_TRY(d.error()).error;
    o.attrs = MS_TRY(d.attrs());
    o.whole_fallback = MS_TRY(flag(d));
    o.signature_bytes = MS_TRY(d.i64());
    if (o.signature_bytes < 0) return corrupt("negative signature size");
    uint64_t blocks = MS_TRY(d.u64());
    if (blocks > kMaxBlockHashes) return corrupt(fmt::format("PULL_RESULT: {} block hashes (at most {})", blocks, kMaxBlockHashes));
    o.written = MS_TRY(flag(d));
    if (o.written && o.read != ReadStatus::kOk) return corrupt("PULL_RESULT: a file written but not read");
    if (o.written) {
      uint8_t ws = MS_TRY(d.u8());
      if (ws > static_cast<uint8_t>(WriteStatus::kFailed)) return corrupt("bad write status");
      o.result.status = static_cast<WriteStatus>(ws);
      if (MS_TRY(flag(d))) o.result.error = MS_TRY(d.error()).error;
      o.result.hash = MS_TRY(d.hash());
      o.result.body_bytes = MS_TRY(d.i64());
      if (o.result.body_bytes < 0) return corrupt("negative body size");
    }
    block_counts.push_back(blocks);
    out.push_back(std::move(o));
  }
  last = MS_TRY(flag(d));
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

// Inflated frames waiting to be returned are bounded: a ZFRAMES payload is
// at most a frame, but deflate shrinks repetitive input up to ~1000x.
constexpr size_t kMaxPlainPending = 64u << 20;
constexpr size_t kZPiece = 1u << 20;  // ZFRAMES payloads are cut at this size

bool compressible(MsgType t) {
  return t != MsgType::kData && t != MsgType::kBlob && t != MsgType::kFileBegin && t != MsgType::kFileEnd &&
         t != MsgType::kFileMeta && t != MsgType::kZFrames;
}
}  // namespace

struct FrameChannel::Zip {
  z_stream def{};
  z_stream inf{};
  bool def_ok = false, inf_ok = false;
  ~Zip() {
    if (def_ok) deflateEnd(&def);
    if (inf_ok) inflateEnd(&inf);
  }
};

FrameChannel::FrameChannel(int in_fd, int out_fd, std::string peer) : in_(in_fd), out_(out_fd), peer_(std::move(peer)) {}
FrameChannel::~FrameChannel() = default;

Status FrameChannel::enable_compression() {
  if (zip_) return {};
  auto z = std::make_unique<Zip>();
  // Level 1: listings and results shrink 4-8x at a small CPU cost.
  if (deflateInit(&z->def, 1) != Z_OK) return Error::internal("zlib: deflateInit failed");
  z->def_ok = true;
  if (inflateInit(&z->inf) != Z_OK) return Error::internal("zlib: inflateInit failed");
  z->inf_ok = true;
  zip_ = std::move(z);
  return {};
}

Status FrameChannel::deflate_pending() {
  if (zin_.empty()) return {};
  z_stream& z = zip_->def;
  z.next_in = reinterpret_cast<Bytef*>(zin_.data());
  z.avail_in = static_cast<uInt>(zin_.size());
  std::string out;
  do {
    const size_t old = out.size();
    out.resize(old + std::max<size_t>(64 * 1024, zin_.size() / 2));
    z.next_out = reinterpret_cast<Bytef*>(out.data() + old);
    z.avail_out = static_cast<uInt>(out.size() - old);
    int rc = deflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return Error::internal(fmt::format("zlib: deflate failed ({})", rc));
    out.resize(out.size() - z.avail_out);
  } while (z.avail_out == 0 || z.avail_in > 0);
  zin_.clear();
  for (size_t off = 0; off < out.size(); off += kZPiece) {
    const size_t n = std::min(kZPiece, out.size() - off);
    put_header(obuf_, n, MsgType::kZFrames);
    obuf_.append(out, off, n);
  }
  return {};
}

Status FrameChannel::send(MsgType type, std::string_view payload) {
  if (payload.size() + 1 > kMaxFrameBytes) return Error::internal(fmt::format("frame of {} bytes is too large", payload.size()));
  if (zip_ && compressible(type)) {
    put_header(zin_, payload.size(), type);
    zin_.append(payload);
    if (zin_.size() >= kFlushAt) return flush();
    return {};
  }
  MS_CHECK(deflate_pending());  // what was queued before goes first
  put_header(obuf_, payload.size(), type);
  obuf_.append(payload);
  if (obuf_.size() >= kFlushAt) return flush();
  return {};
}

Status FrameChannel::send_data(int64_t offset, const char* data, size_t size) {
  if (size + 9 > kMaxFrameBytes) return Error::internal("DATA frame too large");
  MS_CHECK(deflate_pending());
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
  if (!zin_.empty()) MS_CHECK(deflate_pending());
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
    if (idle_timeout_ms_ > 0) {
      struct pollfd p{in_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(idle_timeout_ms_, INT32_MAX)));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0)
        return Error::timeout(fmt::format("{} sent nothing for {} s", peer_, (idle_timeout_ms_ + 999) / 1000));
    }
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

Result<bool> FrameChannel::next_plain(Frame& f) {
  const size_t have = plain_.size() - plain_pos_;
  if (have < 4) return false;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(plain_.data() + plain_pos_);
  uint32_t len = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                 (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  if (len == 0 || len > kMaxFrameBytes)
    return Error::corrupt(fmt::format("compressed frame of {} bytes from {} (the limit is {})", len, peer_, kMaxFrameBytes));
  if (have < 4 + static_cast<size_t>(len)) return false;
  f.type = static_cast<MsgType>(static_cast<uint8_t>(plain_[plain_pos_ + 4]));
  if (f.type == MsgType::kZFrames) return Error::corrupt(fmt::format("ZFRAMES inside ZFRAMES from {}", peer_));
  f.payload.assign(plain_.data() + plain_pos_ + 5, len - 1);
  plain_pos_ += 4 + len;
  if (plain_pos_ == plain_.size()) {
    plain_.clear();
    plain_pos_ = 0;
  }
  return true;
}

Result<Frame> FrameChannel::recv() {
  MS_CHECK(flush());
  while (true) {
    Frame f;
    if (MS_TRY(next_plain(f))) return f;
    Frame raw = MS_TRY(recv_raw());
    if (raw.type != MsgType::kZFrames) {
      if (plain_pos_ < plain_.size())
        return Error::corrupt(fmt::format("{} sent {} in the middle of a compressed frame", peer_, msg_type_name(raw.type)));
      return raw;
    }
    if (!zip_) return Error::corrupt(fmt::format("{} sent ZFRAMES without agreeing on compression", peer_));
    if (plain_pos_ > 0) {
      plain_.erase(0, plain_pos_);
      plain_pos_ = 0;
    }
    z_stream& z = zip_->inf;
    z.next_in = reinterpret_cast<Bytef*>(raw.payload.data());
    z.avail_in = static_cast<uInt>(raw.payload.size());
    do {
      const size_t old = plain_.size();
      if (old > kMaxPlainPending)
        return Error::corrupt(fmt::format("compressed frames from {} inflate to more than {} bytes", peer_, kMaxPlainPending));
      plain_.resize(old + 256 * 1024);
      z.next_out = reinterpret_cast<Bytef*>(plain_.data() + old);
      z.avail_out = 256 * 1024;
      int rc = inflate(&z, Z_SYNC_FLUSH);
      plain_.resize(plain_.size() - z.avail_out);
      if (rc == Z_BUF_ERROR) break;  // no progress possible: this payload is used up
      if (rc != Z_OK) return Error::corrupt(fmt::format("bad compressed frame from {} (zlib {})", peer_, rc));
    } while (z.avail_in > 0 || z.avail_out == 0);
  }
}

Result<Frame> FrameChannel::recv_raw() {
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
  if (ibuf_.size() > ipos_ || plain_.size() > plain_pos_) return true;
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
