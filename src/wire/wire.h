// The agent wire protocol (docs/agent-protocol.md): length-prefixed frames
// over a byte stream (a pipe to `mailshard agent --stdio`, usually through
// ssh), and the encoding of every message. Shared by the agent (server) and
// the agent transport (client).
//
// Frame: u32 little-endian length L (of what follows), u8 type, L-1 bytes of
// payload. L is at least 1 and at most kMaxFrameBytes; anything else is a
// corrupt stream. Integers are little-endian fixed width; a string is a u32
// length and that many bytes. Decoders never trust a length: every read is
// bounds-checked and a malformed payload is kCorrupt, never a crash.
//
// Thread-safety: a FrameChannel is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/codec.h"
#include "core/transport.h"
#include "util/result.h"

namespace mailshard::wire {

// 2: SIZE / SIZE_RESULT (mailbox sizes scanned by the agent).
// 3: PULL (the direct data path: the agent copies from a peer agent).
// 4: APPLY kind 10, place (a rename that never replaces; a spool INBOX's flip).
inline constexpr uint32_t kProtocolVersion = 4;
inline constexpr char kMagic[4] = {'M', 'S', 'A', 'G'};
// 4 MiB: DATA frames carry 256 KiB; listing and result frames are cut well below this.
inline constexpr uint32_t kMaxFrameBytes = 4u << 20;
// Listing/result frames are closed at about this size.
inline constexpr size_t kSoftFrameBytes = 256u << 10;

enum class MsgType : uint8_t {
  kHello = 0x01,         // c->s: magic, version, max_frame
  kHelloOk = 0x02,       // s->c: magic, version, max_frame, server description
  kBye = 0x03,           // c->s: end of session
  kList = 0x10,          // c->s: home
  kStat = 0x11,          // c->s: requests..., last
  kHead = 0x12,          // c->s: max_bytes, paths..., last
  kApply = 0x13,         // c->s: ops..., last
  kSignature = 0x14,     // c->s: path, block_len, strong_len
  kSpace = 0x15,         // c->s: path
  kReadSpec = 0x16,      // c->s: one ReadSpec header (blob lengths); its blobs follow
  kBlob = 0x17,          // both: raw bytes of the blob announced before
  kReadGo = 0x18,        // c->s: start streaming the specs sent so far
  kSize = 0x19,          // c->s: homes..., last
  kPull = 0x1A,          // c->s: peer name, peer argv, durability; PULL_SPEC... PULL_GO follow
  kPullSpec = 0x1B,      // c->s: one CopySpec header (blob lengths); its blobs follow
  kPullGo = 0x1C,        // c->s: run the copy of the specs sent so far
  kWriteBegin = 0x20,    // c->s: durability
  kFileBegin = 0x21,     // c->s: WriteSpec + source attrs
  kData = 0x22,          // both: i64 offset, bytes
  kFileEnd = 0x23,       // both: SourceTrailer (blocks follow as blobs)
  kCommit = 0x24,        // c->s
  kCommitResult = 0x25,  // s->c: WriteResults..., last
  kListDir = 0x30,       // s->c: one directory (or a continuation of it)
  kListEnd = 0x31,       // s->c: u64 directory count
  kStatResult = 0x32,    // s->c: StatResults..., last
  kHeadResult = 0x33,    // s->c: results..., last
  kApplyResult = 0x34,   // s->c: statuses..., last
  kSigEnd = 0x35,        // s->c: basis attrs, u64 signature length (bytes came as blobs)
  kSpaceResult = 0x36,   // s->c: total, avail
  kFileMeta = 0x37,      // s->c: ReadStatus, error?, attrs
  kReadEnd = 0x38,       // s->c: all files of the read were sent
  kWriteAbort = 0x39,    // s->c: the write session failed; frames are ignored until COMMIT
  kSizeResult = 0x3A,    // s->c: one MailboxSize or error per home..., last
  kPullResult = 0x3B,    // s->c: CopyOutcomes..., last; their block hashes follow as blobs
  kZFrames = 0x40,       // both: deflated control frames (after a HELLO agreeing on kFeatureCompress)
  kError = 0x7F,         // s->c: code, message (answers any request)
};
std::string_view msg_type_name(MsgType t);

struct Frame {
  MsgType type = MsgType::kError;
  std::string payload;
};

// ---------------------------------------------------------------------------
// Encoding

// Payloads use the project's one binary codec (core/codec.h); a malformed
// payload reads "malformed frame: <what>".
using mailshard::Encoder;
using mailshard::ErrorValue;

class Decoder : public mailshard::Decoder {
 public:
  explicit Decoder(std::string_view in) : mailshard::Decoder(in, "malformed frame") {}
};

// ---------------------------------------------------------------------------
// Message bodies (each encode_x has a decode_x; decode refuses trailing bytes)

// HELLO features (a bit set; HELLO_OK answers with those both sides have).
// kFeatureCompress: control frames (listings, stats, results, specs: every
// type but DATA, BLOB and the per-file FILE_BEGIN / FILE_META / FILE_END)
// travel deflated inside ZFRAMES frames, one zlib stream per direction.
inline constexpr uint32_t kFeatureCompress = 1;

struct Hello {
  uint32_t version = kProtocolVersion;
  uint32_t max_frame = kMaxFrameBytes;
  std::string server;  // HELLO_OK only: the server's description
  uint32_t features = 0;  // optional on the wire (absent = 0)
};
std::string encode_hello(const Hello& h, bool with_server);
Result<Hello> decode_hello(std::string_view p, bool with_server);

std::string encode_error(const Error& e);
Result<ErrorValue> decode_error(std::string_view p);

// kStat: requests + last flag.
std::string encode_stat_requests(const std::vector<StatRequest>& r, size_t begin, size_t end, bool last);
Status decode_stat_requests(std::string_view p, std::vector<StatRequest>& out, bool& last);
std::string encode_stat_results(const std::vector<StatResult>& r, size_t begin, size_t end, bool last);
Status decode_stat_results(std::string_view p, std::vector<StatResult>& out, bool& last);

std::string encode_head_request(uint32_t max_bytes, const std::vector<std::string>& paths, size_t begin, size_t end,
                                bool last);
Status decode_head_request(std::string_view p, uint32_t& max_bytes, std::vector<std::string>& out, bool& last);
std::string encode_head_results(const std::vector<Result<std::string>>& r, size_t begin, size_t end, bool last);
Status decode_head_results(std::string_view p, std::vector<Result<std::string>>& out, bool& last);

std::string encode_ops(const std::vector<TreeOp>& ops, size_t begin, size_t end, bool last);
Status decode_ops(std::string_view p, std::vector<TreeOp>& out, bool& last);
std::string encode_statuses(const std::vector<Status>& r, size_t begin, size_t end, bool last);
Status decode_statuses(std::string_view p, std::vector<Status>& out, bool& last);

std::string encode_signature_request(const SignatureRequest& r);
Result<SignatureRequest> decode_signature_request(std::string_view p);
std::string encode_sig_end(const FileAttrs& basis, uint64_t length);
Status decode_sig_end(std::string_view p, FileAttrs& basis, uint64_t& length);

std::string encode_space(const FsSpace& s);
Result<FsSpace> decode_space(std::string_view p);

// kSize: at most this many homes in one request (its frames together); the
// client cuts longer lists into several requests. 100k homes of a few dozen
// bytes is a few MB held by the agent, and a request for more is malformed.
inline constexpr uint32_t kMaxSizeHomes = 100000;
// Notes per home in a SIZE_RESULT (the scanner writes none today).
inline constexpr uint32_t kMaxSizeNotes = 16;

// kSize: homes[begin, end) + last. Decoding appends to out and refuses a
// total above kMaxSizeHomes.
std::string encode_size_request(const std::vector<std::string>& homes, size_t begin, size_t end, bool last);
Status decode_size_request(std::string_view p, std::vector<std::string>& out, bool& last);
// kSizeResult: one entry per home, in request order, + last. Decoding
// refuses negative figures (messages may be -1: unknown) and more than
// kMaxSizeNotes notes.
std::string encode_size_results(const std::vector<Result<MailboxSize>>& r, size_t begin, size_t end, bool last);
Status decode_size_results(std::string_view p, std::vector<Result<MailboxSize>>& out, bool& last);

// kPull: the peer to open and the writer's durability. At most
// kMaxPeerArgs arguments.
inline constexpr uint32_t kMaxPeerArgs = 64;
std::string encode_pull(const PeerRef& peer, Durability durability);
Status decode_pull(std::string_view p, PeerRef& peer, Durability& durability);
// kPullSpec: the spec without its read's blobs (signature, old block
// hashes), and their lengths, which follow as for kReadSpec.
std::string encode_pull_spec(const CopySpec& c);
Status decode_pull_spec(std::string_view p, CopySpec& c, uint64_t& signature_len, uint64_t& block_count);
// kPullResult: outcomes[begin, end) + last. Each outcome's new_blocks are
// not in the frame: decoding leaves them empty and appends their counts to
// block_counts (one per outcome); the client then reads a blob of 16 bytes
// per hash for each non-zero count, in order.
std::string encode_pull_results(const std::vector<CopyOutcome>& r, size_t begin, size_t end, bool last);
Status decode_pull_results(std::string_view p, std::vector<CopyOutcome>& out, std::vector<uint64_t>& block_counts,
                           bool& last);

// kListDir: one directory's entries[begin, end); continuation = more of the
// previous frame's directory.
std::string encode_list_dir(const DirListing& d, size_t begin, size_t end, bool continuation);
// Appends to out (a new DirListing, or entries of out.back() for a continuation).
Status decode_list_dir(std::string_view p, TreeListing& out);

// Block hashes travel as one blob of 16 bytes each, at most as large as the
// largest signature (256 MiB). A larger count is a malformed frame: 2^60
// blocks would make the blob length wrap to 0.
inline constexpr uint64_t kMaxBlockHashes = (uint64_t{256} << 20) / 16;

// kReadSpec: the spec without its blobs, and the blob lengths that follow.
// A block count over kMaxBlockHashes is kCorrupt.
std::string encode_read_spec(const ReadSpec& s);
Status decode_read_spec(std::string_view p, ReadSpec& s, uint64_t& signature_len, uint64_t& block_count);

std::string encode_file_meta(ReadStatus status, const std::optional<Error>& error, const FileAttrs& attrs);
Status decode_file_meta(std::string_view p, ReadStatus& status, std::optional<Error>& error, FileAttrs& attrs);

std::string encode_trailer(const SourceTrailer& t);  // blocks are sent as blobs after it
Status decode_trailer(std::string_view p, SourceTrailer& t, uint64_t& block_count);

std::string encode_file_begin(const WriteSpec& w, const FileAttrs& source);
Status decode_file_begin(std::string_view p, WriteSpec& w, FileAttrs& source);

std::string encode_write_results(const std::vector<WriteResult>& r, size_t begin, size_t end, bool last);
Status decode_write_results(std::string_view p, std::vector<WriteResult>& out, bool& last);

// kData header: i64 offset, then the bytes.
Status decode_data(std::string_view p, int64_t& offset, std::string_view& bytes);

// Blobs of hashes: 16 bytes each (hi, lo little-endian).
std::string encode_hashes(const std::vector<Hash128>& h, size_t begin, size_t end);
Status decode_hashes(std::string_view p, std::vector<Hash128>& out);

// ---------------------------------------------------------------------------
// Framed, buffered I/O on a pair of fds.

class FrameChannel {
 public:
  // Does not own the fds.
  FrameChannel(int in_fd, int out_fd, std::string peer);
  ~FrameChannel();
  FrameChannel(const FrameChannel&) = delete;
  FrameChannel& operator=(const FrameChannel&) = delete;

  // From now on control frames are deflated on the way out (ZFRAMES) and
  // ZFRAMES are inflated on the way in (kFeatureCompress; both sides switch
  // right after HELLO_OK). recv() hands out the inner frames one by one.
  Status enable_compression();

  // Queues a frame; flushed when the buffer passes 256 KiB or on flush().
  Status send(MsgType type, std::string_view payload);
  // A DATA frame without copying the payload twice.
  Status send_data(int64_t offset, const char* data, size_t size);
  // Sends a blob as one or more BLOB frames.
  Status send_blob(std::string_view bytes);
  Status flush();

  // The next frame. Errors: kUnavailable if the peer closed the stream
  // ("<peer> closed the connection", or "... in the middle of a frame"),
  // kCorrupt for a frame length of 0 or above kMaxFrameBytes.
  Result<Frame> recv();
  // Receives a blob of exactly `length` bytes sent with send_blob().
  Result<std::string> recv_blob(uint64_t length, uint64_t max_length);
  // True if a frame (or EOF) is ready to be read without blocking.
  bool readable_now();
  // From now on a read that waits longer than `ms` for a byte fails with
  // kTimeout ("<peer> sent nothing for N s"); 0 (the default) waits forever.
  void set_idle_timeout_ms(int64_t ms) { idle_timeout_ms_ = ms; }
  // Forgets the fds (they are about to be closed): later I/O fails with EBADF.
  void detach() {
    in_ = out_ = -1;
    obuf_.clear();
  }

  // The peer closed the stream at a frame boundary (a clean end).
  bool closed() const { return closed_; }
  uint64_t bytes_out() const { return bytes_out_; }
  uint64_t bytes_in() const { return bytes_in_; }

 private:
  Status fill(size_t need);
  Result<Frame> recv_raw();
  Status deflate_pending();
  // A whole inner frame at the front of plain_, if there is one.
  Result<bool> next_plain(Frame& f);
  struct Zip;
  std::unique_ptr<Zip> zip_;
  std::string zin_;              // control frames waiting to be deflated
  std::string plain_;            // inflated frames not yet returned
  size_t plain_pos_ = 0;
  int in_, out_;
  std::string peer_;
  std::string obuf_;
  std::string ibuf_;
  size_t ipos_ = 0;
  bool closed_ = false;
  uint64_t bytes_out_ = 0, bytes_in_ = 0;
  int64_t idle_timeout_ms_ = 0;
};

// "expected <want> from <peer>, got <type>" (kCorrupt), or the error an
// ERROR frame carries (with its code) when the peer sent one.
Error unexpected(const Frame& f, std::string_view want, std::string_view peer);

}  // namespace mailshard::wire
