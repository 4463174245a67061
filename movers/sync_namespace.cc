// The namespace operations of a pass on the destination: its listing
// (reconcile), the home and new directories, renames (flag changes), hard
// links, symlinks, deletes, directory attributes, and the durability of all
// of them at the end of the pass.
#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "movers/sync_pass.h"

namespace mailshard {
namespace {

size_t depth(const std::string& p) {
  return p.empty() ? 0 : 1 + static_cast<size_t>(std::count(p.begin(), p.end(), '/'));
}

}  // namespace

// Destination listing: forget what the state believes but the destination
// lacks, remove stale temps, and collect what the state does not know.
Status PassRunner::reconcile_with_destination(DstExtras& extras) {
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
Status PassRunner::ensure_home(const TreePlan& plan) {
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

Status PassRunner::run_mkdirs(const std::vector<TreePlan::Dir>& dirs) {
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

Status PassRunner::run_renames(const std::vector<std::pair<std::string, std::string>>& renames,
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

Status PassRunner::find_metadata_renames(const std::vector<MetaItem>& meta,
                                         const std::vector<std::pair<std::string, EntryType>>& vanished) {
  // The vanished files by inode (a rename keeps it), and the new metadata
  // files in their directories. Keyed by inode so that a folder where Courier
  // renamed a thousand keyword files is a thousand lookups, not a million
  // comparisons.
  struct Gone {
    const std::string* path;
    const EntryState* es;
  };
  std::unordered_multimap<uint64_t, Gone> gone;
  std::unordered_set<std::string> gone_dirs;
  for (const auto& [path, type] : vanished) {
    const EntryState* es = type == EntryType::kFile ? entry(path) : nullptr;
    if (!es || es->type != EntryType::kFile || !es->has_hash) continue;
    gone.emplace(es->attrs.ino, Gone{&path, es});
    gone_dirs.insert(path_parent(path));
  }
  if (gone.empty()) return {};
  std::vector<size_t> cand;  // indexes into meta
  for (size_t i = 0; i < meta.size(); ++i)
    if (!meta[i].in_state && !meta[i].on_dst && gone_dirs.count(path_parent(meta[i].rel))) cand.push_back(i);
  if (cand.empty()) return {};
  std::vector<StatRequest> rq;
  rq.reserve(cand.size());
  for (size_t i : cand) rq.push_back({S(meta[i].rel), HashSpec{true, -1}});
  auto res = MS_TRY(stat_source(rq).context("stat source " + e_.src_.describe()));
  stats_.stat_calls += static_cast<int64_t>(rq.size());

  for (size_t k = 0; k < cand.size(); ++k) {
    const StatResult& r = res[k];
    if (r.error || r.attrs.type != EntryType::kFile || !r.hash) continue;  // the metadata step decides
    const std::string& rel = meta[cand[k]].rel;
    if (e_.options_.leave_out && e_.options_.leave_out(rel, r.attrs)) continue;
    const std::string dir = path_parent(rel);
    auto [lo, hi] = gone.equal_range(r.attrs.ino);
    for (auto it = lo; it != hi; ++it) {
      const auto& [from, es] = it->second;
      if (path_parent(*from) != dir || pending_renames_.count(*from) || es->attrs.size != r.attrs.size ||
          !same_kept_attrs(es->attrs, r.attrs) || !(es->hash == *r.hash))
        continue;
      pending_renames_.emplace(*from, PendingRename{rel, r.attrs});
      break;
    }
  }
  return {};
}

Status PassRunner::run_metadata_renames(std::vector<MetaItem>& meta) {
  if (pending_renames_.empty()) return {};
  std::vector<std::pair<std::string, const PendingRename*>> pairs;  // vanished name, its rename
  std::vector<std::pair<std::string, EntryType>> deletes;           // vanished names not renamed
  for (const auto& [from, p] : pending_renames_) {
    const EntryState* es = entry(from);
    if (linked_from_.count(from) || !es) deletes.emplace_back(from, EntryType::kFile);
    else pairs.emplace_back(from, &p);
  }
  std::sort(pairs.begin(), pairs.end());
  std::vector<TreeOp> ops;
  ops.reserve(pairs.size());
  for (const auto& [from, p] : pairs) {
    TreeOp op;
    op.kind = TreeOp::Kind::kRename;
    op.from = D(from);
    op.path = D(p->to);
    ops.push_back(std::move(op));
  }
  std::unordered_set<std::string> renamed_to;
  MS_CHECK(apply_parallel(ops, [&](size_t i, const Status& s) -> Status {
    const auto& [from, p] = pairs[i];
    if (!s.ok()) {
      // Gone on the destination: the new name is sent and the old one deleted as usual.
      if (s.error().code() != ErrorCode::kNotFound) return Error(s.error()).context("rename");
      deletes.emplace_back(from, EntryType::kFile);
      return {};
    }
    EntryState moved = *entry(from);
    moved.attrs = p->attrs;  // the rename changed the ctime
    erase(from);
    changed(from);
    changed(p->to);
    written_.emplace_back(p->to, moved.hash);  // verify re-hashes the destination's copy
    put(p->to, std::move(moved));
    renamed_to.insert(p->to);
    ++stats_.renames;
    touch(path_parent(p->to));
    return {};
  }));
  pending_renames_.clear();
  std::erase_if(meta, [&](const MetaItem& m) { return renamed_to.count(m.rel) > 0; });
  return run_deletes(std::move(deletes), "delete");
}

// Hard links. A link is made only to content this pass copied or
// verified: the source name is hashed now and must hash to what the link
// target holds (its hash recorded when it was copied), with the same inode
// it had when stat'ed. Otherwise (an inode freed and reused, a target
// copied without a hash, a target that is not there) the file is copied.
// Links go into the pass's written set, so verify() checks them too.
Status PassRunner::run_links(const std::vector<LinkJob>& links, bool retry) {
  if (links.empty()) return {};
  std::vector<StatRequest> rq;
  rq.reserve(links.size());
  for (const auto& l : links) rq.push_back({S(l.to), HashSpec{true, -1}});
  auto res = MS_TRY(stat_source(rq).context("hash source " + e_.src_.describe()));
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
Status PassRunner::run_symlinks(const std::vector<std::string>& paths) {
  if (paths.empty()) return {};
  std::vector<StatRequest> rq;
  for (const auto& p : paths) rq.push_back({S(p), {}});
  auto res = MS_TRY(stat_source(rq).context("stat source " + e_.src_.describe()));
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

// Unlinks files/symlinks, then removes directories deepest first.
Status PassRunner::run_deletes(std::vector<std::pair<std::string, EntryType>> list, const char* what) {
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

Status PassRunner::run_dir_attrs(const std::vector<TreePlan::Dir>& dirs) {
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
Status PassRunner::run_sync_dirs() {
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

}  // namespace mailshard
