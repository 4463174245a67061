// PassRunner's driver: a pass as a list of steps (run), and the bookkeeping
// and batched destination operations every step uses. The steps themselves
// are in sync_namespace.cc, sync_engine.cc and sync_metadata.cc.
#include <algorithm>
#include <thread>
#include <unordered_set>

#include "movers/stream_pool.h"
#include "movers/sync_pass.h"

namespace mailshard {

PassRunner::PassRunner(SyncEngine& e, SyncState& st, PassKind kind, bool audit)
    : e_(e), st_(st), kind_(kind), audit_(audit), frozen_(kind != PassKind::kWarm) {
  stats_.kind = kind;
  stats_.audit = audit;
  if (e_.options_.bwlimit_bytes_per_s > 0)
    bucket_ = std::make_unique<TokenBucket>(e_.options_.bwlimit_bytes_per_s, e_.clock_);
  // Under the freeze, durability is scoped to the pass's own files: a
  // syncfs() also waits for every other writer's dirty data on the
  // filesystem (other mailboxes, other jobs), which made the frozen pass's
  // few dozen files take 7 to 450 ms on the shared lab disk. An fsync per
  // file costs only what this pass wrote.
  wopts_.durability = frozen_ ? Durability::kFsyncEach : e_.options_.durability;
  wopts_.throttle = bucket_.get();
}

Result<PassStats> PassRunner::run() {
  PhaseTimer timer(stats_);
  // The destination is listed (readdir only) when the state may not
  // describe it: the first pass (adopt what is there), after a pass that
  // did not finish (stale temps, half-applied changes), and for an audit.
  // Otherwise the state is the truth and the destination is not scanned.
  bool list_dst = st_.dirty || st_.dirs.empty() || (audit_ && kind_ == PassKind::kWarm);
  st_.dirty = true;
  st_.last_changes_known = false;
  st_.last_changed.clear();

  // The metadata files the state knows are checked and sent by a thread of
  // their own, overlapping the listing and the message work: the batch
  // reads a copy of their state entries and touches nothing shared; its
  // outcome is merged afterwards. (When the destination is listed, the
  // thread starts after that listing removed stale temps.)
  //
  // dbox keeps its messages where the indexes name them, and Dovecot reads a
  // dbox copy whose index names a message the copy lacks as corrupt
  // ("Unexpectedly lost uid"). A message is written before the index names
  // it, so for dbox the indexes are copied first, then the source is listed
  // and its messages (sdbox u.*, mdbox m.*) copied: the copy may hold mail
  // its indexes do not name yet (the sweep imports it), never the reverse.
  // mdbox has two levels of index: a message is appended to an m.* file,
  // then the map index (storage/dovecot.map.index*) gives it a map UID, then
  // the mailbox's index names that map UID. So the mailbox indexes are copied
  // first (stat, hash and transfer), then the map index, then the m.* files:
  // a copied mailbox index never names a map UID the copied map lacks.
  // mbox likewise: its indexes record each folder file's size and the UIDs
  // in it, so they are copied before the folder files (the files, not the
  // indexes, then hold any mail appended meanwhile, which Dovecot reads as
  // new, never an index naming mail past the file's end).
  const bool mbox = holds_mbox_indexes();
  const bool index_first = mbox || holds_dbox_mail();
  std::vector<MetaItem> known_items;
  std::vector<MetaItem> dbox_storage;  // index_first: known mdbox m.* files, sent after the listing
  Known known;
  MetaOutcome meta_out;
  bool meta_started = false;
  std::thread meta_thread;
  struct JoinOnExit {
    std::thread& t;
    ~JoinOnExit() {
      if (t.joinable()) t.join();
    }
  } join_on_exit{meta_thread};
  auto meta_batch = [&] {
    auto t0 = Steady::now();
    if (auto st = metadata_batch(known_items, known, meta_out); !st.ok()) meta_out.error = std::move(st).error();
    meta_out.stats.seconds += secs(Steady::now() - t0);
  };
  auto start_meta = [&] {
    known_metadata(known_items, known);
    meta_started = true;
    if (!index_first) {
      meta_thread = std::thread(meta_batch);
      return;
    }
    auto storage = std::stable_partition(known_items.begin(), known_items.end(), [&](const MetaItem& m) {
      return !is_mdbox_storage_file(path_last(m.rel)) && !(mbox && !is_mbox_index_path(m.rel));
    });
    dbox_storage.assign(std::make_move_iterator(storage), std::make_move_iterator(known_items.end()));
    known_items.erase(storage, known_items.end());
    auto map = std::stable_partition(known_items.begin(), known_items.end(), [](const MetaItem& m) {
      return !starts_with(path_last(m.rel), "dovecot.map.index");
    });
    std::vector<MetaItem> map_index(std::make_move_iterator(map), std::make_move_iterator(known_items.end()));
    known_items.erase(map, known_items.end());
    meta_batch();
    if (!map_index.empty() && !meta_out.error) {
      known_items = std::move(map_index);
      meta_batch();
    }
  };
  std::unordered_set<std::string> listed_files;  // the plan's mutable files, filled after the diff
  auto join_meta = [&]() -> Status {
    if (!meta_started) return {};
    meta_started = false;
    if (meta_thread.joinable()) meta_thread.join();
    stats_.phases.emplace_back(index_first ? "metadata_indexes_first" : "metadata_parallel", meta_out.stats.seconds);
    return merge_metadata(meta_out, &listed_files);
  };

  // 1. Listings: source and destination in parallel (for dbox, the
  // destination's, then the indexes, then the source's).
  DstExtras extras;
  Status dst_listed;
  std::thread dst_thread;
  if (list_dst) dst_thread = std::thread([&] { dst_listed = reconcile_with_destination(extras); });
  if (index_first) {
    if (dst_thread.joinable()) dst_thread.join();
    MS_CHECK(dst_listed);
    start_meta();
  } else if (!list_dst) {
    start_meta();
  }
  auto src = e_.list_source();
  if (dst_thread.joinable()) dst_thread.join();
  if (!src.ok()) return std::move(src).error().context("list source " + e_.src_.describe());
  MS_CHECK(dst_listed);
  if (list_dst && !index_first) start_meta();
  timer.mark("scan");

  // 2. Diff.
  TreePlan plan = diff_tree(*src, st_, list_dst ? &extras : nullptr, audit_ && kind_ == PassKind::kWarm);
  stats_.dirs = static_cast<int64_t>(plan.dirs.size());
  stats_.entries = static_cast<int64_t>(plan.entries);
  // Metadata not handled by the thread: new files, and any the state did not list.
  std::vector<MetaItem> meta;
  for (auto& m : plan.mutable_files) {
    if (!known.count(m.path)) meta.push_back({m.path, m.cls, true, false});
    listed_files.insert(m.path);
  }
  for (auto& m : dbox_storage) meta.push_back(std::move(m));
  // Metadata files the state knows and the source no longer has are removed
  // after the metadata batch (which finds them gone too) is done: it may link
  // a sibling from their copy (plan_metadata), and a file renamed on the
  // source may be renamed on the destination (run_metadata_renames).
  std::vector<std::pair<std::string, EntryType>> file_deletes, dir_deletes, meta_vanished;
  for (auto& d : plan.deletes) {
    if (d.second == EntryType::kDir) dir_deletes.push_back(std::move(d));
    else if (known.count(d.first)) meta_vanished.push_back(std::move(d));
    else file_deletes.push_back(std::move(d));
  }
  timer.mark("diff");

  if (kind_ == PassKind::kMetadata) {
    MS_CHECK(check_interrupt());
    MS_CHECK(ensure_home(plan));
    MS_CHECK(run_mkdirs(plan.mkdirs));
    for (auto& n : plan.new_entries)
      if (n.type == EntryType::kFile && n.cls != FileClass::kMessage && n.cls != FileClass::kImmutable)
        meta.push_back({n.path, n.cls, false, n.on_dst});
    MS_CHECK(join_meta());
    MS_CHECK(run_metadata(meta));
    timer.mark("metadata");
    MS_CHECK(run_sync_dirs());
    timer.mark("sync");
    return finish(timer);
  }

  // 3. Namespace: type changes, new directories, renames.
  MS_CHECK(check_interrupt());
  MS_CHECK(run_deletes(plan.early_deletes, "early delete"));
  MS_CHECK(ensure_home(plan));
  MS_CHECK(run_mkdirs(plan.mkdirs));
  std::vector<TreePlan::Entry> fresh = std::move(plan.new_entries);
  MS_CHECK(run_renames(plan.renames, fresh));
  timer.mark("namespace");

  // 4. Stat new names only.
  std::vector<CopyJob> copies;
  std::vector<LinkJob> links;
  std::vector<std::string> symlinks = std::move(plan.symlinks);
  MS_CHECK(stat_new(fresh, copies, links, meta, symlinks));
  MS_CHECK(find_metadata_renames(meta, meta_vanished));
  timer.mark("stat");

  // 5. Audit (warm passes only): lstat + hash of everything kept.
  if (audit_ && kind_ == PassKind::kWarm) {
    MS_CHECK(run_audit(plan.kept_files, copies));
    timer.mark("audit");
  }

  // 6. New files through parallel streams, hard links, expunges.
  MS_CHECK(check_interrupt());
  MS_CHECK(run_copies(copies));
  timer.mark("copy");
  MS_CHECK(run_links(links));
  MS_CHECK(run_deletes(std::move(file_deletes), "delete"));
  timer.mark("links+delete");

  // 7. The metadata set: the thread's batch, renamed files, then new metadata files.
  MS_CHECK(join_meta());
  MS_CHECK(run_metadata_renames(meta));
  std::erase_if(meta_vanished, [&](const auto& v) { return entry(v.first) == nullptr; });  // done by the batch
  MS_CHECK(run_deletes(std::move(meta_vanished), "delete"));
  MS_CHECK(check_interrupt());
  MS_CHECK(run_symlinks(symlinks));
  MS_CHECK(run_metadata(meta));
  timer.mark("metadata");

  // 8. Removed folders, directory attributes, durability.
  MS_CHECK(run_deletes(std::move(dir_deletes), "delete"));
  MS_CHECK(run_dir_attrs(plan.dirs));
  MS_CHECK(run_sync_dirs());
  timer.mark("sync");
  return finish(timer);
}

bool PassRunner::holds_dbox_mail() const {
  for (const auto& [dpath, ds] : st_.dirs) {
    if (dpath.empty()) continue;
    const std::string name = path_last(dpath);
    if (name == "dbox-Mails" || name == "dbox-alt-Mails") return true;
    if (name == "storage")
      for (const auto& [file, es] : ds.entries)
        if (es.type == EntryType::kFile && is_mdbox_storage_file(file)) return true;
  }
  return false;
}

bool PassRunner::holds_mbox_indexes() const {
  for (const auto& [dpath, ds] : st_.dirs)
    if (path_last(dpath) == ".imap" && !st_.dirs.count(dpath + "/cur")) return true;
  return false;
}

Result<PassStats> PassRunner::finish(PhaseTimer& timer) {
  st_.dirty = false;
  st_.passes += 1;
  st_.last_written = std::move(written_);
  st_.last_changed = std::move(changed_);
  st_.last_changes_known = true;
  timer.finish();
  return stats_;
}

EntryState* PassRunner::entry(const std::string& rel) {
  auto d = st_.dirs.find(path_parent(rel));
  if (d == st_.dirs.end()) return nullptr;
  auto it = d->second.entries.find(path_last(rel));
  return it == d->second.entries.end() ? nullptr : &it->second;
}

void PassRunner::erase(const std::string& rel) {
  auto d = st_.dirs.find(path_parent(rel));
  if (d != st_.dirs.end()) d->second.entries.erase(path_last(rel));
}

Status PassRunner::apply(const std::vector<TreeOp>& ops, const OpDone& done) {
  constexpr size_t kChunk = 20000;
  for (size_t i = 0; i < ops.size(); i += kChunk) {
    std::vector<TreeOp> part(ops.begin() + static_cast<ptrdiff_t>(i),
                             ops.begin() + static_cast<ptrdiff_t>(std::min(ops.size(), i + kChunk)));
    auto res = MS_TRY(e_.dst_.apply(part).context("destination " + e_.dst_.describe()));
    for (size_t k = 0; k < res.size(); ++k) MS_CHECK(done(i + k, res[k]));
  }
  return {};
}

Status PassRunner::apply_parallel(const std::vector<TreeOp>& ops, const OpDone& done) {
  int streams = std::max(1, std::min(e_.options_.streams, e_.dst_.max_streams()));
  if (streams == 1 || ops.size() < 64) return apply(ops, done);
  size_t per = (ops.size() + static_cast<size_t>(streams) - 1) / static_cast<size_t>(streams);
  std::vector<Result<std::vector<Status>>> parts;
  for (int t = 0; t < streams; ++t) parts.emplace_back(Error::internal("unset"));
  MS_CHECK(run_streams(parts.size(), streams, [&](size_t t) -> Status {
    size_t lo = std::min(ops.size(), per * t), hi = std::min(ops.size(), lo + per);
    std::vector<TreeOp> part(ops.begin() + static_cast<ptrdiff_t>(lo), ops.begin() + static_cast<ptrdiff_t>(hi));
    parts[t] = e_.dst_.apply(part);
    return {};
  }));
  size_t i = 0;
  for (auto& part : parts) {
    if (!part.ok()) return std::move(part).error().context("destination " + e_.dst_.describe());
    for (auto& st : *part) MS_CHECK(done(i++, st));
  }
  return {};
}

Result<std::vector<StatResult>> PassRunner::stat_source(const std::vector<StatRequest>& rq) {
  const int streams = std::max(1, std::min(e_.options_.streams, e_.src_.max_streams()));
  if (streams == 1 || rq.size() < 64) return e_.src_.stat(rq);
  const size_t per = (rq.size() + static_cast<size_t>(streams) - 1) / static_cast<size_t>(streams);
  std::vector<Result<std::vector<StatResult>>> parts;
  for (int t = 0; t < streams; ++t) parts.emplace_back(Error::internal("unset"));
  MS_CHECK(run_streams(parts.size(), streams, [&](size_t t) -> Status {
    const size_t lo = std::min(rq.size(), per * t), hi = std::min(rq.size(), lo + per);
    parts[t] = e_.src_.stat(std::vector<StatRequest>(rq.begin() + static_cast<ptrdiff_t>(lo),
                                                     rq.begin() + static_cast<ptrdiff_t>(hi)));
    return {};
  }));
  std::vector<StatResult> out;
  out.reserve(rq.size());
  for (auto& part : parts) {
    if (!part.ok()) return std::move(part).error();
    for (auto& r : *part) out.push_back(std::move(r));
  }
  if (out.size() != rq.size()) return Error::internal("stat: result count");
  return out;
}

}  // namespace mailshard
