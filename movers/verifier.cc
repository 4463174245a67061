// SyncEngine::verify: is the destination a faithful copy of the source?
// Compared, cheapest first: the two readdir listings (names carry Maildir
// flags and S= sizes), the attributes of everything that is not a message
// (directories, metadata, symlinks), the uidlist headers (UIDVALIDITY, next
// UID, mailbox GUID), and the content hashes of every file the last pass
// wrote (kWritten) or of every file (kFull). Any difference is an error.
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

std::string_view type_name(EntryType t) {
  switch (t) {
    case EntryType::kFile: return "file";
    case EntryType::kDir: return "directory";
    case EntryType::kSymlink: return "symlink";
    default: return "other";
  }
}

// The header tokens that must survive a move: "3 V<uidvalidity> N<next> G<guid>"
// (Dovecot), "1 <uidvalidity> <next>" (Courier). Other tokens are ignored.
std::string uidlist_key(std::string_view head) {
  auto nl = head.find('\n');
  std::string_view line = head.substr(0, nl);
  auto toks = split(line, ' ');
  if (toks.empty()) return std::string(line);
  if (toks[0] == "1") return std::string(line);  // v1 / Courier: every field counts
  std::string key = toks[0];
  for (size_t i = 1; i < toks.size(); ++i)
    if (!toks[i].empty() && (toks[i][0] == 'V' || toks[i][0] == 'N' || toks[i][0] == 'G')) key += " " + toks[i];
  return key;
}

struct Side {
  TreeListing listing;
  ListingIndex idx;
  std::unordered_map<std::string, size_t> by_path;
};

}  // namespace

Result<VerifyReport> SyncEngine::verify(const SyncState& state, VerifyScope scope) {
  auto t0 = std::chrono::steady_clock::now();
  VerifyReport rep;
  std::vector<std::string>& bad = rep.mismatches;
  Side s, d;
  {
    Result<TreeListing> sl = Error::internal("unset"), dl = Error::internal("unset");
    std::thread t([&] { dl = dst_.list_tree(dst_home_); });
    sl = list_source();
    t.join();
    if (!sl.ok()) return std::move(sl).error().context("verify: list source " + src_.describe());
    if (!dl.ok()) return std::move(dl).error().context("verify: list destination " + dst_.describe());
    s.listing = std::move(*sl);
    d.listing = std::move(*dl);
  }
  for (Side* side : {&s, &d}) {
    side->idx = index_listing(side->listing);
    for (size_t i = 0; i < side->listing.size(); ++i) side->by_path.emplace(side->listing[i].path, i);
  }

  // 1. Names and types, both ways.
  std::vector<std::string> files;       // regular files present on both
  std::vector<std::string> attr_paths;  // non-message files, symlinks and directories to lstat
  std::vector<std::string> uidlists;
  std::unordered_set<std::string> message_files;
  for (size_t i = 0; i < s.listing.size(); ++i) {
    if (s.idx.skipped[i]) continue;
    const DirListing& sd = s.listing[i];
    auto di = d.by_path.find(sd.path);
    if (di == d.by_path.end()) {
      bad.push_back(fmt::format("directory missing on the destination: '{}'", printable(sd.path)));
      continue;
    }
    attr_paths.push_back(sd.path);
    if (s.idx.info[i].maildir_tmp) continue;
    const DirListing& dd = d.listing[di->second];
    std::unordered_map<std::string_view, EntryType> dnames;
    for (const auto& e : dd.entries)
      if (!is_skipped_name(e.name)) dnames.emplace(e.name, e.type);
    for (const auto& e : sd.entries) {
      if (is_skipped_name(e.name) || e.type == EntryType::kOther || e.type == EntryType::kUnknown) continue;
      ++rep.entries_compared;
      std::string path = join_path(sd.path, e.name);
      auto it = dnames.find(e.name);
      if (it == dnames.end()) {
        bad.push_back(fmt::format("missing on the destination: '{}'", printable(path)));
        continue;
      }
      if (it->second != e.type)
        bad.push_back(fmt::format("'{}' is a {} on the source and a {} on the destination", printable(path),
                                  type_name(e.type), type_name(it->second)));
      dnames.erase(it);
      if (e.type == EntryType::kDir) continue;
      if (e.type == EntryType::kFile) {
        files.push_back(path);
        if (s.idx.info[i].maildir_sub) {
          message_files.insert(path);
          continue;
        }
        if (is_uid_list(e.name)) uidlists.push_back(path);
      }
      attr_paths.push_back(path);
    }
    for (const auto& [name, type] : dnames)
      if (type != EntryType::kOther)
        bad.push_back(fmt::format("extra on the destination: '{}'", printable(join_path(sd.path, std::string(name)))));
  }
  for (size_t i = 0; i < d.listing.size(); ++i)
    if (!d.idx.skipped[i] && !s.by_path.count(d.listing[i].path))
      bad.push_back(fmt::format("extra directory on the destination: '{}'", printable(d.listing[i].path)));

  // 2. Attributes (+ content hashes where asked) on both sides.
  std::unordered_set<std::string> to_hash;
  if (scope == VerifyScope::kFull) {
    to_hash.insert(files.begin(), files.end());
  } else {
    std::unordered_set<std::string_view> present(files.begin(), files.end());
    for (const auto& [p, h] : state.last_written)
      if (present.count(p)) to_hash.insert(p);
  }
  for (const auto& p : files)  // (in listing order: the report is stable)
    if (message_files.count(p) && to_hash.count(p)) attr_paths.push_back(p);
  std::vector<StatRequest> sq, dq;
  for (const auto& p : attr_paths) {
    HashSpec h;
    h.whole = to_hash.count(p) > 0;
    sq.push_back({join_path(src_home_, p), h});
    dq.push_back({join_path(dst_home_, p), h});
  }
  Result<std::vector<StatResult>> sres = Error::internal("unset"), dres = Error::internal("unset");
  {
    std::thread t([&] { dres = dst_.stat(dq); });
    sres = src_.stat(sq);
    t.join();
  }
  if (!sres.ok()) return std::move(sres).error().context("verify: stat source");
  if (!dres.ok()) return std::move(dres).error().context("verify: stat destination");
  std::unordered_map<std::string, Hash128> recorded(state.last_written.begin(), state.last_written.end());
  for (size_t i = 0; i < attr_paths.size(); ++i) {
    const StatResult& a = (*sres)[i];
    const StatResult& b = (*dres)[i];
    const std::string& p = attr_paths[i];
    if (a.error || b.error) {
      const Error& e = a.error ? *a.error : *b.error;
      bad.push_back(fmt::format("'{}': {}", printable(p), e.message()));
      continue;
    }
    const FileAttrs &x = a.attrs, &y = b.attrs;
    std::vector<std::string> diffs;
    if (x.type != y.type) diffs.push_back("type");
    if (x.mode != y.mode) diffs.push_back(fmt::format("mode {:o} != {:o}", x.mode, y.mode));
    if (x.uid != y.uid || x.gid != y.gid) diffs.push_back(fmt::format("owner {}:{} != {}:{}", x.uid, x.gid, y.uid, y.gid));
    if (x.mtime_ns != y.mtime_ns) diffs.push_back(fmt::format("mtime {} != {}", x.mtime_ns, y.mtime_ns));
    if (x.type == EntryType::kFile && x.size != y.size) diffs.push_back(fmt::format("size {} != {}", x.size, y.size));
    // Links of the source file outside the home are not copied, so the copy
    // may have fewer; more would join names the source keeps apart. Which
    // names share a file is compared below.
    if (x.type == EntryType::kFile && y.nlink > x.nlink) diffs.push_back(fmt::format("links {} < {}", x.nlink, y.nlink));
    if (x.type == EntryType::kSymlink && a.link_target != b.link_target)
      diffs.push_back(fmt::format("symlink target '{}' != '{}'", printable(a.link_target), printable(b.link_target)));
    if (a.hash || b.hash) {
      ++rep.files_hashed;
      if (!a.hash || !b.hash || !(*a.hash == *b.hash)) diffs.push_back("content hash");
      auto r = recorded.find(p);
      if (r != recorded.end() && b.hash && !(r->second == *b.hash)) diffs.push_back("hash recorded at copy time");
    }
    if (!diffs.empty()) bad.push_back(fmt::format("'{}' differs: {}", printable(p), join(diffs, ", ")));
  }

  // Hard links: names that are one file on one side are one file on the
  // other (among the files compared: all of them for kFull).
  {
    std::unordered_map<uint64_t, uint64_t> s_to_d, d_to_s;
    std::unordered_map<uint64_t, const std::string*> s_first, d_first;
    for (size_t i = 0; i < attr_paths.size(); ++i) {
      const StatResult& a = (*sres)[i];
      const StatResult& b = (*dres)[i];
      if (a.error || b.error || a.attrs.type != EntryType::kFile || b.attrs.type != EntryType::kFile) continue;
      auto [si, s_new] = s_to_d.emplace(a.attrs.ino, b.attrs.ino);
      auto [di, d_new] = d_to_s.emplace(b.attrs.ino, a.attrs.ino);
      if (s_new) s_first.emplace(a.attrs.ino, &attr_paths[i]);
      if (d_new) d_first.emplace(b.attrs.ino, &attr_paths[i]);
      if (si->second != b.attrs.ino)
        bad.push_back(fmt::format("'{}' and '{}' are one file on the source but not on the destination",
                                  printable(*s_first[a.attrs.ino]), printable(attr_paths[i])));
      else if (di->second != a.attrs.ino)
        bad.push_back(fmt::format("'{}' and '{}' are one file on the destination but not on the source",
                                  printable(*d_first[b.attrs.ino]), printable(attr_paths[i])));
    }
  }

  // 3. uidlist headers: UIDVALIDITY, next UID, GUID.
  if (!uidlists.empty()) {
    std::vector<std::string> sp, dp;
    for (const auto& u : uidlists) {
      sp.push_back(join_path(src_home_, u));
      dp.push_back(join_path(dst_home_, u));
    }
    auto sh = MS_TRY(src_.head(sp, 4096).context("verify: read source uidlists"));
    auto dh = MS_TRY(dst_.head(dp, 4096).context("verify: read destination uidlists"));
    for (size_t i = 0; i < uidlists.size(); ++i) {
      ++rep.uidlists_checked;
      if (!sh[i].ok() || !dh[i].ok()) {
        bad.push_back(fmt::format("'{}': {}", printable(uidlists[i]),
                                  (!sh[i].ok() ? sh[i].error() : dh[i].error()).message()));
        continue;
      }
      std::string a = uidlist_key(*sh[i]), b = uidlist_key(*dh[i]);
      if (a != b)
        bad.push_back(fmt::format("uidlist header of '{}' differs: source '{}', destination '{}'",
                                  printable(uidlists[i]), printable(a), printable(b)));
    }
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!bad.empty()) {
    std::vector<std::string> first(bad.begin(), bad.begin() + static_cast<ptrdiff_t>(std::min<size_t>(bad.size(), 10)));
    return Error::verify_failed(fmt::format("verify {} -> {}: {} difference{}: {}{}", src_.describe(),
                                            dst_.describe(), bad.size(), bad.size() == 1 ? "" : "s",
                                            join(first, "; "), bad.size() > first.size() ? "; ..." : ""));
  }
  return rep;
}

}  // namespace mailshard
