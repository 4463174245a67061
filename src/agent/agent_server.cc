#include "agent/agent_server.h"

#include <fmt/format.h>

#include "store/rsync_delta.h"
#include "wire/wire.h"

namespace mailshard::agent {

using store::kMaxSignatureBytes;
namespace {

using wire::Frame;
using wire::FrameChannel;
using wire::MsgType;

// Items per result frame are cut near this many bytes.
constexpr size_t kSoft = wire::kSoftFrameBytes;
// A read request may name at most this many files (the client sends batches).
constexpr size_t kMaxReadSpecs = 1u << 20;
// SIZE_RESULT frames carry at most this many homes, so results stream back
// while the agent scans (a frame every few hundred homes) instead of in one
// reply at the end.
constexpr size_t kSizeResultsPerFrame = 256;

// Sends results[0..n) in frames of about kSoft bytes; `enc` encodes a range.
template <typename Vec, typename Enc>
Status send_chunked(FrameChannel& ch, MsgType type, const Vec& items, Enc enc, size_t per_item_hint) {
  size_t per_frame = std::max<size_t>(1, kSoft / std::max<size_t>(per_item_hint, 1));
  size_t i = 0;
  do {
    size_t end = std::min(items.size(), i + per_frame);
    MS_CHECK(ch.send(type, enc(items, i, end, end == items.size())));
    i = end;
  } while (i < items.size());
  return ch.flush();
}

// The body of a file the client streams in (DATA ... FILE_END).
class RemoteSourceFile final : public SourceFile {
 public:
  RemoteSourceFile(FrameChannel& ch, FileAttrs attrs) : ch_(ch), attrs_(attrs) {}
  const FileAttrs& attrs() const override { return attrs_; }

  Result<bool> next_chunk(Chunk& out) override {
    if (ended_) return false;
    frame_ = MS_TRY(ch_.recv());
    if (frame_.type == MsgType::kData) {
      int64_t off;
      std::string_view bytes;
      MS_CHECK(wire::decode_data(frame_.payload, off, bytes));
      out = Chunk{off, bytes.data(), bytes.size()};
      return true;
    }
    if (frame_.type == MsgType::kFileEnd) {
      uint64_t blocks = 0;
      MS_CHECK(wire::decode_trailer(frame_.payload, trailer_, blocks));
      if (blocks) return Error::corrupt("malformed frame: a written file carries block hashes");
      ended_ = true;
      return false;
    }
    return wire::unexpected(frame_, "DATA or FILE_END", "client");
  }

  Result<SourceTrailer> finish() override {
    Chunk c;
    while (!ended_) MS_TRY(next_chunk(c));
    return trailer_;
  }

 private:
  FrameChannel& ch_;
  FileAttrs attrs_;
  Frame frame_;
  SourceTrailer trailer_;
  bool ended_ = false;
};

class Session {
 public:
  Session(Transport& store, FrameChannel& ch, const PeerOpener& open_peer)
      : store_(store), ch_(ch), open_peer_(open_peer) {}

  // Returns false at BYE.
  Result<bool> handle(Frame f) {
    switch (f.type) {
      case MsgType::kBye: return false;
      case MsgType::kList: MS_CHECK(on_list(f)); break;
      case MsgType::kStat: MS_CHECK(on_stat(std::move(f))); break;
      case MsgType::kHead: MS_CHECK(on_head(std::move(f))); break;
      case MsgType::kApply: MS_CHECK(on_apply(std::move(f))); break;
      case MsgType::kSignature: MS_CHECK(on_signature(f)); break;
      case MsgType::kSpace: MS_CHECK(on_space(f)); break;
      case MsgType::kSize: MS_CHECK(on_size(std::move(f))); break;
      case MsgType::kReadSpec: MS_CHECK(on_read(std::move(f))); break;
      case MsgType::kWriteBegin: MS_CHECK(on_write(f)); break;
      case MsgType::kPull: MS_CHECK(on_pull(f)); break;
      default:
        return Error::corrupt(fmt::format("protocol error: unexpected {} frame ({} bytes)", wire::msg_type_name(f.type),
                                          f.payload.size()));
    }
    return true;
  }

 private:
  Status reply_error(const Error& e) {
    MS_CHECK(ch_.send(MsgType::kError, wire::encode_error(e)));
    return ch_.flush();
  }

  Status on_list(const Frame& f) {
    wire::Decoder d(f.payload);
    std::string home = MS_TRY(d.str());
    MS_CHECK(d.done());
    auto listing = store_.list_tree(home);
    if (!listing.ok()) return reply_error(listing.error());
    for (const auto& dir : *listing) {
      size_t i = 0;
      bool cont = false;
      do {
        // Cut big directories (INBOX/cur with 45k names) into ~256 KiB frames.
        size_t end = i, bytes = 0;
        while (end < dir.entries.size() && bytes < kSoft) bytes += dir.entries[end++].name.size() + 5;
        MS_CHECK(ch_.send(MsgType::kListDir, wire::encode_list_dir(dir, i, end, cont)));
        cont = true;
        i = end;
      } while (i < dir.entries.size());
    }
    wire::Encoder e;
    e.u64(listing->size());
    MS_CHECK(ch_.send(MsgType::kListEnd, e.bytes()));
    return ch_.flush();
  }

  // Collects a request split over frames of one type (each with a `last` flag).
  template <typename T, typename Dec>
  Status collect(Frame first, MsgType type, std::vector<T>& out, Dec dec) {
    bool last = false;
    MS_CHECK(dec(first.payload, out, last));
    while (!last) {
      Frame f = MS_TRY(ch_.recv());
      if (f.type != type) return wire::unexpected(f, wire::msg_type_name(type), "client");
      MS_CHECK(dec(f.payload, out, last));
    }
    return {};
  }

  Status on_stat(Frame f) {
    std::vector<StatRequest> rq;
    MS_CHECK(collect(std::move(f), MsgType::kStat, rq, wire::decode_stat_requests));
    auto res = store_.stat(rq);
    if (!res.ok()) return reply_error(res.error());
    return send_chunked(ch_, MsgType::kStatResult, *res, wire::encode_stat_results, 120);
  }

  Status on_head(Frame f) {
    std::vector<std::string> paths;
    uint32_t max_bytes = 0;
    auto dec = [&](std::string_view p, std::vector<std::string>& out, bool& last) {
      return wire::decode_head_request(p, max_bytes, out, last);
    };
    MS_CHECK(collect(std::move(f), MsgType::kHead, paths, dec));
    auto res = store_.head(paths, std::min<uint32_t>(max_bytes, 1u << 20));
    if (!res.ok()) return reply_error(res.error());
    return send_chunked(ch_, MsgType::kHeadResult, *res, wire::encode_head_results,
                        std::min<size_t>(max_bytes, 1u << 20) + 64);
  }

  Status on_apply(Frame f) {
    std::vector<TreeOp> ops;
    MS_CHECK(collect(std::move(f), MsgType::kApply, ops, wire::decode_ops));
    auto res = store_.apply(ops);
    if (!res.ok()) return reply_error(res.error());
    return send_chunked(ch_, MsgType::kApplyResult, *res, wire::encode_statuses, 100);
  }

  Status on_signature(const Frame& f) {
    auto rq = wire::decode_signature_request(f.payload);
    if (!rq.ok()) return std::move(rq).error();
    auto sig = store_.signature(*rq);
    if (!sig.ok()) return reply_error(sig.error());
    MS_CHECK(ch_.send_blob(sig->bytes));
    MS_CHECK(ch_.send(MsgType::kSigEnd, wire::encode_sig_end(sig->basis, sig->bytes.size())));
    return ch_.flush();
  }

  Status on_space(const Frame& f) {
    wire::Decoder d(f.payload);
    std::string path = MS_TRY(d.str());
    MS_CHECK(d.done());
    auto s = store_.space(path);
    if (!s.ok()) return reply_error(s.error());
    MS_CHECK(ch_.send(MsgType::kSpaceResult, wire::encode_space(*s)));
    return ch_.flush();
  }

  // SIZE: collect the homes, then scan them one by one, sending a
  // SIZE_RESULT frame (flushed) every kSizeResultsPerFrame homes or ~kSoft
  // bytes. If the store fails as a whole midway, ERROR ends the answer and
  // the results sent before it stand.
  Status on_size(Frame f) {
    std::vector<std::string> homes;
    MS_CHECK(collect(std::move(f), MsgType::kSize, homes, wire::decode_size_request));
    std::vector<Result<MailboxSize>> pending;
    size_t pending_bytes = 0;
    Status sent;  // the first send failure: the client is gone, stop scanning
    size_t answered = 0;
    auto sink = [&](size_t i, Result<MailboxSize> r) -> Status {
      if (i != answered++) return Error::internal("SIZE: results out of order");
      pending_bytes += r.ok() ? 64 + r->notes.size() * 64 : 16 + r.error().message().size();
      pending.push_back(std::move(r));
      const bool last = i + 1 == homes.size();
      if (!last && pending.size() < kSizeResultsPerFrame && pending_bytes < kSoft) return {};
      sent = ch_.send(MsgType::kSizeResult, wire::encode_size_results(pending, 0, pending.size(), last));
      if (sent.ok()) sent = ch_.flush();
      pending.clear();
      pending_bytes = 0;
      return sent;
    };
    if (homes.empty()) {
      MS_CHECK(ch_.send(MsgType::kSizeResult, wire::encode_size_results(pending, 0, 0, true)));
      return ch_.flush();
    }
    Status st = store_.size_homes(homes, sink);
    if (!sent.ok()) return sent;
    if (!st.ok()) return reply_error(st.error());
    if (answered != homes.size())  // the client would wait for the rest forever
      return reply_error(Error::internal(fmt::format("SIZE: {} results for {} homes", answered, homes.size())));
    return {};
  }

  Status on_read(Frame f) {
    std::vector<ReadSpec> specs;
    while (true) {
      if (f.type == MsgType::kReadGo) {
        MS_CHECK(wire::Decoder(f.payload).done());
        break;
      }
      if (f.type != MsgType::kReadSpec) return wire::unexpected(f, "READ_SPEC or READ_GO", "client");
      if (specs.size() >= kMaxReadSpecs) return Error::corrupt("protocol error: too many files in one read");
      ReadSpec s;
      uint64_t sig_len = 0, nblocks = 0;
      MS_CHECK(wire::decode_read_spec(f.payload, s, sig_len, nblocks));
      if (sig_len) s.signature = MS_TRY(ch_.recv_blob(sig_len, kMaxSignatureBytes));
      if (nblocks) {
        std::string raw = MS_TRY(ch_.recv_blob(nblocks * 16, kMaxSignatureBytes));
        MS_CHECK(wire::decode_hashes(raw, s.old_blocks));
      }
      specs.push_back(std::move(s));
      f = MS_TRY(ch_.recv());
    }
    auto reader = store_.open_reader(std::move(specs));
    if (!reader.ok()) return reply_error(reader.error());
    while (true) {
      auto item = (*reader)->next();
      if (!item.ok()) {
        if (item.error().code() == ErrorCode::kNotFound) break;
        return reply_error(item.error());
      }
      FileAttrs attrs = item->file ? item->file->attrs() : FileAttrs{};
      MS_CHECK(ch_.send(MsgType::kFileMeta, wire::encode_file_meta(item->status, item->error, attrs)));
      if (item->status != ReadStatus::kOk) continue;
      SourceFile& src = *item->file;
      Chunk c;
      while (true) {
        auto more = src.next_chunk(c);
        if (!more.ok()) return reply_error(more.error());
        if (!*more) break;
        MS_CHECK(ch_.send_data(c.offset, c.data, c.size));
      }
      auto t = src.finish();
      if (!t.ok()) return reply_error(t.error());
      MS_CHECK(ch_.send(MsgType::kFileEnd, wire::encode_trailer(*t)));
      if (!t->new_blocks.empty()) MS_CHECK(ch_.send_blob(wire::encode_hashes(t->new_blocks, 0, t->new_blocks.size())));
    }
    MS_CHECK(ch_.send(MsgType::kReadEnd, ""));
    return ch_.flush();
  }

  Status on_write(const Frame& f) {
    wire::Decoder d(f.payload);
    uint8_t dur = MS_TRY(d.u8());
    MS_CHECK(d.done());
    if (dur != static_cast<uint8_t>(Durability::kFsyncEach) && dur != static_cast<uint8_t>(Durability::kSyncfs))
      return Error::corrupt("malformed frame: bad durability");
    WriterOptions opts;
    opts.durability = static_cast<Durability>(dur);
    auto writer = store_.open_writer(opts);
    std::optional<Error> failed;
    if (!writer.ok()) {
      failed = std::move(writer).error();
      MS_CHECK(ch_.send(MsgType::kWriteAbort, wire::encode_error(*failed)));
      MS_CHECK(ch_.flush());
    }
    while (true) {
      Frame fr = MS_TRY(ch_.recv());
      if (fr.type == MsgType::kCommit) break;
      if (fr.type != MsgType::kFileBegin) return wire::unexpected(fr, "FILE_BEGIN or COMMIT", "client");
      WriteSpec spec;
      FileAttrs source;
      MS_CHECK(wire::decode_file_begin(fr.payload, spec, source));
      RemoteSourceFile src(ch_, source);
      if (failed) {
        MS_TRY(src.finish());  // ignore the body until COMMIT
        continue;
      }
      // Per-file failures (ENOSPC, a bad path) come back with COMMIT; an
      // error here means the stream broke (a malformed DATA frame, the client
      // vanished), so the session cannot go on.
      MS_CHECK((*writer)->write(spec, src));
    }
    if (failed) return reply_error(*failed);
    auto res = (*writer)->commit();
    if (!res.ok()) return reply_error(res.error());
    return send_chunked(ch_, MsgType::kCommitResult, *res, wire::encode_write_results, 100);
  }

  // PULL: PULL_SPEC (+ blobs) ... PULL_GO, then copy_files(peer -> store)
  // and PULL_RESULT frames, each followed by the block-hash blobs of its
  // outcomes.
  Status on_pull(const Frame& first) {
    PeerRef peer;
    Durability durability = Durability::kSyncfs;
    MS_CHECK(wire::decode_pull(first.payload, peer, durability));
    std::vector<CopySpec> specs;
    while (true) {
      Frame f = MS_TRY(ch_.recv());
      if (f.type == MsgType::kPullGo) {
        MS_CHECK(wire::Decoder(f.payload).done());
        break;
      }
      if (f.type != MsgType::kPullSpec) return wire::unexpected(f, "PULL_SPEC or PULL_GO", "client");
      if (specs.size() >= kMaxReadSpecs) return Error::corrupt("protocol error: too many files in one pull");
      CopySpec c;
      uint64_t sig_len = 0, nblocks = 0;
      MS_CHECK(wire::decode_pull_spec(f.payload, c, sig_len, nblocks));
      if (sig_len) c.read.signature = MS_TRY(ch_.recv_blob(sig_len, kMaxSignatureBytes));
      if (nblocks) {
        std::string raw = MS_TRY(ch_.recv_blob(nblocks * 16, kMaxSignatureBytes));
        MS_CHECK(wire::decode_hashes(raw, c.read.old_blocks));
      }
      specs.push_back(std::move(c));
    }
    if (!open_peer_) return reply_error(Error::unsupported("this agent cannot open peers (PULL)"));
    // One peer per session: a different one replaces it.
    if (!peer_ || peer_argv_ != peer.argv) {
      peer_.reset();
      auto t = open_peer_(peer);
      if (!t.ok()) return reply_error(Error(t.error().code(), fmt::format("peer {}: {}", peer.name, t.error().message())));
      peer_ = std::move(*t);
      peer_argv_ = peer.argv;
    }
    WriterOptions wo;
    wo.durability = durability;
    auto out = copy_files(*peer_, store_, std::move(specs), wo);
    if (!out.ok()) {
      // The peer's stream may be what broke: start it afresh next time.
      peer_.reset();
      return reply_error(Error(out.error().code(), fmt::format("peer {}: {}", peer.name, out.error().message())));
    }
    const std::vector<CopyOutcome>& r = *out;
    size_t i = 0;
    do {
      size_t end = i, bytes = 0;
      while (end < r.size() && bytes < kSoft) {
        bytes += 160 + (r[end].error ? r[end].error->message().size() : 0) +
                 (r[end].result.error ? r[end].result.error->message().size() : 0);
        ++end;
      }
      MS_CHECK(ch_.send(MsgType::kPullResult, wire::encode_pull_results(r, i, end, end == r.size())));
      for (size_t k = i; k < end; ++k)
        if (!r[k].new_blocks.empty())
          MS_CHECK(ch_.send_blob(wire::encode_hashes(r[k].new_blocks, 0, r[k].new_blocks.size())));
      i = end;
    } while (i < r.size());
    return ch_.flush();
  }

  Transport& store_;
  FrameChannel& ch_;
  const PeerOpener& open_peer_;
  std::unique_ptr<Transport> peer_;
  std::vector<std::string> peer_argv_;
};

}  // namespace

Status AgentServer::serve() {
  FrameChannel ch(in_, out_, "client");
  auto fail = [&](Error e) -> Status {
    // Best effort: the client may already be gone.
    (void)ch.send(MsgType::kError, wire::encode_error(e));
    (void)ch.flush();
    return e;
  };
  auto first = ch.recv();
  if (!first.ok()) {
    if (ch.closed()) return {};
    return fail(std::move(first).error());
  }
  if (first->type != MsgType::kHello) return fail(wire::unexpected(*first, "HELLO", "client"));
  auto hello = wire::decode_hello(first->payload, false);
  if (!hello.ok()) return fail(std::move(hello).error());
  if (hello->version != wire::kProtocolVersion)
    return fail(Error::unsupported(fmt::format("unsupported protocol version {} (this agent speaks {})",
                                               hello->version, wire::kProtocolVersion)));
  wire::Hello ok;
  ok.server = description_;
  ok.features = hello->features & wire::kFeatureCompress;
  MS_CHECK(ch.send(MsgType::kHelloOk, wire::encode_hello(ok, true)));
  MS_CHECK(ch.flush());
  if (ok.features & wire::kFeatureCompress) MS_CHECK(ch.enable_compression());
  Session s(store_, ch, open_peer_);
  while (true) {
    auto f = ch.recv();
    if (!f.ok()) {
      if (ch.closed()) return {};
      return fail(std::move(f).error());
    }
    auto more = s.handle(std::move(*f));
    if (!more.ok()) return fail(std::move(more).error());
    if (!*more) return {};
  }
}

}  // namespace mailshard::agent
