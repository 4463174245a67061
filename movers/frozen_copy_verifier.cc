// SyncEngine::verify_frozen_copy: the destination against the state the
// frozen pass left, and the source's drift since then (see sync_engine.h).
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "movers/maildir_rules.h"
#include "movers/sync_engine.h"
#include "movers/tree_diff.h"
#include "util/strings.h"

namespace mailshard {

Result<VerifyReport> SyncEngine::verify_frozen_copy(const SyncState& state) {
  auto t0 = std::chrono::steady_clock::now();
  VerifyReport rep;
  std::vector<std::string>& bad = rep.mismatches;
  // Each side is listed and diffed against the state in its own thread.
  Result<TreeListing> sl = Error::internal("unset"), dl = Error::internal("unset");
  TreePlan d, s;
  {
    std::thread t([&] {
      dl = dst_.list_tree(dst_home_);
      if (dl.ok()) d = diff_tree(*dl, state, nullptr);
    });
    sl = src_.list_tree(src_home_);
    if (sl.ok()) s = diff_tree(*sl, state, nullptr);
    t.join();
  }
  if (!sl.ok()) return std::move(sl).error().context("verify: list source " + src_.describe());
  if (!dl.ok()) return std::move(dl).error().context("verify: list destination " + dst_.describe());

  // 1. Names and types on the destination are exactly the state's.
  rep.entries_compared = static_cast<int64_t>(d.entries);
  for (const auto& m : d.mkdirs) bad.push_back(fmt::format("extra directory on the destination: '{}'", printable(m.path)));
  for (const auto& [from, to] : d.renames)
    bad.push_back(fmt::format("'{}' is named '{}' on the destination", printable(from), printable(to)));
  for (const auto& e : d.new_entries) bad.push_back(fmt::format("extra on the destination: '{}'", printable(e.path)));
  for (const auto& [p, t] : d.early_deletes) bad.push_back(fmt::format("'{}' changed type on the destination", printable(p)));
  for (const auto& [p, t] : d.deletes) bad.push_back(fmt::format("missing on the destination: '{}'", printable(p)));

  // 2. Attributes of everything but messages, and content hashes of what the
  //    last pass wrote and of every uidlist, against what was recorded.
  std::unordered_map<std::string, Hash128> written(state.last_written.begin(), state.last_written.end());
  std::vector<StatRequest> req;
  std::vector<const EntryState*> want;
  std::vector<std::string> paths;
  for (const auto& [dpath, ds] : state.dirs) {
    for (const auto& [name, e] : ds.entries) {
      std::string p = join_path(dpath, name);
      bool hash = written.count(p) > 0 || (is_uid_list(name) && e.has_hash);
      std::string_view last = std::string_view(dpath).substr(dpath.rfind('/') + 1);
      bool message = e.type == EntryType::kFile && (last == "cur" || last == "new");
      if (message && !hash) continue;  // immutable and verified when copied; its name carries size and flags
      req.push_back({join_path(dst_home_, p), HashSpec{hash, -1}});
      want.push_back(&e);
      paths.push_back(std::move(p));
    }
  }
  auto res = dst_.stat(req);
  if (!res.ok()) return std::move(res).error().context("verify: stat destination");
  for (size_t i = 0; i < req.size(); ++i) {
    const StatResult& r = (*res)[i];
    const EntryState& e = *want[i];
    if (r.error) {
      if (r.error->code() != ErrorCode::kNotFound)  // missing ones are reported above
        bad.push_back(fmt::format("'{}': {}", printable(paths[i]), r.error->message()));
      continue;
    }
    std::vector<std::string> diffs;
    const FileAttrs &x = e.attrs, &y = r.attrs;
    if (x.mode != y.mode) diffs.push_back(fmt::format("mode {:o} != {:o}", x.mode, y.mode));
    if (x.uid != y.uid || x.gid != y.gid) diffs.push_back(fmt::format("owner {}:{} != {}:{}", x.uid, x.gid, y.uid, y.gid));
    if (e.type != EntryType::kSymlink && x.mtime_ns != y.mtime_ns)
      diffs.push_back(fmt::format("mtime {} != {}", x.mtime_ns, y.mtime_ns));
    if (e.type == EntryType::kFile && x.size != y.size) diffs.push_back(fmt::format("size {} != {}", x.size, y.size));
    if (e.type == EntryType::kSymlink && e.link_target != r.link_target)
      diffs.push_back(fmt::format("symlink target '{}' != '{}'", printable(e.link_target), printable(r.link_target)));
    if (r.hash) {
      ++rep.files_hashed;
      if (is_uid_list(paths[i].substr(paths[i].rfind('/') + 1))) ++rep.uidlists_checked;
      auto w = written.find(paths[i]);
      const Hash128& expect = w != written.end() ? w->second : e.hash;
      if (!(expect == *r.hash)) diffs.push_back("content hash differs from the copied source");
    }
    if (!diffs.empty()) bad.push_back(fmt::format("'{}' differs: {}", printable(paths[i]), join(diffs, ", ")));
  }

  // 3. The source since the pass: only new messages (late deliveries) are fine.
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
  return rep;
}

}  // namespace mailshard
