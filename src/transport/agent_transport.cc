#include "transport/agent_transport.h"

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "wire/wire.h"
#include "util/subprocess.h"
#include "util/strings.h"

namespace mailshard {
namespace {

using wire::Frame;
using wire::FrameChannel;
using wire::MsgType;

constexpr size_t kSoft = wire::kSoftFrameBytes;
constexpr uint64_t kMaxSignature = 256u << 20;

struct Channel {
  ChildProcess child;
  std::unique_ptr<FrameChannel> io;
  uint64_t counted = 0;  // of io's bytes, already added to the pool's total

  ~Channel() {
    if (child.pid > 0) reap_child(child, 2000);
  }
  // Closes the pipes and reports how the agent ended (" (agent exit status 3)").
  std::string end(int64_t grace_ms) {
    if (child.pid <= 0) return "";
    int rc = reap_child(child, grace_ms);
    return rc >= 0 ? fmt::format(" (agent exit status {})", rc) : "";
  }
};

class ChannelPool;

// A channel held by one operation, reader or writer.
class Lease {
 public:
  Lease(ChannelPool* pool, std::unique_ptr<Channel> ch) : pool_(pool), ch_(std::move(ch)) {}
  Lease(Lease&& o) noexcept : pool_(o.pool_), ch_(std::move(o.ch_)), broken_(o.broken_) { o.pool_ = nullptr; }
  Lease& operator=(Lease&&) = delete;
  ~Lease();

  FrameChannel& io() { return *ch_->io; }
  // Any failure of the stream itself: the channel is discarded, and the
  // error names how the agent ended.
  Error broke(Error e) {
    if (!broken_) {
      broken_ = true;
      ch_->io->detach();  // the fds are closed next; never touch their numbers again
      std::string how = ch_->end(1000);
      if (!how.empty()) e = Error(e.code(), e.message() + how);
    }
    return e;
  }
  Status check(Status s) { return s.ok() ? std::move(s) : Status(broke(std::move(s).error())); }
  Result<Frame> recv() {
    if (broken_) return Error::unavailable(fmt::format("{}: channel already failed", "agent"));
    auto f = io().recv();
    if (!f.ok()) return broke(std::move(f).error());
    return f;
  }
  // An answer that is not the expected type: an ERROR frame is the
  // request's failure (the channel stays usable); anything else breaks it.
  Error refuse(const Frame& f, std::string_view want, std::string_view peer) {
    Error e = wire::unexpected(f, want, peer);
    if (f.type == MsgType::kError && e.code() != ErrorCode::kCorrupt) return e;
    return broke(std::move(e));
  }
  bool broken() const { return broken_; }

 private:
  ChannelPool* pool_;
  std::unique_ptr<Channel> ch_;
  bool broken_ = false;
};

class ChannelPool {
 public:
  explicit ChannelPool(AgentOptions opts) : opts_(std::move(opts)) {}

  const std::string& name() const { return opts_.name; }

  Result<Lease> acquire() {
    std::unique_lock lock(mu_);
    while (idle_.empty() && open_ >= opts_.max_streams) cv_.wait(lock);
    if (!idle_.empty()) {
      auto ch = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(ch));
    }
    ++open_;
    lock.unlock();
    auto ch = connect();
    if (!ch.ok()) {
      lock.lock();
      --open_;
      cv_.notify_one();
      return std::move(ch).error();
    }
    return Lease(this, std::move(*ch));
  }

  uint64_t wire_bytes() const { return wire_bytes_.load(); }

  void release(std::unique_ptr<Channel> ch, bool broken) {
    const uint64_t now = ch->io->bytes_in() + ch->io->bytes_out();
    wire_bytes_ += now - ch->counted;
    ch->counted = now;
    if (broken) {
      ch.reset();
      std::lock_guard lock(mu_);
      --open_;
    } else {
      std::lock_guard lock(mu_);
      idle_.push_back(std::move(ch));
    }
    cv_.notify_one();
  }

  ~ChannelPool() {
    // Every agent is told first, then each is waited for: they end at the
    // same time (a destination agent also ends its peer first).
    for (auto& ch : idle_) {
      (void)ch->io->send(MsgType::kBye, "");
      (void)ch->io->flush();
    }
    for (auto& ch : idle_) ch->end(5000);
  }

 private:
  Result<std::unique_ptr<Channel>> connect() {
    auto child = spawn_piped(opts_.argv);
    if (!child.ok()) return std::move(child).error().context(opts_.name);
    auto ch = std::make_unique<Channel>();
    ch->child = *child;
    ch->io = std::make_unique<FrameChannel>(child->stdout_fd, child->stdin_fd, opts_.name);
    ch->io->set_idle_timeout_ms(opts_.idle_timeout_ms);
    auto fail = [&](Error e) -> Error {
      std::string how = ch->end(1000);
      return Error(e.code(), fmt::format("{}: {}{}", opts_.name, e.message(), how));
    };
    wire::Hello hello;
    hello.features = wire::kFeatureCompress;
    if (auto st = ch->io->send(MsgType::kHello, wire::encode_hello(hello, false)); !st.ok()) return fail(st.error());
    auto f = ch->io->recv();
    if (!f.ok()) {
      if (f.error().code() == ErrorCode::kUnavailable)
        return fail(Error::unavailable("the agent exited before the handshake"));
      return fail(std::move(f).error());
    }
    if (f->type == MsgType::kError) return fail(wire::unexpected(*f, "HELLO_OK", "agent"));
    if (f->type != MsgType::kHelloOk) return fail(Error::corrupt("not a mailshard agent (bad greeting)"));
    auto ok = wire::decode_hello(f->payload, true);
    if (!ok.ok()) return fail(Error::corrupt("not a mailshard agent (bad greeting)"));
    if (ok->version != wire::kProtocolVersion)
      return fail(Error::unsupported(fmt::format("agent speaks protocol version {}, this mailshard speaks {}",
                                                 ok->version, wire::kProtocolVersion)));
    if (ok->features & wire::kFeatureCompress)
      if (auto st = ch->io->enable_compression(); !st.ok()) return fail(st.error());
    spdlog::debug("{}: connected to {}", opts_.name, printable(ok->server));
    return ch;
  }

  AgentOptions opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Channel>> idle_;
  int open_ = 0;
  std::atomic<uint64_t> wire_bytes_{0};
};

Lease::~Lease() {
  if (pool_ && ch_) pool_->release(std::move(ch_), broken_);
}

// Sends items[0..n) in frames of ~kSoft bytes.
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

// Receives result frames of `type` until the last one.
template <typename T, typename Dec>
Status recv_chunked(Lease& lease, MsgType type, std::vector<T>& out, Dec dec, std::string_view peer) {
  bool last = false;
  while (!last) {
    Frame f = MS_TRY(lease.recv());
    if (f.type != type) return lease.refuse(f, wire::msg_type_name(type), peer);
    MS_CHECK(lease.check(dec(f.payload, out, last)));
  }
  return {};
}

// ---------------------------------------------------------------------------

class AgentSourceFile final : public SourceFile {
 public:
  AgentSourceFile(Lease& lease, FileAttrs attrs, const std::string& peer) : lease_(lease), attrs_(attrs), peer_(peer) {}
  const FileAttrs& attrs() const override { return attrs_; }
  bool ended() const { return ended_; }

  Result<bool> next_chunk(Chunk& out) override {
    if (ended_) return false;
    frame_ = MS_TRY(lease_.recv());
    if (frame_.type == MsgType::kData) {
      int64_t off;
      std::string_view bytes;
      MS_CHECK(lease_.check(wire::decode_data(frame_.payload, off, bytes)));
      out = Chunk{off, bytes.data(), bytes.size()};
      return true;
    }
    if (frame_.type == MsgType::kFileEnd) {
      uint64_t blocks = 0;
      MS_CHECK(lease_.check(wire::decode_trailer(frame_.payload, trailer_, blocks)));
      if (blocks) {
        auto raw = lease_.io().recv_blob(blocks * 16, kMaxSignature);
        if (!raw.ok()) return lease_.broke(std::move(raw).error());
        MS_CHECK(lease_.check(wire::decode_hashes(*raw, trailer_.new_blocks)));
      }
      ended_ = true;
      return false;
    }
    // An ERROR here means the agent gave up in the middle of a file: the
    // read cannot go on, so the channel is not reused.
    return lease_.broke(wire::unexpected(frame_, "DATA or FILE_END", peer_));
  }

  Result<SourceTrailer> finish() override {
    Chunk c;
    while (!ended_) MS_TRY(next_chunk(c));
    return trailer_;
  }

 private:
  Lease& lease_;
  FileAttrs attrs_;
  std::string peer_;
  Frame frame_;
  SourceTrailer trailer_;
  bool ended_ = false;
};

class AgentReader final : public FileReader {
 public:
  AgentReader(Lease lease, std::string peer) : lease_(std::move(lease)), peer_(std::move(peer)) {}
  ~AgentReader() override {
    // Abandoned mid-stream: the agent is still sending; drop the channel.
    if (!done_ && !lease_.broken()) lease_.broke(Error::internal("reader abandoned"));
  }

  Result<Item> next() override {
    if (done_) return Error::not_found("no more files");
    if (current_ && !current_->ended()) MS_TRY(current_->finish());
    current_.reset();
    Frame f = MS_TRY(lease_.recv());
    if (f.type == MsgType::kReadEnd) {
      done_ = true;
      return Error::not_found("no more files");
    }
    if (f.type != MsgType::kFileMeta) {
      Error e = lease_.refuse(f, "FILE_META or READ_END", peer_);
      done_ = true;  // the agent ends a read with ERROR: nothing follows
      return e;
    }
    Item item;
    FileAttrs attrs;
    MS_CHECK(lease_.check(wire::decode_file_meta(f.payload, item.status, item.error, attrs)));
    if (item.status == ReadStatus::kOk) {
      current_ = std::make_unique<AgentSourceFile>(lease_, attrs, peer_);
      item.file = current_.get();
    }
    return item;
  }

 private:
  Lease lease_;
  std::string peer_;
  std::unique_ptr<AgentSourceFile> current_;
  bool done_ = false;
};

class AgentWriter final : public FileWriter {
 public:
  AgentWriter(Lease lease, WriterOptions opts, std::string peer)
      : lease_(std::move(lease)), opts_(opts), peer_(std::move(peer)) {}
  ~AgentWriter() override {
    // A batch left open: the agent waits for COMMIT; drop the channel.
    if (begun_ && !lease_.broken()) lease_.broke(Error::internal("writer abandoned"));
  }

  Status write(const WriteSpec& spec, SourceFile& src) override {
    if (!begun_) {
      wire::Encoder e;
      e.u8(static_cast<uint8_t>(opts_.durability));
      MS_CHECK(lease_.check(lease_.io().send(MsgType::kWriteBegin, e.bytes())));
      begun_ = true;
    }
    ++files_;
    if (!aborted_ && lease_.io().readable_now()) {
      Frame f = MS_TRY(lease_.recv());
      if (f.type != MsgType::kWriteAbort) return lease_.refuse(f, "nothing", peer_);
      aborted_ = true;
    }
    if (aborted_) {  // the agent ignores files until COMMIT; do not send them
      Chunk c;
      while (MS_TRY(src.next_chunk(c))) {
      }
      MS_TRY(src.finish());
      return {};
    }
    FrameChannel& io = lease_.io();
    MS_CHECK(lease_.check(io.send(MsgType::kFileBegin, wire::encode_file_begin(spec, src.attrs()))));
    Chunk c;
    while (MS_TRY(src.next_chunk(c))) {
      if (opts_.throttle) opts_.throttle->consume(static_cast<int64_t>(c.size));
      // A chunk may be bigger than a frame (a local block diff run): split it.
      for (size_t off = 0; off < c.size; off += (1u << 20)) {
        size_t n = std::min<size_t>(c.size - off, 1u << 20);
        MS_CHECK(lease_.check(io.send_data(c.offset + static_cast<int64_t>(off), c.data + off, n)));
      }
    }
    SourceTrailer t = MS_TRY(src.finish());
    t.new_blocks.clear();
    return lease_.check(io.send(MsgType::kFileEnd, wire::encode_trailer(t)));
  }

  Result<std::vector<WriteResult>> commit() override {
    std::vector<WriteResult> out;
    if (!begun_) return out;
    MS_CHECK(lease_.check(lease_.io().send(MsgType::kCommit, "")));
    bool last = false;
    while (!last) {
      Frame f = MS_TRY(lease_.recv());
      if (f.type == MsgType::kWriteAbort && !aborted_) {
        aborted_ = true;
        continue;
      }
      if (f.type != MsgType::kCommitResult) {
        Error e = lease_.refuse(f, "COMMIT_RESULT", peer_);
        begun_ = false;  // an ERROR ends the batch on the agent too
        files_ = 0;
        return e;
      }
      MS_CHECK(lease_.check(wire::decode_write_results(f.payload, out, last)));
    }
    if (out.size() != files_)
      return lease_.broke(Error::corrupt(fmt::format("protocol error: {} results for {} files from {}", out.size(),
                                                     files_, peer_)));
    files_ = 0;
    aborted_ = false;
    begun_ = false;
    return out;
  }

 private:
  Lease lease_;
  WriterOptions opts_;
  std::string peer_;
  size_t files_ = 0;
  bool begun_ = false;
  bool aborted_ = false;
};

// ---------------------------------------------------------------------------

class AgentTransport final : public Transport {
 public:
  explicit AgentTransport(const AgentOptions& opts) : pool_(opts), name_(opts.name), max_(opts.max_streams) {}

  Status warm_up() {
    auto lease = MS_TRY(pool_.acquire());
    return {};
  }

  std::string describe() const override { return name_; }
  int max_streams() const override { return max_; }

  Result<TreeListing> list_tree(const std::string& home) override {
    auto lease = MS_TRY(pool_.acquire());
    wire::Encoder e;
    e.str(home);
    MS_CHECK(lease.check(lease.io().send(MsgType::kList, e.bytes())));
    TreeListing out;
    while (true) {
      Frame f = MS_TRY(lease.recv());
      if (f.type == MsgType::kListDir) {
        MS_CHECK(lease.check(wire::decode_list_dir(f.payload, out)));
        continue;
      }
      if (f.type == MsgType::kListEnd) {
        wire::Decoder d(f.payload);
        auto n = d.u64();
        if (!n.ok() || *n != out.size())
          return lease.broke(Error::corrupt(fmt::format("protocol error: listing from {} is incomplete", name_)));
        return out;
      }
      return lease.refuse(f, "LIST_DIR", name_);
    }
  }

  Result<std::vector<StatResult>> stat(const std::vector<StatRequest>& requests) override {
    auto lease = MS_TRY(pool_.acquire());
    MS_CHECK(lease.check(send_chunked(lease.io(), MsgType::kStat, requests, wire::encode_stat_requests, 100)));
    std::vector<StatResult> out;
    MS_CHECK(recv_chunked(lease, MsgType::kStatResult, out, wire::decode_stat_results, name_));
    if (out.size() != requests.size()) return lease.broke(Error::corrupt("protocol error: stat result count"));
    return out;
  }

  Result<std::vector<Result<std::string>>> head(const std::vector<std::string>& paths, uint32_t max_bytes) override {
    auto lease = MS_TRY(pool_.acquire());
    auto enc = [&](const std::vector<std::string>& p, size_t b, size_t e, bool last) {
      return wire::encode_head_request(max_bytes, p, b, e, last);
    };
    MS_CHECK(lease.check(send_chunked(lease.io(), MsgType::kHead, paths, enc, 100)));
    std::vector<Result<std::string>> out;
    MS_CHECK(recv_chunked(lease, MsgType::kHeadResult, out, wire::decode_head_results, name_));
    if (out.size() != paths.size()) return lease.broke(Error::corrupt("protocol error: head result count"));
    return out;
  }

  Result<std::vector<Status>> apply(const std::vector<TreeOp>& ops) override {
    auto lease = MS_TRY(pool_.acquire());
    MS_CHECK(lease.check(send_chunked(lease.io(), MsgType::kApply, ops, wire::encode_ops, 200)));
    std::vector<Status> out;
    MS_CHECK(recv_chunked(lease, MsgType::kApplyResult, out, wire::decode_statuses, name_));
    if (out.size() != ops.size()) return lease.broke(Error::corrupt("protocol error: apply result count"));
    return out;
  }

  Result<Signature> signature(const SignatureRequest& request) override {
    auto all = MS_TRY(signatures({request}));
    return std::move(all.front());
  }

  // Pipelined: a round of small SIGNATURE requests (well below a pipe
  // buffer, so the agent's replies never wait for our requests) is sent at
  // once, then the replies are read in order.
  Result<std::vector<Result<Signature>>> signatures(const std::vector<SignatureRequest>& requests) override {
    constexpr size_t kRound = 128;
    std::vector<Result<Signature>> out;
    out.reserve(requests.size());
    auto lease = MS_TRY(pool_.acquire());
    for (size_t lo = 0; lo < requests.size(); lo += kRound) {
      size_t hi = std::min(requests.size(), lo + kRound);
      for (size_t i = lo; i < hi; ++i)
        MS_CHECK(lease.check(lease.io().send(MsgType::kSignature, wire::encode_signature_request(requests[i]))));
      MS_CHECK(lease.check(lease.io().flush()));
      for (size_t i = lo; i < hi; ++i) {
        Signature sig;
        while (true) {
          Frame f = MS_TRY(lease.recv());
          if (f.type == MsgType::kBlob) {
            if (sig.bytes.size() + f.payload.size() > kMaxSignature)
              return lease.broke(Error::corrupt("signature too large"));
            sig.bytes += f.payload;
            continue;
          }
          if (f.type == MsgType::kSigEnd) {
            uint64_t len = 0;
            MS_CHECK(lease.check(wire::decode_sig_end(f.payload, sig.basis, len)));
            if (len != sig.bytes.size()) return lease.broke(Error::corrupt("protocol error: signature length"));
            out.emplace_back(std::move(sig));
            break;
          }
          Error e = lease.refuse(f, "SIG_END", name_);
          if (lease.broken()) return e;
          out.emplace_back(std::move(e));  // this file's failure; the next reply follows
          break;
        }
      }
    }
    return out;
  }

  Result<FsSpace> space(const std::string& path) override {
    auto lease = MS_TRY(pool_.acquire());
    wire::Encoder e;
    e.str(path);
    MS_CHECK(lease.check(lease.io().send(MsgType::kSpace, e.bytes())));
    Frame f = MS_TRY(lease.recv());
    if (f.type != MsgType::kSpaceResult) return lease.refuse(f, "SPACE_RESULT", name_);
    auto s = wire::decode_space(f.payload);
    if (!s.ok()) return lease.broke(std::move(s).error());
    return s;
  }

  // One SIZE request per kMaxSizeHomes homes (the inventory asks for fewer);
  // results are handed to the sink frame by frame as the agent streams them.
  Status size_homes(const std::vector<std::string>& homes, const HomeSizeSink& sink) override {
    if (homes.empty()) return {};
    auto lease = MS_TRY(pool_.acquire());
    for (size_t lo = 0; lo < homes.size(); lo += wire::kMaxSizeHomes) {
      const size_t hi = std::min(homes.size(), lo + wire::kMaxSizeHomes);
      size_t i = lo, per_frame = std::max<size_t>(1, kSoft / 100);
      do {
        size_t end = std::min(hi, i + per_frame);
        MS_CHECK(lease.check(lease.io().send(MsgType::kSize, wire::encode_size_request(homes, i, end, end == hi))));
        i = end;
      } while (i < hi);
      MS_CHECK(lease.check(lease.io().flush()));
      size_t next = lo;
      bool last = false;
      std::vector<Result<MailboxSize>> batch;
      while (!last) {
        Frame f = MS_TRY(lease.recv());
        if (f.type != MsgType::kSizeResult) return lease.refuse(f, "SIZE_RESULT", name_);
        batch.clear();
        MS_CHECK(lease.check(wire::decode_size_results(f.payload, batch, last)));
        if (batch.size() > hi - next || (last && batch.size() != hi - next))
          return lease.broke(Error::corrupt(fmt::format("protocol error: {} sent {} sizes for {} homes", name_,
                                                        next - lo + batch.size(), hi - lo)));
        for (auto& r : batch) {
          Status st = sink(next++, std::move(r));
          if (st.ok()) continue;
          // Unless this was the answer's last frame, the rest is still coming:
          // the channel cannot be reused.
          if (!last) lease.broke(Error::internal("size results abandoned"));
          return st;
        }
      }
    }
    return {};
  }

  Result<std::unique_ptr<FileReader>> open_reader(std::vector<ReadSpec> specs) override {
    auto lease = MS_TRY(pool_.acquire());
    FrameChannel& io = lease.io();
    for (const auto& s : specs) {
      MS_CHECK(lease.check(io.send(MsgType::kReadSpec, wire::encode_read_spec(s))));
      if (!s.signature.empty()) MS_CHECK(lease.check(io.send_blob(s.signature)));
      if (!s.old_blocks.empty())
        MS_CHECK(lease.check(io.send_blob(wire::encode_hashes(s.old_blocks, 0, s.old_blocks.size()))));
    }
    MS_CHECK(lease.check(io.send(MsgType::kReadGo, "")));
    MS_CHECK(lease.check(io.flush()));
    return std::unique_ptr<FileReader>(std::make_unique<AgentReader>(std::move(lease), name_));
  }

  Result<std::unique_ptr<FileWriter>> open_writer(const WriterOptions& options) override {
    auto lease = MS_TRY(pool_.acquire());
    return std::unique_ptr<FileWriter>(std::make_unique<AgentWriter>(std::move(lease), options, name_));
  }

  Result<std::vector<CopyOutcome>> pull(const PeerRef& peer, std::vector<CopySpec> specs,
                                        const WriterOptions& options) override {
    auto lease = MS_TRY(pool_.acquire());
    FrameChannel& io = lease.io();
    MS_CHECK(lease.check(io.send(MsgType::kPull, wire::encode_pull(peer, options.durability))));
    for (const auto& c : specs) {
      MS_CHECK(lease.check(io.send(MsgType::kPullSpec, wire::encode_pull_spec(c))));
      if (!c.read.signature.empty()) MS_CHECK(lease.check(io.send_blob(c.read.signature)));
      if (!c.read.old_blocks.empty())
        MS_CHECK(lease.check(io.send_blob(wire::encode_hashes(c.read.old_blocks, 0, c.read.old_blocks.size()))));
    }
    MS_CHECK(lease.check(io.send(MsgType::kPullGo, "")));
    MS_CHECK(lease.check(io.flush()));
    std::vector<CopyOutcome> out;
    out.reserve(specs.size());
    std::vector<uint64_t> blocks;
    bool last = false;
    while (!last) {
      Frame f = MS_TRY(lease.recv());
      if (f.type != MsgType::kPullResult) return lease.refuse(f, "PULL_RESULT", name_);
      const size_t first = out.size();
      blocks.clear();
      MS_CHECK(lease.check(wire::decode_pull_results(f.payload, out, blocks, last)));
      if (out.size() > specs.size())
        return lease.broke(Error::corrupt(fmt::format("protocol error: {} sent more outcomes than files", name_)));
      for (size_t k = 0; k < blocks.size(); ++k) {
        if (!blocks[k]) continue;
        auto raw = io.recv_blob(blocks[k] * 16, kMaxSignature);
        if (!raw.ok()) return lease.broke(std::move(raw).error());
        MS_CHECK(lease.check(wire::decode_hashes(*raw, out[first + k].new_blocks)));
      }
    }
    if (out.size() != specs.size())
      return lease.broke(Error::corrupt(fmt::format("protocol error: {} outcomes for {} files from {}", out.size(),
                                                    specs.size(), name_)));
    return out;
  }

  int64_t wire_bytes() const override { return static_cast<int64_t>(pool_.wire_bytes()); }

 private:
  ChannelPool pool_;
  std::string name_;
  int max_;
};

}  // namespace

Result<std::unique_ptr<Transport>> make_agent_transport(const AgentOptions& options) {
  if (options.argv.empty()) return Error::invalid(fmt::format("{}: empty agent command", options.name));
  if (options.max_streams < 1) return Error::invalid(fmt::format("{}: max_streams must be at least 1", options.name));
  // A dead agent must be an EPIPE error on write, not a signal that kills us.
  ::signal(SIGPIPE, SIG_IGN);
  auto t = std::make_unique<AgentTransport>(options);
  MS_CHECK(t->warm_up());
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace mailshard
