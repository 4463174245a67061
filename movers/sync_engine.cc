// SyncEngine: its passes (each run by a PassRunner, movers/sync_pass.h), its
// reports, the copy of one batch of files (through this process or pulled by
// the destination), and the pass's work on new files: stat of the new names,
// their copies through parallel streams, and the audit.
#include "movers/sync_engine.h"

#include <algorithm>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "movers/stream_pool.h"
#include "movers/sync_pass.h"

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

Result<TreeListing> SyncEngine::list_source() {
  if (options_.only_entry.empty()) return src_.list_tree(src_home_);
  const std::string file = join_path(src_home_, options_.only_entry);
  auto st = MS_TRY(src_.stat({{src_home_, {}}, {file, {}}}));
  if (st.size() != 2) return Error::internal("stat answered for the wrong number of paths");
  if (st[0].error) return *st[0].error;
  DirListing home;
  home.attrs = st[0].attrs;
  if (!st[1].error) {
    if (st[1].attrs.type != EntryType::kFile)
      return Error::invalid(fmt::format("'{}' on {} is not a regular file", printable(file), src_.describe()));
    home.entries.push_back({options_.only_entry, EntryType::kFile});
  } else if (st[1].error->code() != ErrorCode::kNotFound) {
    return *st[1].error;
  }
  return TreeListing{std::move(home)};
}

// lstat of the new names; sorts them into copies, hard links, symlinks and metadata.
Status PassRunner::stat_new(std::vector<TreePlan::Entry>& fresh, std::vector<CopyJob>& copies,
                            std::vector<LinkJob>& links, std::vector<MetaItem>& meta,
                            std::vector<std::string>& symlinks) {
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
  auto res = MS_TRY(stat_source(rq).context("stat source " + e_.src_.describe()));
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
    if (e_.options_.leave_out && e_.options_.leave_out(rel, r.attrs)) continue;
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
Status PassRunner::copy_round(std::vector<CopyJob>& jobs) {
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

Status PassRunner::run_copies(std::vector<CopyJob>& jobs) {
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

// lstat + hash of every kept file on both sides; content drift is copied
// again, attribute drift fixed.
Status PassRunner::run_audit(const std::vector<std::string>& kept, std::vector<CopyJob>& copies) {
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
