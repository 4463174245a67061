// RootStore: the one server-side implementation of the Transport operations
// on a mail root. The local transport is a RootStore used in process; the
// agent (`mailshard agent --stdio --root R`) serves a RootStore over the
// framed protocol. Every path goes through RootFs, so nothing outside the
// root is ever opened and no symlink is followed.
//
// Writes: a temp file ".mailshard-tmp-<token>-<n>" next to the final name,
// owner/mode/mtime set on the temp, hashed (re-read for patches and deltas and
// native copies; hashed as written otherwise) and compared with the source's
// hash, made durable per batch (fsync of every temp after the batch, or one
// syncfs), renamed, and the directories fsynced. A failed file leaves no temp
// and never touches the final name.
//
// Thread-safety: the store is shared; each reader/writer is one thread's.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <string>

#include "store/root_fs.h"
#include "core/transport.h"

namespace mailshard::store {

// Reads up to 256 KiB at a time; also the chunk size of the agent's DATA frames.
inline constexpr size_t kIoChunk = 256 * 1024;
// Local copies of files at least this big use copy_file_range (see write_new).
inline constexpr int64_t kKernelCopyMin = 256 * 1024;

class DirCache;  // root_store.cc: directory fds for a batch of operations

class RootStore final : public Transport {
 public:
  struct Options {
    std::string name;     // for describe(): "local:<root>" if empty
    int max_streams = 2;  // parallel readers/writers the caller may open
    RootFs::Resolver resolver = RootFs::Resolver::kAuto;
  };
  static Result<std::unique_ptr<RootStore>> open(const std::string& root, const Options& options);

  std::string describe() const override;
  int max_streams() const override { return options_.max_streams; }
  Result<TreeListing> list_tree(const std::string& home) override;
  Result<std::vector<StatResult>> stat(const std::vector<StatRequest>& requests) override;
  Result<std::vector<Result<std::string>>> head(const std::vector<std::string>& paths, uint32_t max_bytes) override;
  Result<std::vector<Status>> apply(const std::vector<TreeOp>& ops) override;
  Result<Signature> signature(const SignatureRequest& request) override;
  Result<FsSpace> space(const std::string& path) override;
  // Each home is checked like every path (check_relative_path; "" is the
  // root, not a home), opened through RootFs (no symlink on the way or as
  // the home itself) and walked by scan_tree (core/maildir_scanner.h).
  Status size_homes(const std::vector<std::string>& homes, const HomeSizeSink& sink) override;
  Result<std::unique_ptr<FileReader>> open_reader(std::vector<ReadSpec> specs) override;
  Result<std::unique_ptr<FileWriter>> open_writer(const WriterOptions& options) override;

  const RootFs& fs() const { return fs_; }

 private:
  RootStore(RootFs fs, Options options) : fs_(std::move(fs)), options_(std::move(options)) {}
  Status apply_one(const TreeOp& op, DirCache& dirs);

  RootFs fs_;
  Options options_;
};

// Raises the soft RLIMIT_NOFILE to the hard limit: a writer holds up to
// 1000 unnamed temps open until their batch is durable.
void raise_open_file_limit();

// FileAttrs from a struct stat.
FileAttrs attrs_from_stat(const struct ::stat& st);

}  // namespace mailshard::store
