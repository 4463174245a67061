// SyncEngine::verify_frozen_copy: the destination against the state the
// frozen pass left, and the source's drift since then (see sync_engine.h).
#include <algorithm>
#include <chrono>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "movers/maildir_rules.h"
#include "movers/sync_engine.h"
#include "movers/tree_diff.h"
#include "util/strings.h"

namespace mailshard {

namespace {
std::string_view last_of(const std::string& p) { return std::string_view(p).substr(p.rfind('/') + 1); }
}  // namespace

Result<VerifyReport> SyncEngine::verify_frozen_copy(const SyncState& state, std::optional<TreeListing>* source_now) {
  auto t0 = std::chrono::steady_clock::now();
  VerifyReport rep;
  std::vector<std::string>& bad = rep.mismatches;
  // The destination is listed only when the state cannot say what the last
  // pass changed there (a state read back from the journal); otherwise the
  // names that pass changed are checked one by one: everything else on the
  // destination is what earlier passes wrote and verified, and no one else
  // writes to the staging copy.
  const bool list_dst = !state.last_changes_known;
  // The source is listed and diffed against the state in a thread of its own.
  Result<TreeListing> sl = Error::internal("unset"), dl = Error::internal("unset");
  TreePlan d, s;
  // Dovecot's index files on the source now, against the state: a change
  // since the pass copied them means a write raced the copy.
  Result<std::vector<StatResult>> index_now = std::vector<StatResult>{};
  std::vector<std::pair<std::string, const EntryState*>> index_files;  // dir, state entry
  for (const auto& [dpath, ds] : state.dirs)
    for (const auto& [name, e] : ds.entries)
      if (e.type == EntryType::kFile && std::string_view(name).substr(0, 13) == "dovecot.index")
        index_files.emplace_back(join_path(dpath, name), &e);
  std::thread src_thread([&] {
    sl = list_source();
    if (sl.ok()) s = diff_tree(*sl, state, nullptr);
    if (!index_files.empty()) {
      std::vector<StatRequest> q;
      for (const auto& [p, e] : index_files) q.push_back({join_path(src_home_, p), {}});
      index_now = src_.stat(q);
    }
  });
  struct JoinOnExit {
    std::thread& t;
    ~JoinOnExit() {
      if (t.joinable()) t.join();
    }
  } join_on_exit{src_thread};

  std::unordered_map<std::string, Hash128> written(state.last_written.begin(), state.last_written.end());
  auto state_entry = [&](const std::string& p) -> const EntryState* {
    auto slash = p.rfind('/');
    auto dir = state.dirs.find(slash == std::string::npos ? std::string() : p.substr(0, slash));
    if (dir == state.dirs.end()) return nullptr;
    auto it = dir->second.entries.find(slash == std::string::npos ? p : p.substr(slash + 1));
    return it == dir->second.entries.end() ? nullptr : &it->second;
  };

  // 1. Names and types on the destination are exactly the state's.
  if (list_dst) {
    dl = dst_.list_tree(dst_home_);
    if (!dl.ok()) return std::move(dl).error().context("verify: list destination " + dst_.describe());
    d = diff_tree(*dl, state, nullptr);
    rep.entries_compared = static_cast<int64_t>(d.entries);
    for (const auto& m : d.mkdirs) bad.push_back(fmt::format("extra directory on the destination: '{}'", printable(m.path)));
    for (const auto& [from, to] : d.renames)
      bad.push_back(fmt::format("'{}' is named '{}' on the destination", printable(from), printable(to)));
    for (const auto& e : d.new_entries) bad.push_back(fmt::format("extra on the destination: '{}'", printable(e.path)));
    for (const auto& [p, t] : d.early_deletes) bad.push_back(fmt::format("'{}' changed type on the destination", printable(p)));
    for (const auto& [p, t] : d.deletes) bad.push_back(fmt::format("missing on the destination: '{}'", printable(p)));
  }

  // 2. Attributes of everything but messages, and content hashes of what the
  //    last pass wrote and of every uidlist, against what was recorded. Without
  //    a listing also: every name the last pass changed (it is there as the
  //    state says, or it is gone), and every directory of the state.
  std::vector<StatRequest> req;
  std::vector<const EntryState*> want;  // nullptr: must not exist
  std::vector<std::string> paths;
  std::unordered_set<std::string> asked;
  auto ask = [&](std::string p, const EntryState* e) {
    if (!asked.insert(p).second) return;
    bool hash = e && e->type == EntryType::kFile && (written.count(p) > 0 || (is_uid_list(last_of(p)) && e->has_hash));
    req.push_back({join_path(dst_home_, p), HashSpec{hash, -1}});
    want.push_back(e);
    paths.push_back(std::move(p));
  };
  for (const auto& [dpath, ds] : state.dirs) {
    std::string_view last = std::string_view(dpath).substr(dpath.rfind('/') + 1);
    bool message_dir = last == "cur" || last == "new";
    // Without a listing, what the last pass did in cur/ and new/ is in
    // last_written and last_changed (below): the 100k entries of a big
    // mailbox are not walked.
    if (message_dir && !list_dst) continue;
    for (const auto& [name, e] : ds.entries) {
      // Messages are immutable and were verified when copied; their names
      // carry size and flags. Those the last pass wrote or linked are below.
      if (message_dir && e.type == EntryType::kFile) continue;
      ask(join_path(dpath, name), &e);
    }
  }
  for (const auto& [p, h] : state.last_written) ask(p, state_entry(p));
  std::vector<std::string> dir_paths;
  if (!list_dst) {
    for (const auto& p : state.last_changed)
      if (!state.dirs.count(p)) ask(p, state_entry(p));
    for (const auto& [dpath, ds] : state.dirs) {
      dir_paths.push_back(dpath);
      req.push_back({join_path(dst_home_, dpath), {}});
    }
  }
  auto res = dst_.stat(req);
  if (!res.ok()) return std::move(res).error().context("verify: stat destination");
  for (size_t i = 0; i < paths.size(); ++i) {
    const StatResult& r = (*res)[i];
    const EntryState* ep = want[i];
    if (!ep) {  // changed by the last pass and not in the state: removed
      if (!r.error) bad.push_back(fmt::format("extra on the destination: '{}'", printable(paths[i])));
      else if (r.error->code() != ErrorCode::kNotFound)
        bad.push_back(fmt::format("'{}': {}", printable(paths[i]), r.error->message()));
      continue;
    }
    if (r.error) {
      if (r.error->code() != ErrorCode::kNotFound) bad.push_back(fmt::format("'{}': {}", printable(paths[i]), r.error->message()));
      else if (!list_dst) bad.push_back(fmt::format("missing on the destination: '{}'", printable(paths[i])));
      continue;  // (with a listing, missing ones are reported above)
    }
    const EntryState& e = *ep;
    std::vector<std::string> diffs;
    const FileAttrs &x = e.attrs, &y = r.attrs;
    if (y.type != e.type) diffs.push_back("type");
    if (x.mode != y.mode) diffs.push_back(fmt::format("mode {:o} != {:o}", x.mode, y.mode));
    if (x.uid != y.uid || x.gid != y.gid) diffs.push_back(fmt::format("owner {}:{} != {}:{}", x.uid, x.gid, y.uid, y.gid));
    if (e.type != EntryType::kSymlink && x.mtime_ns != y.mtime_ns)
      diffs.push_back(fmt::format("mtime {} != {}", x.mtime_ns, y.mtime_ns));
    if (e.type == EntryType::kFile && x.size != y.size) diffs.push_back(fmt::format("size {} != {}", x.size, y.size));
    if (e.type == EntryType::kSymlink && e.link_target != r.link_target)
      diffs.push_back(fmt::format("symlink target '{}' != '{}'", printable(e.link_target), printable(r.link_target)));
    if (r.hash) {
      ++rep.files_hashed;
      if (is_uid_list(last_of(paths[i]))) ++rep.uidlists_checked;
      auto w = written.find(paths[i]);
      const Hash128& expect = w != written.end() ? w->second : e.hash;
      if (!(expect == *r.hash)) diffs.push_back("content hash differs from the copied source");
    }
    if (!diffs.empty()) bad.push_back(fmt::format("'{}' differs: {}", printable(paths[i]), join(diffs, ", ")));
  }
  for (size_t k = 0; k < dir_paths.size(); ++k) {
    const StatResult& r = (*res)[paths.size() + k];
    if (r.error && r.error->code() == ErrorCode::kNotFound)
      bad.push_back(fmt::format("directory missing on the destination: '{}'", printable(dir_paths[k])));
    else if (r.error)
      bad.push_back(fmt::format("'{}': {}", printable(dir_paths[k]), r.error->message()));
    else if (r.attrs.type != EntryType::kDir)
      bad.push_back(fmt::format("'{}' is not a directory on the destination", printable(dir_paths[k])));
  }
  if (!list_dst) rep.entries_compared = static_cast<int64_t>(req.size());

  src_thread.join();
  if (!sl.ok()) return std::move(sl).error().context("verify: list source " + src_.describe());

  // 3. The source since the pass: only new messages (late deliveries) are
  //    fine, and Dovecot's index files changing: noted (the caller drops the
  //    copy's cache there), since a freeze an MTA ignores cannot stop them.
  if (!index_now.ok()) return std::move(index_now).error().context("verify: stat source " + src_.describe());
  for (size_t i = 0; i < index_files.size() && i < index_now->size(); ++i) {
    const StatResult& r = (*index_now)[i];
    const FileAttrs& was = index_files[i].second->attrs;
    const bool changed = r.error ? r.error->code() == ErrorCode::kNotFound
                                 : r.attrs.size != was.size || r.attrs.mtime_ns != was.mtime_ns;
    if (r.error && r.error->code() != ErrorCode::kNotFound)
      bad.push_back(fmt::format("'{}' on the source: {}", printable(index_files[i].first), r.error->message()));
    const std::string dir = path_parent(index_files[i].first);
    if (changed && std::find(rep.changed_index_dirs.begin(), rep.changed_index_dirs.end(), dir) ==
                       rep.changed_index_dirs.end())
      rep.changed_index_dirs.push_back(dir);
  }
  for (const auto& [from, to] : s.renames)
    bad.push_back(fmt::format("'{}' was renamed to '{}' on the source after the final pass (a flag change during "
                              "the freeze)",
                              printable(from), printable(to)));
  for (const auto& [p, t] : s.deletes)
    if (t != EntryType::kDir)
      bad.push_back(fmt::format("'{}' was removed on the source after the final pass (an expunge during the freeze)",
                                printable(p)));

  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!bad.empty()) {
    std::vector<std::string> first(bad.begin(), bad.begin() + static_cast<ptrdiff_t>(std::min<size_t>(bad.size(), 10)));
    return Error::verify_failed(fmt::format("verify {} -> {}: {} difference{}: {}{}", src_.describe(), dst_.describe(),
                                            bad.size(), bad.size() == 1 ? "" : "s", join(first, "; "),
                                            bad.size() > first.size() ? "; ..." : ""));
  }
  if (source_now && options_.only_entry.empty()) *source_now = std::move(*sl);
  return rep;
}

}  // namespace mailshard
