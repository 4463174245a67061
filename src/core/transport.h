// Transport: file operations on ONE server's mail root, as the sync engine
// needs them. Two implementations share one server-side code path (like
// Dovecot's dsync pipe vs ssh): `local` runs the operations in this process,
// `agent` sends them over a framed pipe to `mailshard agent --stdio --root R`
// (docs/agent-protocol.md), started through any command (ssh in production).
//
// Shape: every call is coarse. A listing is one call for a whole home; stat,
// head and apply take batches; file contents move as a stream of files
// (FileReader on the source, FileWriter on the destination) so that 100k small
// files through a pipe are a few hundred frames per round trip, not 100k
// round trips. Parallelism comes from several streams (one per thread); the
// number a server allows is max_streams().
//
// Paths: relative to the transport root, '/'-separated, no leading '/', no
// "." or ".." component, no empty component; "" is the root itself. Anything
// else is kInvalidInput. No symlink is ever followed, neither as the last
// component nor on the way (a path through a symlink is kInvalidInput), so
// nothing outside the root is read or written.
//
// Errors (per call): kInvalidInput (bad path), kNotFound, kPermission,
// kNoSpace, kUnavailable (an agent died or closed the pipe), kCorrupt (a
// malformed frame or stream), kInternal. Batch calls report per-item failures
// in their results and fail as a whole only when the transport itself failed.
//
// Thread-safety: a Transport may be used from several threads at once; each
// FileReader/FileWriter belongs to one thread. A thread must not hold two
// open streams of the same transport at once (an agent transport has at most
// max_streams() channels and would wait for itself).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/mailbox_sizer.h"
#include "util/hash.h"
#include "util/result.h"

namespace mailshard {

enum class EntryType : uint8_t { kUnknown = 0, kFile = 1, kDir = 2, kSymlink = 3, kOther = 4 };

// What lstat said about an entry: the subset a mailbox copy must keep.
struct FileAttrs {
  EntryType type = EntryType::kUnknown;
  uint32_t mode = 0;     // permission bits incl. setuid/setgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;  // nanoseconds since the epoch
  int64_t ctime_ns = 0;
  uint64_t ino = 0;
  uint32_t nlink = 0;
  bool operator==(const FileAttrs&) const = default;
};

// One name from readdir, with the type from d_type (never stat'ed).
struct DirEntry {
  std::string name;
  EntryType type = EntryType::kUnknown;
};

// One directory of a listing. `path` is relative to the listed home ("" is
// the home itself); `attrs` are the directory's own (always lstat'ed: a home
// has tens of directories, so this is cheap).
struct DirListing {
  std::string path;
  FileAttrs attrs;
  std::vector<DirEntry> entries;  // in readdir order
};

// A whole tree: parents before children, every directory once. Symlinked
// directories are entries of type kSymlink and are not descended into.
using TreeListing = std::vector<DirListing>;

// What to hash while stat'ing a regular file (one read pass).
struct HashSpec {
  bool whole = false;       // XXH3-128 of the whole content
  int64_t prefix_len = -1;  // also XXH3-128 of the first prefix_len bytes (append detection); -1 = no
};

struct StatRequest {
  std::string path;
  HashSpec hash;
};

struct StatResult {
  std::optional<Error> error;  // kNotFound if the entry does not exist
  FileAttrs attrs;
  std::string link_target;     // symlinks: readlink()
  std::optional<Hash128> hash;         // HashSpec::whole
  std::optional<Hash128> prefix_hash;  // HashSpec::prefix_len (absent if the file is shorter)
};

// Namespace changes, applied in order. Idempotency is the caller's business:
// each op reports its own result (e.g. kNotFound for an unlink of a missing
// name), and later ops still run.
struct TreeOp {
  enum class Kind : uint8_t {
    kMkdir = 1,     // path; attrs per attr_mask if created; an existing dir is left alone (kConflict if not a dir)
    kRename = 2,    // from -> path (files or directories, replaces a file at path)
    kUnlink = 3,    // path (a file or symlink)
    kRmdir = 4,     // path (must be empty)
    kSymlink = 5,   // path -> target text `from` (replaces a file or symlink at path); attrs owner/mtime
    kLink = 6,      // hard link: existing `from` -> new path (replaces a file at path)
    kSetAttrs = 7,  // path; the attrs selected by attr_mask
    kSyncDir = 8,   // fsync the directory `path` (durability of earlier renames/unlinks)
    kSyncFs = 9,    // syncfs() of the filesystem holding `path`: everything before it is durable
    kPlace = 10,    // from -> path (a file), never replacing: kConflict when path exists. Atomic
                    // (renameat2 RENAME_NOREPLACE); where the filesystem lacks that (NFS), a hard
                    // link then the unlink of `from`, so a crash between leaves both names on one inode
  };
  static constexpr uint8_t kOwner = 1, kMode = 2, kMtime = 4, kAllAttrs = 7;

  Kind kind = Kind::kMkdir;
  std::string path;
  std::string from;
  FileAttrs attrs;
  uint8_t attr_mask = 0;
};

// A file to read on the source.
struct ReadSpec {
  enum class Mode : uint8_t {
    kWhole = 1,      // the content from `offset` to the end (offset > 0: an appended tail)
    kBlockDiff = 2,  // only the blocks whose hash differs from old_blocks, plus the tail
    kDelta = 3,      // a librsync delta against `signature`
  };
  ReadSpec() = default;
  explicit ReadSpec(std::string p) : path(std::move(p)) {}

  std::string path;
  Mode mode = Mode::kWhole;
  int64_t offset = 0;
  uint32_t block_size = 0;             // kBlockDiff
  uint64_t block_seed = 0;             // kBlockDiff: XXH3 seed of the block hashes
  std::vector<Hash128> old_blocks;     // kBlockDiff: hashes of the destination's blocks
  std::string signature;               // kDelta: the destination's librsync signature
  bool want_blocks = false;            // also return the new block hashes (block_size, block_seed)
};

enum class ReadStatus : uint8_t {
  kOk = 0,
  kVanished = 1,    // no such file any more (expunged or renamed meanwhile)
  kNotRegular = 2,  // it is now a directory, symlink, ...
  kFailed = 3,      // could not be read: see error
};

// One piece of a source file's body. For kWhole the offsets ascend from
// ReadSpec::offset, contiguous except where the source file has a hole (a gap
// reads as zeros; the writer leaves a hole, and extends the file to the
// source's size if it ends in one); for kBlockDiff they are the changed ranges in
// ascending order; for kDelta they are positions in the delta stream.
struct Chunk {
  int64_t offset = 0;
  const char* data = nullptr;
  size_t size = 0;
};

// What the source says after the body: the whole-file hash of the content it
// read (all of it, also for tails, block diffs and deltas) and whether the
// file stayed unchanged (size, mtime, ctime) while it was read.
struct SourceTrailer {
  Hash128 hash;
  bool stable = true;
  int64_t size = 0;                 // bytes of the file that the hash covers
  std::vector<Hash128> new_blocks;  // ReadSpec::want_blocks
};

// A file being read. Valid until the reader's next call to next().
class SourceFile {
 public:
  virtual ~SourceFile() = default;
  // lstat of the open file before reading.
  virtual const FileAttrs& attrs() const = 0;
  // The next piece of the body; false when the body is complete.
  virtual Result<bool> next_chunk(Chunk& out) = 0;
  // An fd of the open source file if it lives in this process (local
  // transport, Mode::kWhole), so a local writer can copy_file_range() from it
  // instead of reading the chunks; -1 otherwise. A writer that used it must
  // not call next_chunk().
  virtual int native_fd() const { return -1; }
  // After the body (or after native copying): the trailer. Hashes the file
  // itself if the body was not read through next_chunk(). May be called again
  // (a writer calls it; the caller may then read the trailer too).
  virtual Result<SourceTrailer> finish() = 0;
};

// The files of one read request, in request order.
class FileReader {
 public:
  virtual ~FileReader() = default;
  struct Item {
    ReadStatus status = ReadStatus::kOk;
    std::optional<Error> error;      // kFailed
    SourceFile* file = nullptr;      // kOk: valid until the next call
  };
  // Result of the next file; kNotFound when every file was returned.
  // A stream error (agent died, corrupt frame) fails the whole reader.
  virtual Result<Item> next() = 0;
};

// A file to write on the destination. Always into a temporary name next to
// `path`; published (renamed) by FileWriter::commit() once durable and
// verified, so no final name ever holds a partial file.
struct WriteSpec {
  enum class Kind : uint8_t {
    kNew = 1,    // body is the whole content
    kPatch = 2,  // body chunks are ranges written over a copy of the current file at `path`
                 // cut or extended to the source's size (block diffs, appended tails)
    kDelta = 3,  // body is a librsync delta against the current file at `path`
  };
  std::string path;
  Kind kind = Kind::kNew;
  FileAttrs attrs;  // owner, mode and mtime to give the file (the size is the source's)
};

enum class WriteStatus : uint8_t {
  kOk = 0,
  kSourceChanged = 1,  // the source changed while it was read: nothing published
  kHashMismatch = 2,   // the written temp did not hash to the source's hash: nothing published
  kFailed = 3,         // see error: nothing published
};

struct WriteResult {
  WriteStatus status = WriteStatus::kOk;
  std::optional<Error> error;
  Hash128 hash;            // of the published file (== the source's trailer hash)
  int64_t body_bytes = 0;  // bytes of body received (what crossed the wire)
};

// Spends bytes against a bandwidth budget; blocks while over it.
class Throttle {
 public:
  virtual ~Throttle() = default;
  virtual void consume(int64_t bytes) = 0;
};

// How a writer makes a batch durable before renaming it into place.
enum class Durability : uint8_t {
  kFsyncEach = 1,  // fsync every temp file at commit (after the whole batch is written)
  kSyncfs = 2,     // one syncfs() of the destination filesystem per batch
};

struct WriterOptions {
  Durability durability = Durability::kSyncfs;
  Throttle* throttle = nullptr;  // not owned; may be nullptr
};

class FileWriter {
 public:
  virtual ~FileWriter() = default;
  // Consumes src's body and trailer into a temp file for spec. Per-file
  // problems (source changed, hash mismatch, ENOSPC, ...) are reported by
  // commit(); an error here means the stream itself broke.
  virtual Status write(const WriteSpec& spec, SourceFile& src) = 0;
  // Makes every written temp durable, renames the good ones to their final
  // names and fsyncs their directories. One result per write(), in order.
  // Temps of failed files are removed. Blocks until done.
  virtual Result<std::vector<WriteResult>> commit() = 0;
};

struct SignatureRequest {
  std::string path;
  uint32_t block_len = 0;   // 0 = librsync's recommendation for the file size (rs_sig_args)
  uint32_t strong_len = 0;  // 0 = the maximum (32 bytes of BLAKE2)
};

struct Signature {
  std::string bytes;  // RS_RK_BLAKE2_SIG_MAGIC signature
  FileAttrs basis;    // lstat of the file it describes
};

struct FsSpace {
  int64_t total_bytes = 0;
  int64_t avail_bytes = 0;  // for an unprivileged writer (f_bavail)
};

// One file of a copy between two transports (copy_files, Transport::pull):
// read `read` on the source, write it as `kind` at `dst_path` on the
// destination.
struct CopySpec {
  ReadSpec read;
  WriteSpec::Kind kind = WriteSpec::Kind::kNew;
  std::string dst_path;
  // read.mode == kDelta with an empty read.signature: the destination
  // computes the signature of dst_path itself, with this block length (0 =
  // librsync's choice), so it never travels elsewhere. No basis there (it
  // does not exist) makes it a whole-file copy (CopyOutcome::whole_fallback).
  uint32_t basis_block_len = 0;
};

// What became of one CopySpec.
struct CopyOutcome {
  ReadStatus read = ReadStatus::kOk;
  std::optional<Error> error;       // read == kFailed
  FileAttrs attrs;                  // the source file's (read == kOk)
  bool whole_fallback = false;      // a delta without a basis, sent whole
  int64_t signature_bytes = 0;      // of the basis signature computed for it
  std::vector<Hash128> new_blocks;  // the trailer's (ReadSpec::want_blocks)
  bool written = false;             // read == kOk and the writer took it: `result` is its commit
  WriteResult result;
};

// Where a peer server's agent is reached from another server: the command
// that server runs (e.g. "ssh -T store1 mailshard agent --stdio --root R").
struct PeerRef {
  std::string name;               // for messages: "store1"
  std::vector<std::string> argv;
};

class Transport;

// Copies specs from src to dst through this process: one reader on src, one
// writer on dst (one stream of each), committed once at the end, outcomes
// in spec order. The one reader->writer loop of the project: the sync engine
// runs it in the controller (via-controller) and the agent runs it on the
// destination server against the peer (direct, Transport::pull). Errors as a
// whole are the transports' (a stream broke, a signature failed for a reason
// other than a missing basis); nothing is published then.
Result<std::vector<CopyOutcome>> copy_files(Transport& src, Transport& dst, std::vector<CopySpec> specs,
                                            const WriterOptions& options);

class Transport {
 public:
  virtual ~Transport() = default;

  // "local:/srv/mail" or "agent:store2" for messages.
  virtual std::string describe() const = 0;
  // How many streams (reader or writer) may be open at once.
  virtual int max_streams() const = 0;

  // Recursive readdir of `home` without stat (directories excepted).
  // Errors: kNotFound if home does not exist.
  virtual Result<TreeListing> list_tree(const std::string& home) = 0;
  // lstat (and hash, as asked) each path. One result per request, in order.
  virtual Result<std::vector<StatResult>> stat(const std::vector<StatRequest>& requests) = 0;
  // The first max_bytes of each regular file (e.g. a uidlist header line).
  virtual Result<std::vector<Result<std::string>>> head(const std::vector<std::string>& paths,
                                                        uint32_t max_bytes) = 0;
  // Applies the ops in order; one status per op.
  virtual Result<std::vector<Status>> apply(const std::vector<TreeOp>& ops) = 0;
  // The librsync signature of the file at path (the delta basis).
  virtual Result<Signature> signature(const SignatureRequest& request) = 0;
  // Several signatures in one go (the agent pipelines them); one result per
  // request. The default calls signature() for each.
  virtual Result<std::vector<Result<Signature>>> signatures(const std::vector<SignatureRequest>& requests);
  // Free space of the filesystem holding path.
  virtual Result<FsSpace> space(const std::string& path) = 0;

  // Called once per home by size_homes(), in request order. An error it
  // returns stops the sizing; size_homes() then returns that error.
  using HomeSizeSink = std::function<Status(size_t index, Result<MailboxSize> size)>;
  // Sizes mailbox homes (paths relative to the root, like every path here)
  // with the Maildir scanner of core/maildir_scanner.h, where the files are:
  // in this process for a local root, on the agent's server for an agent
  // (one SIZE request; results stream back as they are computed). Each
  // home's result goes to `sink` as soon as it is known. A home that does
  // not exist is exists = false with 0 bytes; a bad path ("" or "a/../b"),
  // a home reached through a symlink or an unreadable directory is that
  // home's error (the scanner's message), and the others go on.
  // Errors as a whole: the sink's, kUnsupported (a transport that cannot
  // size: the default), or the transport's own (kUnavailable, kCorrupt).
  // Results already passed to the sink stand. Read-only; blocks for the scan.
  virtual Status size_homes(const std::vector<std::string>& homes, const HomeSizeSink& sink);

  // Starts reading the given files; results come in request order.
  virtual Result<std::unique_ptr<FileReader>> open_reader(std::vector<ReadSpec> specs) = 0;
  // Starts a batch of writes.
  virtual Result<std::unique_ptr<FileWriter>> open_writer(const WriterOptions& options) = 0;

  // The direct data path: this transport's server opens `peer` itself (runs
  // peer.argv there) and runs copy_files(peer, this root, specs) there, so
  // file bytes, signatures and deltas go server to server; only the specs
  // and the outcomes pass through the caller. options.throttle is not
  // carried (the caller accounts the outcomes' body bytes). Errors: those of
  // copy_files, the peer's start ("peer store1: ..."), kUnsupported (the
  // default: a transport that cannot reach peers).
  virtual Result<std::vector<CopyOutcome>> pull(const PeerRef& peer, std::vector<CopySpec> specs,
                                                const WriterOptions& options);

  // Bytes this transport sent and received on its own pipes so far (an
  // agent's protocol traffic; 0 for one in this process).
  virtual int64_t wire_bytes() const { return 0; }
};

// Names the sync machinery writes and therefore never copies: a temp file
// is "<dir>/.mailshard-tmp-<token>-<n>". Left-overs of a crash are removed by
// the next pass.
inline constexpr const char* kTempPrefix = ".mailshard-tmp-";

// Checks a transport path (see the header comment). The message names the
// path: "invalid path 'a/../b': '..' component".
Status check_relative_path(const std::string& path);
// "a" + "b" -> "a/b"; "" + "b" -> "b".
std::string join_path(const std::string& a, const std::string& b);
// "a/b/c" -> "a/b"; "c" -> "".
std::string path_parent(const std::string& p);
// "a/b/c" -> "c"; "c" -> "c".
std::string path_last(const std::string& p);

}  // namespace mailshard
