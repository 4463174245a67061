// PassRunner: one pass of the SyncEngine (movers/sync_engine.h describes the
// pass). It owns the pass's bookkeeping; the engine only holds the
// configuration. Internal to movers/; its parts live in
//   sync_pass.cc       the driver (run: the pass as a list of steps), the
//                      state bookkeeping and the batched tree operations;
//   sync_namespace.cc  the destination listing, mkdir, renames, hard links,
//                      symlinks, deletes, directory attributes, durability;
//   sync_engine.cc     new files: stat of new names, copies, the audit;
//   sync_metadata.cc   the metadata set (stat, hash, transfer, publish).
//
// Thread-safety: one pass on one thread, except the metadata batch, which may
// run on a thread of its own while the driver goes on: it reads its own copy
// of the state entries it needs and reports through a MetaOutcome that the
// driver merges (merge_metadata) after joining it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "movers/sync_engine.h"
#include "movers/token_bucket.h"
#include "movers/transfer_policy.h"
#include "movers/tree_diff.h"
#include "util/interrupt.h"
#include "util/strings.h"

namespace mailshard {

using Steady = std::chrono::steady_clock;

inline double secs(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

// Owner, mode and mtime: what the destination copy must carry.
inline bool same_kept_attrs(const FileAttrs& a, const FileAttrs& b) {
  return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtime_ns == b.mtime_ns;
}

// Seconds per phase of a pass, into PassStats::phases.
class PhaseTimer {
 public:
  explicit PhaseTimer(PassStats& s) : s_(s), start_(Steady::now()), last_(start_) {}
  void mark(const char* name) {
    auto t = Steady::now();
    s_.phases.emplace_back(name, secs(t - last_));
    last_ = t;
  }
  void finish() { s_.seconds = secs(Steady::now() - start_); }

 private:
  PassStats& s_;
  Steady::time_point start_, last_;
};

class PassRunner {
 public:
  PassRunner(SyncEngine& e, SyncState& st, PassKind kind, bool audit);

  // The pass (sync_pass.cc). The state stays accurate for whatever completed.
  Result<PassStats> run();

 private:
  struct CopyJob {
    std::string rel;
    FileAttrs stat;  // from the stat of the new name (size: batching)
    // results
    ReadStatus read = ReadStatus::kOk;
    std::optional<Error> error;
    bool written = false;
    FileAttrs attrs;  // at open: what the copy carries
    WriteResult result;
  };
  static CopyJob copy_job(std::string rel, FileAttrs stat) {
    CopyJob j;
    j.rel = std::move(rel);
    j.stat = stat;
    return j;
  }
  struct LinkJob {
    std::string from, to;  // relative to the home
    FileAttrs attrs;
  };
  struct MetaItem {
    std::string rel;
    FileClass cls;
    bool in_state;
    bool on_dst;
  };
  // What a metadata batch did, applied to the pass by merge_metadata(): the
  // batch runs in its own thread and touches none of the pass' shared state.
  struct MetaOutcome {
    PassStats stats;  // counters only
    std::vector<std::pair<std::string, EntryState>> puts;
    std::vector<std::pair<std::string, EntryType>> vanished;
    std::vector<std::pair<std::string, Hash128>> written;
    std::vector<std::string> touched;
    std::vector<std::string> type_changed;  // no longer regular files when stat'ed
    std::vector<std::string> changed;       // attributes set without content
    std::vector<std::string> linked_from;   // names whose destination copy was linked to a sibling
    std::optional<Error> error;
  };
  // The state entries of the metadata files, copied for a batch.
  using Known = std::unordered_map<std::string, EntryState>;
  // One changed metadata file on its way (movers/transfer_policy.h).
  struct MetaTransfer {
    size_t item;
    TransferMethod method;
    ReadSpec spec;
    WriteSpec::Kind kind;
    uint32_t basis_block_len = 0;  // kDelta: the signature's block length
  };
  // A transfer the destination wrote (its result may still say it failed).
  struct MetaSent {
    size_t t;  // index into the round's transfers
    FileAttrs attrs;
    std::vector<Hash128> new_blocks;
    WriteResult result;
  };
  // Called with each op's index and status; an error ends the batch.
  using OpDone = std::function<Status(size_t, const Status&)>;

  std::string S(const std::string& rel) const { return join_path(e_.src_home_, rel); }
  std::string D(const std::string& rel) const { return join_path(e_.dst_home_, rel); }

  Status check_interrupt() {
    if (interrupted()) return Error::interrupted("interrupted");
    return {};
  }

  // --- sync_pass.cc: bookkeeping and batched operations ---
  Result<PassStats> finish(PhaseTimer& timer);
  EntryState* entry(const std::string& rel);
  void put(const std::string& rel, EntryState e) { st_.dirs[path_parent(rel)].entries[path_last(rel)] = std::move(e); }
  void erase(const std::string& rel);
  void touch(const std::string& rel_dir) { touched_.insert(rel_dir); }
  // A destination path this pass changed other than by writing a file (see
  // SyncState::last_changed).
  void changed(std::string rel) { changed_.push_back(std::move(rel)); }
  // Applies ops; calls done(i, status) for each. Ops are sent in chunks so a
  // 100k-delete pass is a few round trips.
  Status apply(const std::vector<TreeOp>& ops, const OpDone& done);
  // Independent ops (unlinks, renames of distinct names) in parallel parts:
  // an unlink that frees blocks waits for the device (discard), and the
  // streams are idle meanwhile anyway.
  Status apply_parallel(const std::vector<TreeOp>& ops, const OpDone& done);
  // The source's stat (and hash) of rq, in parallel parts across the
  // streams when the batch is large (64 names or more), results in rq's
  // order: the first pass's stat of a home's every new name, for one.
  Result<std::vector<StatResult>> stat_source(const std::vector<StatRequest>& rq);

  // The state holds dbox mail: an sdbox dbox-Mails (or dbox-alt-Mails)
  // directory, or an mdbox storage directory with m.* files.
  bool holds_dbox_mail() const;
  // The state holds Dovecot's mbox indexes: a ".imap" directory that is not
  // a Maildir++ folder of that name (one has cur/).
  bool holds_mbox_indexes() const;

  // --- sync_namespace.cc: the destination's names ---
  Status reconcile_with_destination(DstExtras& extras);
  Status ensure_home(const TreePlan& plan);
  Status run_mkdirs(const std::vector<TreePlan::Dir>& dirs);
  Status run_renames(const std::vector<std::pair<std::string, std::string>>& renames,
                     std::vector<TreePlan::Entry>& fresh);
  // New metadata files that are a vanished one renamed on the source (the
  // same inode, size, mtime, owner, mode and content hash as a file the state
  // holds in the same directory, which the source no longer lists): renamed
  // on the destination instead of sent. Courier renames its keyword update
  // files on a folder's open; sent whole, with an fsync each under the
  // freeze, a thousand of them made lockouts of seconds.
  // find_metadata_renames() pairs them with the vanished metadata files (a
  // stat of the new names); run_metadata_renames() runs after the metadata
  // batch that ran meanwhile, which may have linked another name to a
  // vanished name's copy (plan_metadata's replaced siblings): such a copy is
  // not renamed (two names would share an inode), and its new name is sent
  // instead. The vanished names not renamed are deleted there.
  Status find_metadata_renames(const std::vector<MetaItem>& meta,
                               const std::vector<std::pair<std::string, EntryType>>& vanished);
  Status run_metadata_renames(std::vector<MetaItem>& meta);
  Status run_links(const std::vector<LinkJob>& links, bool retry = false);
  Status run_symlinks(const std::vector<std::string>& paths);
  Status run_deletes(std::vector<std::pair<std::string, EntryType>> list, const char* what);
  Status run_dir_attrs(const std::vector<TreePlan::Dir>& dirs);
  Status run_sync_dirs();

  // --- sync_engine.cc: new files ---
  Status stat_new(std::vector<TreePlan::Entry>& fresh, std::vector<CopyJob>& copies, std::vector<LinkJob>& links,
                  std::vector<MetaItem>& meta, std::vector<std::string>& symlinks);
  Status copy_round(std::vector<CopyJob>& jobs);
  Status run_copies(std::vector<CopyJob>& jobs);
  Status run_audit(const std::vector<std::string>& kept, std::vector<CopyJob>& copies);

  // --- sync_metadata.cc: the metadata set ---
  // One batch, start to end (then its steps, in order); touches nothing of
  // the pass but `out`.
  Status metadata_batch(std::vector<MetaItem>& items, const Known& known, MetaOutcome& out);
  Result<std::vector<StatResult>> stat_metadata(const std::vector<MetaItem>& items, const Known& known,
                                                MetaOutcome& out);
  Result<std::unordered_map<size_t, StatResult>> stat_unknown_copies(const std::vector<MetaItem>& items);
  Result<std::vector<MetaTransfer>> plan_metadata(const std::vector<MetaItem>& items, const Known& known,
                                                  std::vector<StatResult>& res,
                                                  const std::unordered_map<size_t, StatResult>& dres,
                                                  std::vector<std::pair<std::string, EntryType>>& vanished,
                                                  MetaOutcome& out);
  Result<std::vector<MetaSent>> send_metadata(const std::vector<MetaItem>& items,
                                              std::vector<MetaTransfer>& transfers,
                                              const std::vector<StatResult>& res,
                                              std::vector<std::pair<std::string, EntryType>>& vanished,
                                              MetaOutcome& out);
  Result<std::vector<MetaTransfer>> record_metadata(const std::vector<MetaItem>& items,
                                                    const std::vector<MetaTransfer>& transfers,
                                                    std::vector<MetaSent>& sent, int round, MetaOutcome& out);
  Status merge_metadata(MetaOutcome& out, const std::unordered_set<std::string>* listed_files = nullptr);
  void known_metadata(std::vector<MetaItem>& items, Known& known);
  Status run_metadata(std::vector<MetaItem>& items);

  SyncEngine& e_;
  SyncState& st_;
  PassKind kind_;
  bool audit_;
  bool frozen_;
  PassStats stats_;
  std::unique_ptr<TokenBucket> bucket_;
  WriterOptions wopts_;
  std::set<std::string> touched_;
  std::vector<std::string> parents_created_;
  std::vector<std::pair<std::string, Hash128>> written_;
  std::vector<std::string> changed_;
  // find_metadata_renames(): vanished name -> its new name and the new name's
  // source attributes; merge_metadata() neither deletes nor puts back these
  // vanished names (run_metadata_renames() does what is left to do).
  struct PendingRename {
    std::string to;
    FileAttrs attrs;
  };
  std::unordered_map<std::string, PendingRename> pending_renames_;
  // Vanished names whose destination copy a metadata batch linked to another
  // name (merge_metadata, from MetaOutcome::linked_from).
  std::unordered_set<std::string> linked_from_;
};

}  // namespace mailshard
