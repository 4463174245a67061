// SyncEngine: copies one mailbox home from a source Transport to a
// destination Transport, Maildir-aware and incremental. The move lifecycle
// drives it as: warm passes while the user is online (optionally with a full
// audit), then, under the freeze, final_pass() and verify(); after the flip,
// late_deliveries() + deliver_late() sweep what an MTA put on the source.
//
// A pass (design.md §5, notes/mover-notes.md):
//   1. readdir the source home (no stat); the first pass, a pass after one
//      that did not finish, and an audit also readdir the destination, to
//      drop stale temps and adopt or remove what the state does not know;
//   2. diff against the SyncState (movers/tree_diff.h);
//   3. early deletes (an entry of another type where something is created),
//      mkdir, renames (flag changes), stat only new names, copy new files
//      through parallel streams (temp + batch-durable + rename; holes of
//      sparse files stay holes), hard links as links (an inode number is only
//      a hint: a link is made after the new name hashed to the target's
//      content), symlinks as symlinks;
//   4. the metadata set (uidlists, keywords, indexes, logs, caches,
//      subscriptions, sieve, quota, Courier files) re-checked by size, mtime,
//      ctime and hash, sent as a tail, block diff, librsync delta or whole,
//      and published together in one batch; a new metadata file that is a
//      vanished one renamed (same inode, size, mtime, owner, mode and content
//      hash, same directory: Courier's keyword files on a folder's open) is
//      renamed on the destination instead, after that batch;
//   5. [warm + audit] lstat + hash of everything on both sides, fixing drift;
//   6. expunges and removed folders; directory attributes; fsync of every
//      directory touched, so the pass is durable when it returns.
// Every file written is hashed on the destination and compared with the
// source's hash before it is published: warm passes verify what they copy,
// and verify() after the frozen pass re-checks what that pass wrote.
//
// Errors: the first hard failure ends the pass, with context ("copy
// 'Maildir/cur/x': ...: No space left on device"). A file that vanishes
// while copied is an expunge, not an error. A file that changes while read
// is retried in the next warm pass, or (frozen pass) retried now and then
// kConflict. The state stays accurate for whatever did complete.
//
// Thread-safety: one pass at a time per engine; the engine runs its own
// copy threads (SyncOptions::streams). Large stat batches on the source (64
// names or more: new names, metadata files, rename candidates, links) are
// split across the same number of streams.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/transport.h"
#include "movers/maildir_rules.h"
#include "movers/sync_state.h"

namespace mailshard {

struct SyncOptions {
  int streams = 2;                   // parallel copy streams (capped by both transports' max_streams)
  int64_t bwlimit_bytes_per_s = 0;   // 0 = unlimited
  // How a batch of new files becomes durable before it is named: one
  // syncfs() per batch (default; measured 3-7x cheaper than an fsync per file
  // here, which costs a journal commit each) or an fsync of every file
  // (scoped to our files: for a filesystem shared with heavy other writers).
  // Warm passes only: the frozen and metadata passes always fsync each file,
  // so the lockout does not wait for other writers' data.
  Durability durability = Durability::kSyncfs;
  size_t batch_files = 10000;        // files per reader/writer batch (made durable in sub-batches of 1000)
  int64_t batch_bytes = 512ll << 20; // bytes per reader/writer batch
  int frozen_retries = 2;            // re-reads of a file that changed during the frozen pass
  // The direct data path: file contents are copied by the destination's
  // server straight from the source's (Transport::pull with this peer, whose
  // agent serves the same root as the source transport); listings, stats and
  // the outcomes still pass through this process, file bytes, signatures and
  // deltas do not. The bandwidth limit is then applied per batch, after it.
  // nullopt: via this process (reader on the source, writer on the destination).
  std::optional<PeerRef> direct_from;
  // Files a pass leaves out, asked for every regular file after its stat
  // with the source's attributes, and not recorded in the state. A dbox or
  // mbox sweep's side copy leaves out the mail storage files (sdbox u.*,
  // mdbox m.*, mbox folders) that the move's last pass copied unchanged: the
  // import reads only the late mail. Empty: none.
  std::function<bool(const std::string& rel, const FileAttrs& attrs)> leave_out;
  // A tree of one file (an mbox spool INBOX, /var/mail/alice): the source
  // home is the file's directory and this its name. The source's listing is
  // then that one file (a stat, never a readdir): the directory's other
  // entries (every other user's spool) are not the move's. The destination
  // home stays a directory of the move's own. Empty: the whole tree.
  std::string only_entry;
};

enum class PassKind { kWarm, kFrozen, kMetadata };
std::string_view pass_kind_name(PassKind k);

struct PassStats {
  PassKind kind = PassKind::kWarm;
  bool audit = false;
  int64_t dirs = 0;              // source directories
  int64_t entries = 0;           // source entries considered
  int64_t files_copied = 0;      // new files written (messages and others)
  int64_t bytes_sent = 0;        // file bodies, tails, block diffs and deltas: what crossed to the destination
  int64_t signature_bytes = 0;   // librsync signatures sent back from the destination
  int64_t renames = 0;           // flag changes / new -> cur moves
  int64_t deletes = 0;           // files and symlinks removed
  int64_t dirs_created = 0;
  int64_t dirs_removed = 0;
  int64_t hard_links = 0;
  int64_t symlinks = 0;          // created or replaced
  int64_t stat_calls = 0;        // source entries stat'ed (new names + metadata)
  int64_t metadata_checked = 0;
  int64_t metadata_sent = 0;
  int64_t tails = 0;             // append-only files: tail after a prefix-hash check
  int64_t block_patches = 0;     // in-place files: changed blocks against the state's block hashes
  int64_t deltas = 0;            // librsync deltas
  int64_t whole = 0;             // metadata files sent whole
  int64_t attrs_fixed = 0;       // owner/mode/mtime corrected without content
  int64_t adopted = 0;           // already on the destination, unknown to the state, identical
  int64_t vanished = 0;          // gone while copied: expunged
  int64_t unstable = 0;          // changed while read: left for the next pass
  int64_t audit_mismatches = 0;
  int64_t temps_removed = 0;
  std::vector<std::pair<std::string, double>> phases;  // seconds per phase, in order
  double seconds = 0;

  bool operator==(const PassStats&) const = default;
  nlohmann::json to_json() const;
};

enum class VerifyScope {
  kWritten,  // listings + uidlist headers + hashes of what the last pass wrote
  kFull,     // ... + lstat and hash of every file on both sides
};

struct VerifyReport {
  int64_t entries_compared = 0;
  int64_t files_hashed = 0;
  int64_t uidlists_checked = 0;
  std::vector<std::string> mismatches;  // empty when the copy matches
  double seconds = 0;
  // verify_frozen_copy: folders (relative to the home) where one of
  // Dovecot's index files (dovecot.index*) changed on the source since the
  // frozen pass copied it: something wrote the mailbox despite the freeze, so
  // the copy's index and cache may not belong together. Not journaled.
  std::vector<std::string> changed_index_dirs;
  bool operator==(const VerifyReport&) const = default;
  nlohmann::json to_json() const;
};

class SyncEngine {
 public:
  // src_home/dst_home: the home relative to each transport's root.
  SyncEngine(Transport& src, std::string src_home, Transport& dst, std::string dst_home, SyncOptions options,
             Clock& clock);

  // A warm pass (the user is online). With audit, also lstat + hash every
  // file on both sides and fix what differs.
  Result<PassStats> warm_pass(SyncState& state, bool audit = false);
  // The frozen pass: readdir-only diff against the state, plus the metadata set.
  Result<PassStats> final_pass(SyncState& state);
  // Only the metadata set (run under the freeze, e.g. after a final pass
  // that had to be repeated).
  Result<PassStats> metadata_pass(SyncState& state);

  // Compares source and destination (see VerifyScope). A mismatch is
  // kVerifyFailed naming the first differences; the report is returned
  // only when everything matched.
  Result<VerifyReport> verify(const SyncState& state, VerifyScope scope);

  // The frozen pass's verification when an MTA may still deliver to the
  // source (one that ignores the freeze): the destination must hold what the
  // state says was copied (types, attributes, and the content hashes recorded
  // at copy time of everything the last pass wrote, hard links included, and of
  // every uidlist), and the source may have changed since only by new message
  // files (late deliveries, which the sweep copies after the flip). A flag
  // change or an expunge on the source after the pass is a mismatch: someone
  // used the mailbox during the freeze. kVerifyFailed names the first
  // differences. When the state knows what its last pass changed (it ran in
  // this process: SyncState::last_changes_known), the destination is not
  // listed: each name that pass changed is checked (present as the state says,
  // or absent), with every directory and every non-message entry; what earlier
  // passes wrote was verified when they wrote it. Otherwise the destination's
  // listing must match the state name for name. On success `source_now`, when
  // given, receives the listing of the whole source home the check took (a
  // later step under the same freeze reads it instead of listing the home
  // again); it stays empty when the engine lists only one entry (only_entry).
  Result<VerifyReport> verify_frozen_copy(const SyncState& state,
                                          std::optional<TreeListing>* source_now = nullptr);

  // Sweep: source message files (relative to the source home) whose base
  // name the state does not know in their folder: mail delivered to the
  // source after the final pass.
  Result<std::vector<std::string>> late_deliveries(const SyncState& state);
  // Copies one source message (relative to the source home) into the same
  // folder on the destination, where it was on the source: a message in
  // new/ without flags goes to new/ under its name; one with flags (in cur/,
  // or in new/ with a ":2," part) keeps them, its keyword letters translated
  // through both folders' dovecot-keywords (remap_message_flags: a keyword
  // the destination's file does not name is dropped and listed). Owner, mode
  // and mtime (ns; Dovecot's INTERNALDATE for Maildir) are the source's.
  // Idempotent: copies nothing when a message with that base name already
  // exists in the folder's cur/ or new/ on the destination (the final pass,
  // an earlier sweep, or Dovecot having moved it), so no existing name is
  // ever written over. Errors: kInvalidInput for a path that is not a
  // message in cur/ or new/, kNotFound when it vanished, kConflict when it
  // changed while copied, and the transports' errors.
  struct LateDelivery {
    std::string dst_rel;                        // where it is on the destination, relative to its home
    bool already_there = false;                 // nothing copied: dst_rel names the copy found
    std::vector<std::string> dropped_keywords;  // keywords the destination could not carry
  };
  Result<LateDelivery> deliver_late(const std::string& src_rel);
  // Where deliver_late() puts a message of a source folder (relative to the
  // home) on the destination, when a conversion renamed folders
  // (movers/courier_conversion.h); without a namer, the same folder.
  void set_dst_folder_namer(std::function<std::string(const std::string&)> namer) { dst_folder_namer_ = std::move(namer); }

 private:
  friend class PassRunner;
  Transport& src_;
  std::string src_home_;
  Transport& dst_;
  std::string dst_home_;
  SyncOptions options_;
  Clock& clock_;
  std::function<std::string(const std::string&)> dst_folder_namer_;
  // deliver_late's keyword tables per folder and side (read once per engine;
  // nullptr: the folder has no readable dovecot-keywords there).
  struct FolderKeywords {
    std::unique_ptr<KeywordTable> src, dst;
  };
  std::map<std::string, FolderKeywords> keywords_;
  // One batch of copies: through this process, or pulled by the destination
  // (options_.direct_from). The throttle, if any, is spent on the body bytes.
  Result<std::vector<CopyOutcome>> copy_batch(std::vector<CopySpec> specs, const WriterOptions& options);
  // deliver_late: makes the destination's folder when the source made it after the final pass.
  Status ensure_late_folder(const std::string& src_folder, const std::string& dst_folder);
  // By the source's folder; dst_folder is its name on the destination.
  Result<const FolderKeywords*> folder_keywords(const std::string& folder, const std::string& dst_folder);
  // The source's tree: list_tree of the home, or with options_.only_entry
  // the home's attributes and that one entry, if it is there (kInvalidInput
  // when it is not a regular file).
  Result<TreeListing> list_source();
};

}  // namespace mailshard
