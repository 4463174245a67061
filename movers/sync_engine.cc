#include "movers/sync_engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "movers/maildir_rules.h"
#include "movers/stream_pool.h"
#include "movers/token_bucket.h"
#include "movers/transfer_policy.h"
#include "movers/tree_diff.h"
#include "util/interrupt.h"
#include "util/strings.h"

namespace mailshard {

std::string_view pass_kind_name(PassKind k) {
  switch (k) {
    case PassKind::kWarm: return "warm";
    case PassKind::kFrozen: return "frozen";
    case PassKind::kMetadata: return "metadata";
  }
  return "?";
}

nlohmann::json PassStats::to_json() const {
  nlohmann::json j;
  j["kind"] = pass_kind_name(kind);
  j["audit"] = audit;
  j["dirs"] = dirs;
  j["entries"] = entries;
  j["files_copied"] = files_copied;
  j["bytes_sent"] = bytes_sent;
  j["signature_bytes"] = signature_bytes;
  j["renames"] = renames;
  j["deletes"] = deletes;
  j["dirs_created"] = dirs_created;
  j["dirs_removed"] = dirs_removed;
  j["hard_links"] = hard_links;
  j["symlinks"] = symlinks;
  j["stat_calls"] = stat_calls;
  j["metadata_checked"] = metadata_checked;
  j["metadata_sent"] = metadata_sent;
  j["tails"] = tails;
  j["block_patches"] = block_patches;
  j["deltas"] = deltas;
  j["whole"] = whole;
  j["attrs_fixed"] = attrs_fixed;
  j["adopted"] = adopted;
  j["vanished"] = vanished;
  j["unstable"] = unstable;
  j["audit_mismatches"] = audit_mismatches;
  j["temps_removed"] = temps_removed;
  nlohmann::json ph = nlohmann::json::object();
  for (const auto& [name, s] : phases) ph[name] = s;
  j["seconds_per_phase"] = ph;
  j["seconds"] = seconds;
  return j;
}

nlohmann::json VerifyReport::to_json() const {
  return {{"entries_compared", entries_compared},
          {"files_hashed", files_hashed},
          {"uidlists_checked", uidlists_checked},
          {"mismatches", mismatches},
          {"seconds", seconds}};
}

SyncEngine::SyncEngine(Transport& src, std::string src_home, Transport& dst, std::string dst_home, SyncOptions options,
                       Clock& clock)
    : src_(src), src_home_(std::move(src_home)), dst_(dst), dst_home_(std::move(dst_home)), options_(options),
      clock_(clock) {}

namespace {

using Steady = std::chrono::steady_clock;

double secs(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

size_t depth(const std::string& p) {
  return p.empty() ? 0 : 1 + static_cast<size_t>(std::count(p.begin(), p.end(), '/'));
}

// Owner, mode and mtime: what the destination copy must carry.
bool same_kept_attrs(const FileAttrs& a, const FileAttrs& b) {
  return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtime_ns == b.mtime_ns;
}

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

}  // namespace

// One pass: owns the bookkeeping; SyncEngine only holds the configuration.
class PassRunner {
 public:
  PassRunner(SyncEngine& e, SyncState& st, PassKind kind, bool audit)
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

  Result<PassStats> run() {
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
    std::vector<MetaItem> known_items;
    Known known;
    MetaOutcome meta_out;
    std::thread meta_thread;
    struct JoinOnExit {
      std::thread& t;
      ~JoinOnExit() {
        if (t.joinable()) t.join();
      }
    } join_on_exit{meta_thread};
    auto start_meta = [&] {
      known_metadata(known_items, known);
      meta_thread = std::thread([&] {
        auto t0 = Steady::now();
        if (auto st = metadata_batch(known_items, known, meta_out); !st.ok()) meta_out.error = std::move(st).error();
        meta_out.stats.seconds = secs(Steady::now() - t0);
      });
    };
    std::unordered_set<std::string> listed_files;  // the plan's mutable files, filled after the diff
    auto join_meta = [&]() -> Status {
      if (!meta_thread.joinable()) return {};
      meta_thread.join();
      stats_.phases.emplace_back("metadata_parallel", meta_out.stats.seconds);
      return merge_metadata(meta_out, &listed_files);
    };
    if (!list_dst) start_meta();

    // 1. Listings: source and destination in parallel.
    DstExtras extras;
    Status dst_listed;
    std::thread dst_thread;
    if (list_dst) dst_thread = std::thread([&] { dst_listed = reconcile_with_destination(extras); });
    auto src = e_.src_.list_tree(e_.src_home_);
    if (dst_thread.joinable()) dst_thread.join();
    if (!src.ok()) return std::move(src).error().context("list source " + e_.src_.describe());
    MS_CHECK(dst_listed);
    if (list_dst) start_meta();
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
    std::vector<std::pair<std::string, EntryType>> file_deletes, dir_deletes;
    for (auto& d : plan.deletes) (d.second == EntryType::kDir ? dir_deletes : file_deletes).push_back(std::move(d));
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

    // 7. The metadata set: the thread's batch, then new metadata files.
    MS_CHECK(join_meta());
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

  std::string S(const std::string& rel) const { return join_path(e_.src_home_, rel); }
  std::string D(const std::string& rel) const { return join_path(e_.dst_home_, rel); }

  Status check_interrupt() {
    if (interrupted()) return Error::interrupted("interrupted");
    return {};
  }

  Result<PassStats> finish(PhaseTimer& timer) {
    st_.dirty = false;
    st_.passes += 1;
    st_.last_written = std::move(written_);
    st_.last_changed = std::move(changed_);
    st_.last_changes_known = true;
    timer.finish();
    return stats_;
  }

  EntryState* entry(const std::string& rel) {
    auto d = st_.dirs.find(path_parent(rel));
    if (d == st_.dirs.end()) return nullptr;
    auto it = d->second.entries.find(path_last(rel));
    return it == d->second.entries.end() ? nullptr : &it->second;
  }
  void put(const std::string& rel, EntryState e) { st_.dirs[path_parent(rel)].entries[path_last(rel)] = std::move(e); }
  void erase(const std::string& rel) {
    auto d = st_.dirs.find(path_parent(rel));
    if (d != st_.dirs.end()) d->second.entries.erase(path_last(rel));
  }
  void touch(const std::string& rel_dir) { touched_.insert(rel_dir); }
  // A destination path this pass changed other than by writing a file (see
  // SyncState::last_changed).
  void changed(std::string rel) { changed_.push_back(std::move(rel)); }

  // Applies ops; calls done(i, status) for each. Ops are sent in chunks so a
  // 100k-delete pass is a few round trips.
  // Independent ops (unlinks, renames of distinct names) in parallel parts:
  // an unlink that frees blocks waits for the device (discard), and the
  // streams are idle meanwhile anyway.
  template <typename Fn>
  Status apply_parallel(const std::vector<TreeOp>& ops, Fn done) {
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

  template <typename Fn>
  Status apply(const std::vector<TreeOp>& ops, Fn done) {
    constexpr size_t kChunk = 20000;
    for (size_t i = 0; i < ops.size(); i += kChunk) {
      std::vector<TreeOp> part(ops.begin() + static_cast<ptrdiff_t>(i),
                               ops.begin() + static_cast<ptrdiff_t>(std::min(ops.size(), i + kChunk)));
      auto res = MS_TRY(e_.dst_.apply(part).context("destination " + e_.dst_.describe()));
      for (size_t k = 0; k < res.size(); ++k) MS_CHECK(done(i + k, res[k]));
    }
    return {};
  }

  // Destination listing: forget what the state believes but the destination
  // lacks, remove stale temps, and collect what the state does not know.
  Status reconcile_with_destination(DstExtras& extras) {
    auto listed = e_.dst_.list_tree(e_.dst_home_);
    TreeListing dst;
    if (listed.ok()) {
      dst = std::move(*listed);
    } else if (listed.error().code() != ErrorCode::kNotFound) {
      return std::move(listed).error().context("list destination " + e_.dst_.describe());
    }
    std::unordered_map<std::string, const DirListing*> by_path;
    for (const auto& d : dst) by_path.emplace(d.path, &d);
    for (auto it = st_.dirs.begin(); it != st_.dirs.end();) {
      auto d = by_path.find(it->first);
      if (d == by_path.end()) {
        it = st_.dirs.erase(it);
        continue;
      }
      std::unordered_map<std::string_view, EntryType> names;
      names.reserve(d->second->entries.size());
      for (const auto& e : d->second->entries) names.emplace(e.name, e.type);
      for (auto en = it->second.entries.begin(); en != it->second.entries.end();) {
        auto n = names.find(en->first);
        if (n == names.end() || n->second != en->second.type) en = it->second.entries.erase(en);
        else ++en;
      }
      ++it;
    }
    std::vector<TreeOp> temps;
    for (const auto& d : dst) {
      auto sd = st_.dirs.find(d.path);
      if (sd == st_.dirs.end() && !d.path.empty()) extras.emplace(d.path, EntryType::kDir);
      for (const auto& e : d.entries) {
        std::string rel = join_path(d.path, e.name);
        if (e.type == EntryType::kDir) continue;  // comes as its own listing entry
        if (starts_with(e.name, kTempPrefix)) {
          TreeOp op;
          op.kind = TreeOp::Kind::kUnlink;
          op.path = D(rel);
          temps.push_back(std::move(op));
          continue;
        }
        if (sd == st_.dirs.end() || !sd->second.entries.count(e.name)) extras.emplace(std::move(rel), e.type);
      }
    }
    if (!temps.empty()) {
      MS_CHECK(apply(temps, [&](size_t i, const Status& s) -> Status {
        if (!s.ok() && s.error().code() != ErrorCode::kNotFound)
          return Error(s.error()).context("remove stale temp file");
        ++stats_.temps_removed;
        touch(path_parent(temps[i].path));
        changed(temps[i].path.substr(e_.dst_home_.empty() ? 0 : e_.dst_home_.size() + 1));
        return {};
      }));
    }
    return {};
  }

  // The destination home and its missing parents.
  Status ensure_home(const TreePlan& plan) {
    if (st_.dirs.count("")) return {};
    if (e_.dst_home_.empty()) return {};
    // Parents of the home are created like `mkdir -p`, owned like the home.
    FileAttrs home_attrs;
    for (const auto& d : plan.dirs)
      if (d.path.empty()) home_attrs = d.attrs;
    std::vector<TreeOp> ops;
    std::string cur;
    for (const auto& comp : split(e_.dst_home_, '/')) {
      cur = join_path(cur, comp);
      if (cur == e_.dst_home_) break;
      TreeOp op;
      op.kind = TreeOp::Kind::kMkdir;
      op.path = cur;
      op.attrs = home_attrs;
      op.attrs.mode = 0755;
      op.attr_mask = TreeOp::kOwner | TreeOp::kMode;
      ops.push_back(std::move(op));
    }
    return apply(ops, [&](size_t i, const Status& s) -> Status {
      if (!s.ok()) return Error(s.error()).context("create destination parent");
      parents_created_.push_back(ops[i].path);
      return {};
    });
  }

  Status run_mkdirs(const std::vector<TreePlan::Dir>& dirs) {
    std::vector<TreeOp> ops;
    for (const auto& d : dirs) {
      TreeOp op;
      op.kind = TreeOp::Kind::kMkdir;
      op.path = D(d.path);
      op.attrs = d.attrs;
      op.attr_mask = TreeOp::kOwner | TreeOp::kMode;
      ops.push_back(std::move(op));
    }
    return apply(ops, [&](size_t i, const Status& s) -> Status {
      if (!s.ok()) return Error(s.error()).context("mkdir");
      DirState& ds = st_.dirs[dirs[i].path];
      ds.attrs = dirs[i].attrs;
      ds.attrs.mtime_ns = -1;  // set at the end of the pass
      ++stats_.dirs_created;
      changed(dirs[i].path);
      if (!dirs[i].path.empty()) touch(path_parent(dirs[i].path));
      else if (!e_.dst_home_.empty()) parents_created_.push_back(path_parent(e_.dst_home_));
      return {};
    });
  }

  Status run_renames(const std::vector<std::pair<std::string, std::string>>& renames,
                     std::vector<TreePlan::Entry>& fresh) {
    std::vector<TreeOp> ops;
    ops.reserve(renames.size());
    for (const auto& [from, to] : renames) {
      TreeOp op;
      op.kind = TreeOp::Kind::kRename;
      op.from = D(from);
      op.path = D(to);
      ops.push_back(std::move(op));
    }
    return apply_parallel(ops, [&](size_t i, const Status& s) -> Status {
      const auto& [from, to] = renames[i];
      EntryState* se = entry(from);
      EntryState moved = se ? *se : EntryState{};
      erase(from);
      changed(from);
      changed(to);
      if (!s.ok()) {
        // Gone on the destination (a repeated pass, or someone deleted it):
        // copy it again instead.
        if (s.error().code() != ErrorCode::kNotFound) return Error(s.error()).context("rename");
        fresh.push_back({to, EntryType::kFile, FileClass::kMessage, false});
        return {};
      }
      put(to, std::move(moved));
      ++stats_.renames;
      touch(path_parent(from));
      touch(path_parent(to));
      return {};
    });
  }

  // lstat of the new names; sorts them into copies, hard links, symlinks and metadata.
  Status stat_new(std::vector<TreePlan::Entry>& fresh, std::vector<CopyJob>& copies, std::vector<LinkJob>& links,
                  std::vector<MetaItem>& meta, std::vector<std::string>& symlinks) {
    std::vector<TreePlan::Entry> files;
    for (auto& n : fresh) {
      if (n.type == EntryType::kSymlink) symlinks.push_back(n.path);
      else if (n.cls == FileClass::kMessage || n.cls == FileClass::kImmutable) files.push_back(std::move(n));
      else meta.push_back({n.path, n.cls, false, n.on_dst});
    }
    if (files.empty()) return {};
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
    std::vector<StatRequest> rq;
    rq.reserve(files.size());
    // Files the destination already has but the state does not know (a
    // restart without state) are hashed on both sides: the same size, mtime
    // and content hash means the same file, adopted without a copy.
    for (const auto& f : files) rq.push_back({S(f.path), HashSpec{f.on_dst, -1}});
    auto res = MS_TRY(e_.src_.stat(rq).context("stat source " + e_.src_.describe()));
    stats_.stat_calls += static_cast<int64_t>(rq.size());
    std::vector<size_t> on_dst_idx;
    std::vector<StatRequest> dq;
    for (size_t i = 0; i < files.size(); ++i)
      if (files[i].on_dst && res[i].attrs.type == EntryType::kFile && !res[i].error) {
        on_dst_idx.push_back(i);
        dq.push_back({D(files[i].path), HashSpec{true, -1}});
      }
    std::unordered_map<size_t, StatResult> dst_stat;
    if (!dq.empty()) {
      auto dres = MS_TRY(e_.dst_.stat(dq).context("stat destination " + e_.dst_.describe()));
      for (size_t k = 0; k < dres.size(); ++k) dst_stat.emplace(on_dst_idx[k], std::move(dres[k]));
    }
    std::unordered_map<uint64_t, std::string> ino_this_pass;
    bool ino_index_built = false;
    std::unordered_map<uint64_t, std::pair<std::string, const EntryState*>> ino_state;
    std::vector<TreeOp> fix_attrs;
    std::vector<std::pair<std::string, EntryState>> fix_entries;
    for (size_t i = 0; i < files.size(); ++i) {
      auto& r = res[i];
      const std::string& rel = files[i].path;
      if (r.error) {
        if (r.error->code() == ErrorCode::kNotFound) {
          ++stats_.vanished;
          continue;
        }
        return Error(*r.error).context("stat source");
      }
      if (r.attrs.type != EntryType::kFile) {  // changed type since the listing
        if (frozen_) return Error::conflict(fmt::format("'{}' changed type during the frozen pass", printable(rel)));
        ++stats_.unstable;
        continue;
      }
      if (auto d = dst_stat.find(i); d != dst_stat.end() && !d->second.error &&
                                     d->second.attrs.type == EntryType::kFile &&
                                     d->second.attrs.size == r.attrs.size && d->second.attrs.mtime_ns == r.attrs.mtime_ns &&
                                     r.hash && d->second.hash && *r.hash == *d->second.hash) {
        ++stats_.adopted;
        EntryState es;
        es.attrs = r.attrs;
        es.has_hash = true;
        es.hash = *r.hash;
        if (!same_kept_attrs(d->second.attrs, r.attrs)) {
          TreeOp op;
          op.kind = TreeOp::Kind::kSetAttrs;
          op.path = D(rel);
          op.attrs = r.attrs;
          op.attr_mask = TreeOp::kAllAttrs;
          fix_attrs.push_back(std::move(op));
        }
        fix_entries.emplace_back(rel, std::move(es));
        continue;
      }
      if (r.attrs.nlink > 1) {
        if (auto it = ino_this_pass.find(r.attrs.ino); it != ino_this_pass.end()) {
          links.push_back({it->second, rel, r.attrs});
          continue;
        }
        if (!ino_index_built) {
          for (const auto& [dpath, ds] : st_.dirs)
            for (const auto& [name, es] : ds.entries)
              if (es.type == EntryType::kFile) ino_state.emplace(es.attrs.ino, std::make_pair(join_path(dpath, name), &es));
          ino_index_built = true;
        }
        // The same inode, size and mtime as a file copied earlier: probably a
        // hard link (Dovecot's COPY). Only a hint (the inode may have been
        // freed and reused since): run_links() checks the content first.
        if (auto it = ino_state.find(r.attrs.ino); it != ino_state.end() && it->second.second->attrs.size == r.attrs.size &&
                                                    it->second.second->attrs.mtime_ns == r.attrs.mtime_ns) {
          links.push_back({it->second.first, rel, r.attrs});
          continue;
        }
        ino_this_pass.emplace(r.attrs.ino, rel);
      }
      CopyJob job;
      job.rel = rel;
      job.stat = r.attrs;
      copies.push_back(std::move(job));
    }
    if (!fix_attrs.empty())
      MS_CHECK(apply(fix_attrs, [&](size_t, const Status& s) -> Status {
        if (!s.ok()) return Error(s.error()).context("set attributes");
        ++stats_.attrs_fixed;
        return {};
      }));
    for (auto& [rel, es] : fix_entries) {
      changed(rel);
      put(rel, std::move(es));
    }
    return {};
  }

  // Copies whole files through min(streams) parallel reader/writer pairs.
  Status copy_round(std::vector<CopyJob>& jobs) {
    if (jobs.empty()) return {};
    int streams = std::max(1, std::min({e_.options_.streams, e_.src_.max_streams(), e_.dst_.max_streams()}));
    // Batches of consecutive (sorted) paths, bounded in files and bytes.
    std::vector<std::pair<size_t, size_t>> batches;
    size_t start = 0;
    int64_t bytes = 0;
    for (size_t i = 0; i < jobs.size(); ++i) {
      bytes += jobs[i].stat.size;
      if (i + 1 - start >= e_.options_.batch_files || bytes >= e_.options_.batch_bytes) {
        batches.emplace_back(start, i + 1);
        start = i + 1;
        bytes = 0;
      }
    }
    if (start < jobs.size()) batches.emplace_back(start, jobs.size());
    streams = std::min<int>(streams, static_cast<int>(batches.size()));

    return run_streams(batches.size(), streams, [&](size_t b) -> Status {
      if (interrupted()) return Error::interrupted("interrupted");
      auto [lo, hi] = batches[b];
      std::vector<CopySpec> specs(hi - lo);
      for (size_t i = lo; i < hi; ++i) {
        specs[i - lo].read = ReadSpec(S(jobs[i].rel));
        specs[i - lo].dst_path = D(jobs[i].rel);
      }
      auto outs = MS_TRY(e_.copy_batch(std::move(specs), wopts_));
      for (size_t i = lo; i < hi; ++i) {
        CopyOutcome& o = outs[i - lo];
        CopyJob& job = jobs[i];
        job.read = o.read;
        job.error = std::move(o.error);
        if (o.read == ReadStatus::kOk) job.attrs = o.attrs;
        job.written = o.written;
        if (o.written) job.result = std::move(o.result);
      }
      return {};
    });
  }

  Status run_copies(std::vector<CopyJob>& jobs) {
    int rounds = 0;
    while (!jobs.empty()) {
      MS_CHECK(copy_round(jobs));
      std::vector<CopyJob> retry;
      for (auto& j : jobs) {
        if (j.read == ReadStatus::kVanished) {
          ++stats_.vanished;  // expunged while we copied
          continue;
        }
        if (j.read == ReadStatus::kNotRegular) {
          if (frozen_) return Error::conflict(fmt::format("'{}' changed type during the frozen pass", printable(j.rel)));
          ++stats_.unstable;
          continue;
        }
        if (j.read == ReadStatus::kFailed)
          return Error(j.error ? *j.error : Error::internal("read failed")).context(fmt::format("copy '{}'", printable(j.rel)));
        if (!j.written) continue;
        switch (j.result.status) {
          case WriteStatus::kOk: {
            EntryState es;
            es.attrs = j.attrs;
            es.has_hash = true;
            es.hash = j.result.hash;
            put(j.rel, std::move(es));
            written_.emplace_back(j.rel, j.result.hash);
            ++stats_.files_copied;
            stats_.bytes_sent += j.result.body_bytes;
            touch(path_parent(j.rel));
            break;
          }
          case WriteStatus::kSourceChanged:
            stats_.bytes_sent += j.result.body_bytes;
            if (!frozen_) {
              ++stats_.unstable;  // the next pass copies it again
              break;
            }
            if (rounds >= e_.options_.frozen_retries)
              return Error::conflict(fmt::format("'{}' kept changing during the frozen pass", printable(j.rel)));
            retry.push_back(copy_job(j.rel, j.stat));
            break;
          case WriteStatus::kHashMismatch:
            if (rounds >= 1) return Error(*j.result.error).context(fmt::format("copy '{}'", printable(j.rel)));
            retry.push_back(copy_job(j.rel, j.stat));
            break;
          case WriteStatus::kFailed:
            return Error(j.result.error ? *j.result.error : Error::internal("write failed"))
                .context(fmt::format("copy '{}'", printable(j.rel)));
        }
      }
      jobs = std::move(retry);
      ++rounds;
    }
    return {};
  }

  // Hard links. A link is made only to content this pass copied or
  // verified: the source name is hashed now and must hash to what the link
  // target holds (its hash recorded when it was copied), with the same inode
  // it had when stat'ed. Otherwise (an inode freed and reused, a target
  // copied without a hash, a target that is not there) the file is copied.
  // Links go into the pass's written set, so verify() checks them too.
  Status run_links(const std::vector<LinkJob>& links, bool retry = false) {
    if (links.empty()) return {};
    std::vector<StatRequest> rq;
    rq.reserve(links.size());
    for (const auto& l : links) rq.push_back({S(l.to), HashSpec{true, -1}});
    auto res = MS_TRY(e_.src_.stat(rq).context("hash source " + e_.src_.describe()));
    stats_.stat_calls += static_cast<int64_t>(rq.size());
    std::vector<TreeOp> ops;
    std::vector<size_t> linked;
    std::vector<CopyJob> fallback;
    // Names refused a link to their target: the first of each inode is
    // copied, the others are linked to that copy (checked the same way).
    std::unordered_map<uint64_t, std::string> copied_ino;
    std::vector<LinkJob> relinks;
    for (size_t i = 0; i < links.size(); ++i) {
      const LinkJob& l = links[i];
      const StatResult& r = res[i];
      if (r.error && r.error->code() == ErrorCode::kNotFound) {
        ++stats_.vanished;
        continue;
      }
      const EntryState* from = entry(l.from);
      bool same = !r.error && r.hash && r.attrs.type == EntryType::kFile && r.attrs.ino == l.attrs.ino && from &&
                  from->type == EntryType::kFile && from->has_hash && from->hash == *r.hash &&
                  from->attrs.size == r.attrs.size;
      if (!same) {
        auto [c, first] = copied_ino.emplace(l.attrs.ino, l.to);
        if (first || retry) fallback.push_back(copy_job(l.to, l.attrs));
        else relinks.push_back({c->second, l.to, l.attrs});
        continue;
      }
      TreeOp op;
      op.kind = TreeOp::Kind::kLink;
      op.from = D(l.from);
      op.path = D(l.to);
      ops.push_back(std::move(op));
      linked.push_back(i);
    }
    MS_CHECK(apply(ops, [&](size_t k, const Status& s) -> Status {
      const LinkJob& l = links[linked[k]];
      if (!s.ok()) {
        // The link source is not on the destination (the copy vanished or
        // was left for the next pass): copy the file itself.
        if (s.error().code() != ErrorCode::kNotFound) return Error(s.error()).context("hard link");
        fallback.push_back(copy_job(l.to, l.attrs));
        return {};
      }
      EntryState es = *entry(l.from);
      es.attrs = l.attrs;
      written_.emplace_back(l.to, es.hash);
      put(l.to, std::move(es));
      ++stats_.hard_links;
      touch(path_parent(l.to));
      return {};
    }));
    MS_CHECK(run_copies(fallback));
    return run_links(relinks, true);
  }

  // New and existing symlinks: stat on the source, (re)create when different.
  Status run_symlinks(const std::vector<std::string>& paths) {
    if (paths.empty()) return {};
    std::vector<StatRequest> rq;
    for (const auto& p : paths) rq.push_back({S(p), {}});
    auto res = MS_TRY(e_.src_.stat(rq).context("stat source " + e_.src_.describe()));
    stats_.stat_calls += static_cast<int64_t>(rq.size());
    std::vector<TreeOp> ops;
    std::vector<size_t> idx;
    for (size_t i = 0; i < paths.size(); ++i) {
      auto& r = res[i];
      if (r.error) {
        if (r.error->code() == ErrorCode::kNotFound) {
          ++stats_.vanished;
          continue;
        }
        return Error(*r.error).context("stat source");
      }
      if (r.attrs.type != EntryType::kSymlink) {
        if (frozen_) return Error::conflict(fmt::format("'{}' changed type during the frozen pass", printable(paths[i])));
        ++stats_.unstable;
        continue;
      }
      EntryState* se = entry(paths[i]);
      if (se && se->type == EntryType::kSymlink && se->link_target == r.link_target && se->attrs.uid == r.attrs.uid &&
          se->attrs.gid == r.attrs.gid && se->attrs.mtime_ns == r.attrs.mtime_ns)
        continue;
      TreeOp op;
      op.kind = TreeOp::Kind::kSymlink;
      op.path = D(paths[i]);
      op.from = r.link_target;  // copied as text, never followed
      op.attrs = r.attrs;
      op.attr_mask = TreeOp::kOwner | TreeOp::kMtime;
      ops.push_back(std::move(op));
      idx.push_back(i);
    }
    return apply(ops, [&](size_t k, const Status& s) -> Status {
      if (!s.ok()) return Error(s.error()).context("symlink");
      size_t i = idx[k];
      EntryState es;
      es.type = EntryType::kSymlink;
      es.attrs = res[i].attrs;
      es.link_target = res[i].link_target;
      changed(paths[i]);
      put(paths[i], std::move(es));
      ++stats_.symlinks;
      touch(path_parent(paths[i]));
      return {};
    });
  }

  // How one metadata file travels (movers/transfer_policy.h).
  using Method = TransferMethod;

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
    std::optional<Error> error;
  };

  // The state entries of the metadata files, copied for a batch.
  using Known = std::unordered_map<std::string, EntryState>;

  Status metadata_batch(std::vector<MetaItem>& items, const Known& known, MetaOutcome& out) {
    auto entry = [&](const std::string& rel) -> const EntryState* {
      auto it = known.find(rel);
      return it == known.end() ? nullptr : &it->second;
    };
    if (items.empty()) return {};
    auto meta_t0 = Steady::now();
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.rel < b.rel; });
    out.stats.metadata_checked += static_cast<int64_t>(items.size());
    // Step 1: lstat only. Step 2 hashes what stat cannot decide: a file
    // whose size, mtime and ctime match the state is hashed to confirm it
    // (in-place writers can keep all three); a grown file gets
    // the hash of its old length (is it an append?). Everything else changed
    // for sure and is read once, by the transfer, which hashes it anyway.
    std::vector<StatRequest> rq;
    rq.reserve(items.size());
    for (const auto& it : items) rq.push_back({S(it.rel), {}});
    auto res = MS_TRY(e_.src_.stat(rq).context("stat source " + e_.src_.describe()));
    out.stats.stat_calls += static_cast<int64_t>(rq.size());
    {
      std::vector<StatRequest> hq;
      std::vector<size_t> hi;
      for (size_t i = 0; i < items.size(); ++i) {
        const StatResult& r = res[i];
        const EntryState* se = items[i].in_state ? entry(items[i].rel) : nullptr;
        if (r.error || r.attrs.type != EntryType::kFile) continue;
        StatRequest h{S(items[i].rel), {}};
        if (!se || !se->has_hash) {
          h.hash.whole = items[i].on_dst;  // may be adopted if equal to the destination's copy
        } else if (se->attrs.size == r.attrs.size && se->attrs.mtime_ns == r.attrs.mtime_ns &&
                   se->attrs.ctime_ns == r.attrs.ctime_ns) {
          h.hash.whole = true;
        } else if (r.attrs.size > se->attrs.size) {
          h.hash.prefix_len = se->attrs.size;  // appended? (logs, uidlists, mbox deliveries)
        } else if (r.attrs.size == se->attrs.size) {
          h.hash.whole = true;  // maybe only touched: then only the attributes change
        }
        if (!h.hash.whole && h.hash.prefix_len < 0) continue;
        hq.push_back(std::move(h));
        hi.push_back(i);
      }
      if (!hq.empty()) {
        auto hres = MS_TRY(e_.src_.stat(hq).context("hash source " + e_.src_.describe()));
        for (size_t k = 0; k < hres.size(); ++k) res[hi[k]] = std::move(hres[k]);
      }
    }
    // The destination's copies the state does not know: hashed to adopt them or to use them as a delta basis.
    std::unordered_map<size_t, StatResult> dres;
    {
      std::vector<StatRequest> dq;
      std::vector<size_t> di;
      for (size_t i = 0; i < items.size(); ++i)
        if (!items[i].in_state && items[i].on_dst) {
          dq.push_back({D(items[i].rel), {true, -1}});
          di.push_back(i);
        }
      if (!dq.empty()) {
        auto d = MS_TRY(e_.dst_.stat(dq).context("stat destination " + e_.dst_.describe()));
        for (size_t k = 0; k < d.size(); ++k) dres.emplace(di[k], std::move(d[k]));
      }
    }

    struct Transfer {
      size_t item;
      Method method;
      ReadSpec spec;
      WriteSpec::Kind kind;
      uint32_t basis_block_len = 0;  // kDelta: the signature's block length
    };
    std::vector<Transfer> transfers;
    std::vector<TreeOp> attr_ops;
    std::vector<size_t> attr_items;
    std::vector<std::pair<std::string, EntryType>> vanished;
    for (size_t i = 0; i < items.size(); ++i) {
      const MetaItem& it = items[i];
      StatResult& r = res[i];
      if (r.error) {
        if (r.error->code() == ErrorCode::kNotFound) {
          ++out.stats.vanished;
          if (it.in_state) vanished.emplace_back(it.rel, EntryType::kFile);
          continue;
        }
        return Error(*r.error).context("stat source");
      }
      if (r.attrs.type != EntryType::kFile) {
        out.type_changed.push_back(it.rel);  // merge_metadata() decides: a change the listing saw, or a race
        continue;
      }
      const EntryState* se = it.in_state ? entry(it.rel) : nullptr;
      const StatResult* dr = nullptr;
      if (auto d = dres.find(i); d != dres.end() && !d->second.error && d->second.attrs.type == EntryType::kFile)
        dr = &d->second;
      // Unchanged content: at most the attributes.
      bool same_content = (se && se->has_hash && r.hash && se->hash == *r.hash && se->attrs.size == r.attrs.size) ||
                          (!se && dr && dr->hash && r.hash && *dr->hash == *r.hash);
      if (same_content) {
        const FileAttrs& have = se ? se->attrs : dr->attrs;
        EntryState es = se ? *se : EntryState{};
        es.type = EntryType::kFile;
        es.has_hash = true;
        es.hash = *r.hash;
        es.attrs = r.attrs;
        if (!se) ++out.stats.adopted;
        if (!same_kept_attrs(have, r.attrs)) {
          TreeOp op;
          op.kind = TreeOp::Kind::kSetAttrs;
          op.path = D(it.rel);
          op.attrs = r.attrs;
          op.attr_mask = TreeOp::kAllAttrs;
          attr_ops.push_back(std::move(op));
          attr_items.push_back(i);
          out.changed.push_back(it.rel);
        }
        out.puts.emplace_back(it.rel, std::move(es));
        continue;
      }
      Transfer t{i, Method::kWhole, ReadSpec(S(it.rel)), WriteSpec::Kind::kNew};
      std::string_view name = std::string_view(it.rel).substr(it.rel.rfind('/') + 1);
      TransferFacts facts;
      facts.cls = it.cls;
      facts.name = name;
      facts.frozen = frozen_;
      facts.size = r.attrs.size;
      facts.basis_size = se ? se->attrs.size : (dr ? dr->attrs.size : -1);
      facts.appended = se && se->has_hash && r.prefix_hash && *r.prefix_hash == se->hash && r.attrs.size > se->attrs.size;
      if (se) {
        facts.state_block_size = se->block_size;
        facts.state_blocks = se->blocks.size();
      }
      t.method = choose_transfer(facts);
      switch (t.method) {
        case Method::kTail:  // appended: the prefix is what we sent last time
          t.spec.offset = se->attrs.size;
          t.kind = WriteSpec::Kind::kPatch;
          break;
        case Method::kBlocks:  // only the source is read; the state holds the destination's block hashes
          t.spec.mode = ReadSpec::Mode::kBlockDiff;
          t.spec.old_blocks = se->blocks;
          t.kind = WriteSpec::Kind::kPatch;
          break;
        case Method::kDelta:
          t.spec.mode = ReadSpec::Mode::kDelta;
          t.kind = WriteSpec::Kind::kDelta;
          break;
        case Method::kWhole: break;
      }
      // Block hashes of what the destination will hold, for the next pass's
      // block diff (a block diff must use the state's block size).
      if (uint32_t bs = block_hashes_for(it.cls, name, r.attrs.size)) {
        t.spec.want_blocks = true;
        t.spec.block_size = se && se->block_size ? se->block_size : bs;
        t.spec.block_seed = st_.block_seed;
      }
      transfers.push_back(std::move(t));
    }
    if (!attr_ops.empty())
      MS_CHECK(apply(attr_ops, [&](size_t, const Status& s) -> Status {
        if (!s.ok()) return Error(s.error()).context("set attributes");
        ++out.stats.attrs_fixed;
        return {};
      }));

    spdlog::debug("metadata: stat+hash done at {:.3f}s", secs(Steady::now() - meta_t0));
    // Delta transfers: their basis signature is computed where the
    // destination copy is (copy_files), with the block length chosen here.
    for (auto& t : transfers)
      if (t.method == Method::kDelta) {
        const std::string& rel = items[t.item].rel;
        t.basis_block_len = signature_block_len(path_last(rel), res[t.item].attrs.size);
      }
    auto whole_again = [&](const Transfer& t) {
      Transfer w{t.item, Method::kWhole, ReadSpec(S(items[t.item].rel)), WriteSpec::Kind::kNew};
      w.spec.want_blocks = t.spec.want_blocks;
      w.spec.block_size = t.spec.block_size;
      w.spec.block_seed = t.spec.block_seed;
      return w;
    };
    // Every changed metadata file is staged, then published by the commit of
    // its stream; the streams (up to SyncOptions::streams, balanced by size)
    // share the CPU work of diffs and hashes, and all commit before this
    // returns.
    struct Done {
      size_t t;
      FileAttrs attrs;
      std::vector<Hash128> new_blocks;
      WriteResult result;
    };
    int streams = std::max(1, std::min({e_.options_.streams, e_.src_.max_streams(), e_.dst_.max_streams()}));
    for (int round = 0; !transfers.empty(); ++round) {
      size_t groups = std::min<size_t>(static_cast<size_t>(streams), transfers.size());
      std::vector<std::vector<size_t>> part(groups);
      {
        std::vector<size_t> order(transfers.size());
        for (size_t k = 0; k < order.size(); ++k) order[k] = k;
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
          return res[transfers[a].item].attrs.size > res[transfers[b].item].attrs.size;
        });
        std::vector<int64_t> load(groups, 0);
        for (size_t k : order) {
          size_t g = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
          part[g].push_back(k);
          load[g] += res[transfers[k].item].attrs.size;
        }
      }
      struct StreamOut {
        std::vector<Done> done;
        std::vector<std::pair<std::string, EntryType>> vanished;
        int64_t vanished_n = 0, unstable = 0, signature_bytes = 0;
      };
      std::vector<StreamOut> outs(groups);
      auto stream = [&](size_t g) -> Status {
        StreamOut& so = outs[g];
        std::vector<CopySpec> specs;
        specs.reserve(part[g].size());
        for (size_t k : part[g]) {
          CopySpec c;
          c.read = transfers[k].spec;
          c.kind = transfers[k].kind;
          c.dst_path = D(items[transfers[k].item].rel);
          c.basis_block_len = transfers[k].basis_block_len;
          specs.push_back(std::move(c));
        }
        auto outcomes = MS_TRY(e_.copy_batch(std::move(specs), wopts_));
        for (size_t n = 0; n < part[g].size(); ++n) {
          const size_t k = part[g][n];
          CopyOutcome& o = outcomes[n];
          const std::string& rel = items[transfers[k].item].rel;
          so.signature_bytes += o.signature_bytes;
          if (o.whole_fallback) {  // no basis for the delta after all
            transfers[k].method = Method::kWhole;
            transfers[k].spec.mode = ReadSpec::Mode::kWhole;
            transfers[k].kind = WriteSpec::Kind::kNew;
          }
          if (o.read == ReadStatus::kVanished) {
            ++so.vanished_n;
            if (items[transfers[k].item].in_state) so.vanished.emplace_back(rel, EntryType::kFile);
            continue;
          }
          if (o.read == ReadStatus::kNotRegular) {
            if (frozen_) return Error::conflict(fmt::format("'{}' changed type during the frozen pass", printable(rel)));
            ++so.unstable;
            continue;
          }
          if (o.read == ReadStatus::kFailed)
            return Error(o.error ? *o.error : Error::internal("read failed")).context(fmt::format("read '{}'", printable(rel)));
          if (!o.written) return Error::internal(fmt::format("'{}' was read but not written", printable(rel)));
          so.done.push_back({k, o.attrs, std::move(o.new_blocks), std::move(o.result)});
        }
        return {};
      };
      MS_CHECK(run_streams(groups, static_cast<int>(groups), stream));
      spdlog::debug("metadata: committed at {:.3f}s", secs(Steady::now() - meta_t0));
      std::vector<Done> done;
      std::vector<Transfer> retry;
      for (auto& so : outs) {
        out.stats.vanished += so.vanished_n;
        out.stats.unstable += so.unstable;
        out.stats.signature_bytes += so.signature_bytes;
        for (auto& v : so.vanished) vanished.push_back(std::move(v));
        for (auto& d : so.done) done.push_back(std::move(d));
      }
      for (size_t n = 0; n < done.size(); ++n) {
        Transfer& t = transfers[done[n].t];
        const MetaItem& it = items[t.item];
        WriteResult& w = done[n].result;
        out.stats.bytes_sent += w.body_bytes;
        switch (w.status) {
          case WriteStatus::kOk: {
            EntryState es;
            es.attrs = done[n].attrs;
            es.has_hash = true;
            es.hash = w.hash;
            if (t.spec.want_blocks) {
              es.block_size = t.spec.block_size;
              es.blocks = std::move(done[n].new_blocks);
            }
            out.puts.emplace_back(it.rel, std::move(es));
            out.written.emplace_back(it.rel, w.hash);
            out.touched.push_back(path_parent(it.rel));
            ++out.stats.metadata_sent;
            spdlog::debug("metadata '{}': {}, {} bytes sent", it.rel, transfer_method_name(t.method), w.body_bytes);
            switch (t.method) {
              case Method::kWhole: ++out.stats.whole; break;
              case Method::kTail: ++out.stats.tails; break;
              case Method::kBlocks: ++out.stats.block_patches; break;
              case Method::kDelta: ++out.stats.deltas; break;
            }
            break;
          }
          case WriteStatus::kHashMismatch:
            // The destination's basis was not what the state said: send it whole.
            if (t.method == Method::kWhole && round >= 1)
              return Error(*w.error).context(fmt::format("copy '{}'", printable(it.rel)));
            retry.push_back(whole_again(t));
            break;
          case WriteStatus::kSourceChanged:
            if (!frozen_) {
              ++out.stats.unstable;
              break;
            }
            if (round >= e_.options_.frozen_retries)
              return Error::conflict(fmt::format("'{}' kept changing during the frozen pass", printable(it.rel)));
            retry.push_back(whole_again(t));
            break;
          case WriteStatus::kFailed:
            // A warm pass racing a destination directory that went away:
            // the next pass recreates it.
            if (!frozen_ && w.error && w.error->code() == ErrorCode::kNotFound) {
              ++out.stats.unstable;
              break;
            }
            return Error(w.error ? *w.error : Error::internal("write failed"))
                .context(fmt::format("copy '{}'", printable(it.rel)));
        }
      }
      transfers = std::move(retry);
    }
    // Metadata gone from the source meanwhile: its stale copy goes too.
    out.vanished = std::move(vanished);
    return {};
  }

  // Applies a batch's outcome to the pass (main thread).
  // listed_files: the metadata files the pass's listing saw as regular
  // files, for a batch that ran on the state's list alongside the listing
  // (nullptr: the batch's items came from the listing). A file that became
  // a directory or symlink before the listing was replaced by the diff; one
  // that changed after it changed during the pass.
  Status merge_metadata(MetaOutcome& out, const std::unordered_set<std::string>* listed_files = nullptr) {
    for (const auto& rel : out.type_changed) {
      if (listed_files && !listed_files->count(rel)) continue;
      if (frozen_ && !out.error)
        out.error = Error::conflict(fmt::format("'{}' changed type during the frozen pass", printable(rel)));
      ++stats_.unstable;
    }
    const PassStats& m = out.stats;
    stats_.metadata_checked += m.metadata_checked;
    stats_.stat_calls += m.stat_calls;
    stats_.vanished += m.vanished;
    stats_.unstable += m.unstable;
    stats_.adopted += m.adopted;
    stats_.attrs_fixed += m.attrs_fixed;
    stats_.bytes_sent += m.bytes_sent;
    stats_.signature_bytes += m.signature_bytes;
    stats_.metadata_sent += m.metadata_sent;
    stats_.whole += m.whole;
    stats_.tails += m.tails;
    stats_.block_patches += m.block_patches;
    stats_.deltas += m.deltas;
    for (auto& [rel, es] : out.puts) put(rel, std::move(es));
    for (auto& w : out.written) written_.push_back(std::move(w));
    for (auto& t : out.touched) touch(t);
    for (auto& c : out.changed) changed(std::move(c));
    if (out.error) return std::move(*out.error);
    return run_deletes(std::move(out.vanished), "delete");
  }

  // The metadata files the state knows (what the previous pass copied).
  void known_metadata(std::vector<MetaItem>& items, Known& known) {
    for (const auto& [dpath, ds] : st_.dirs) {
      std::string parent = path_parent(dpath);
      bool folder = st_.dirs.count(join_path(parent, "cur")) && st_.dirs.count(join_path(parent, "new"));
      DirInfo info = dpath.empty() ? DirInfo{} : classify_dir(path_last(dpath), folder);
      if (info.maildir_sub || info.maildir_tmp) continue;
      for (const auto& [name, es] : ds.entries) {
        if (es.type != EntryType::kFile) continue;
        FileClass cls = classify_file(info, name);
        if (cls == FileClass::kSkip || cls == FileClass::kMessage || cls == FileClass::kImmutable) continue;
        std::string rel = join_path(dpath, name);
        items.push_back({rel, cls, true, false});
        known.emplace(std::move(rel), es);
      }
    }
  }

  // Runs one metadata batch here and now.
  Status run_metadata(std::vector<MetaItem>& items) {
    Known known;
    for (const auto& it : items)
      if (const EntryState* se = it.in_state ? entry(it.rel) : nullptr) known.emplace(it.rel, *se);
    MetaOutcome out;
    if (auto st = metadata_batch(items, known, out); !st.ok()) out.error = std::move(st).error();
    return merge_metadata(out);
  }

  // lstat + hash of every kept file on both sides; content drift is copied
  // again, attribute drift fixed.
  Status run_audit(const std::vector<std::string>& kept, std::vector<CopyJob>& copies) {
    if (kept.empty()) return {};
    std::vector<StatRequest> sq, dq;
    for (const auto& p : kept) {
      sq.push_back({S(p), {true, -1}});
      dq.push_back({D(p), {true, -1}});
    }
    Result<std::vector<StatResult>> sres = Error::internal("unset"), dres = Error::internal("unset");
    std::thread t([&] { dres = e_.dst_.stat(dq); });
    sres = e_.src_.stat(sq);
    t.join();
    if (!sres.ok()) return std::move(sres).error().context("audit source");
    if (!dres.ok()) return std::move(dres).error().context("audit destination");
    stats_.stat_calls += static_cast<int64_t>(kept.size());
    std::vector<TreeOp> ops;
    std::vector<size_t> op_idx;
    for (size_t i = 0; i < kept.size(); ++i) {
      const StatResult& s = (*sres)[i];
      const StatResult& d = (*dres)[i];
      if (s.error) {
        if (s.error->code() == ErrorCode::kNotFound) continue;  // expunged meanwhile: the next pass deletes it
        return Error(*s.error).context("audit source");
      }
      if (s.attrs.type != EntryType::kFile) continue;
      EntryState es;
      if (EntryState* se = entry(kept[i])) es = *se;
      es.attrs = s.attrs;
      es.has_hash = s.hash.has_value();
      if (s.hash) es.hash = *s.hash;
      if (d.error || d.attrs.type != EntryType::kFile || !d.hash || !s.hash || !(*d.hash == *s.hash) ||
          d.attrs.size != s.attrs.size) {
        ++stats_.audit_mismatches;
        spdlog::warn("audit: '{}' differs on the destination; copying it again", printable(kept[i]));
        erase(kept[i]);
        copies.push_back(copy_job(kept[i], s.attrs));
        continue;
      }
      if (!same_kept_attrs(d.attrs, s.attrs)) {
        ++stats_.audit_mismatches;
        changed(kept[i]);
        TreeOp op;
        op.kind = TreeOp::Kind::kSetAttrs;
        op.path = D(kept[i]);
        op.attrs = s.attrs;
        op.attr_mask = TreeOp::kAllAttrs;
        ops.push_back(std::move(op));
        op_idx.push_back(i);
      }
      put(kept[i], std::move(es));
    }
    return apply(ops, [&](size_t, const Status& s) -> Status {
      if (!s.ok()) return Error(s.error()).context("set attributes");
      ++stats_.attrs_fixed;
      return {};
    });
  }

  // Unlinks files/symlinks, then removes directories deepest first.
  Status run_deletes(std::vector<std::pair<std::string, EntryType>> list, const char* what) {
    if (list.empty()) return {};
    std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
      bool ad = a.second == EntryType::kDir, bd = b.second == EntryType::kDir;
      if (ad != bd) return !ad;
      if (ad) return depth(a.first) > depth(b.first);
      return false;
    });
    std::vector<TreeOp> files, dirs;
    for (const auto& [p, t] : list) {
      TreeOp op;
      op.kind = t == EntryType::kDir ? TreeOp::Kind::kRmdir : TreeOp::Kind::kUnlink;
      op.path = D(p);
      (t == EntryType::kDir ? dirs : files).push_back(std::move(op));
    }
    auto done = [&](size_t i, const Status& s) -> Status {
      const auto& [p, t] = list[i];
      if (!s.ok() && s.error().code() != ErrorCode::kNotFound) return Error(s.error()).context(what);
      changed(p);
      if (t == EntryType::kDir) {
        st_.dirs.erase(p);
        touched_.erase(p);
        ++stats_.dirs_removed;
      } else {
        erase(p);
        ++stats_.deletes;
      }
      touch(path_parent(p));
      return {};
    };
    // Files (in parallel), then directories deepest first (in order).
    MS_CHECK(apply_parallel(files, done));
    size_t nf = files.size();
    return apply(dirs, [&](size_t i, const Status& s) { return done(nf + i, s); });
  }

  Status run_dir_attrs(const std::vector<TreePlan::Dir>& dirs) {
    std::vector<TreeOp> ops;
    std::vector<size_t> idx;
    for (size_t i = 0; i < dirs.size(); ++i) {
      auto it = st_.dirs.find(dirs[i].path);
      if (it == st_.dirs.end()) continue;
      const FileAttrs& have = it->second.attrs;
      if (same_kept_attrs(have, dirs[i].attrs) && !touched_.count(dirs[i].path)) continue;
      TreeOp op;
      op.kind = TreeOp::Kind::kSetAttrs;
      op.path = D(dirs[i].path);
      op.attrs = dirs[i].attrs;
      op.attr_mask = TreeOp::kAllAttrs;
      ops.push_back(std::move(op));
      idx.push_back(i);
    }
    return apply(ops, [&](size_t k, const Status& s) -> Status {
      if (!s.ok()) return Error(s.error()).context("directory attributes");
      st_.dirs[dirs[idx[k]].path].attrs = dirs[idx[k]].attrs;
      changed(dirs[idx[k]].path);
      return {};
    });
  }

  // Makes every namespace change of the pass durable before it returns:
  // one syncfs (one journal commit) with syncfs durability, else an fsync of
  // every directory touched.
  Status run_sync_dirs() {
    std::vector<TreeOp> ops;
    std::set<std::string> dirs;
    for (const auto& d : touched_)
      if (st_.dirs.count(d)) dirs.insert(D(d));
    for (const auto& p : parents_created_) dirs.insert(p);
    if (dirs.empty()) return {};
    if (wopts_.durability == Durability::kSyncfs && st_.dirs.count("")) {
      TreeOp op;
      op.kind = TreeOp::Kind::kSyncFs;
      op.path = e_.dst_home_;
      ops.push_back(std::move(op));
      dirs.clear();
    }
    for (const auto& d : dirs) {
      TreeOp op;
      op.kind = TreeOp::Kind::kSyncDir;
      op.path = d;
      ops.push_back(std::move(op));
    }
    return apply(ops, [&](size_t i, const Status& s) -> Status {
      if (!s.ok() && s.error().code() != ErrorCode::kNotFound) return Error(s.error()).context("fsync directory");
      return {};
    });
  }

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
};

Result<PassStats> SyncEngine::warm_pass(SyncState& state, bool audit) {
  PassRunner r(*this, state, PassKind::kWarm, audit);
  return r.run().context("warm pass");
}

Result<PassStats> SyncEngine::final_pass(SyncState& state) {
  PassRunner r(*this, state, PassKind::kFrozen, false);
  return r.run().context("final pass");
}

Result<PassStats> SyncEngine::metadata_pass(SyncState& state) {
  PassRunner r(*this, state, PassKind::kMetadata, false);
  return r.run().context("metadata pass");
}

Result<std::vector<CopyOutcome>> SyncEngine::copy_batch(std::vector<CopySpec> specs, const WriterOptions& options) {
  if (!options_.direct_from) return copy_files(src_, dst_, std::move(specs), options);
  WriterOptions remote = options;
  remote.throttle = nullptr;
  auto out = dst_.pull(*options_.direct_from, std::move(specs), remote);
  if (!out.ok()) return std::move(out).error().context(fmt::format("{} pulling from {}", dst_.describe(), options_.direct_from->name));
  if (options.throttle) {
    int64_t body = 0;
    for (const auto& o : *out)
      if (o.written) body += o.result.body_bytes;
    options.throttle->consume(body);
  }
  return out;
}

}  // namespace mailshard
