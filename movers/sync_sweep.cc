// The sweep: mail that reached the old home after the final pass (an MTA
// that ignores the freeze, a session that raced it), listed against the
// final pass's state and delivered into the same folder on the destination
// with its flags, keywords (translated by name) and INTERNALDATE.
#include <string_view>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "movers/maildir_rules.h"
#include "movers/sync_engine.h"
#include "movers/tree_diff.h"
#include "util/strings.h"

namespace mailshard {

Result<std::vector<std::string>> SyncEngine::late_deliveries(const SyncState& state) {
  TreeListing src = MS_TRY(list_source().context("list source " + src_.describe()));
  ListingIndex idx = index_listing(src);
  std::vector<std::string> out;
  for (size_t i = 0; i < src.size(); ++i) {
    if (idx.skipped[i] || !idx.info[i].maildir_sub) continue;
    std::string folder = path_parent(src[i].path);
    std::unordered_set<std::string_view> known;
    for (const char* sub : {"cur", "new"}) {
      auto it = state.dirs.find(join_path(folder, sub));
      if (it == state.dirs.end()) continue;
      for (const auto& [name, _] : it->second.entries) known.insert(message_base(name));
    }
    for (const auto& e : src[i].entries)
      if (e.type == EntryType::kFile && !is_skipped_name(e.name) && !known.count(message_base(e.name)))
        out.push_back(join_path(src[i].path, e.name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<const SyncEngine::FolderKeywords*> SyncEngine::folder_keywords(const std::string& folder,
                                                                     const std::string& dst_folder) {
  auto it = keywords_.find(folder);
  if (it != keywords_.end()) return &it->second;
  // A keywords file holds at most 26 short lines; Dovecot keeps keyword
  // names under 255 bytes, so this reads any real one whole.
  constexpr uint32_t kKeywordsFileMax = 64 * 1024;
  FolderKeywords fk;
  auto read = [&](Transport& t, const std::string& home, const std::string& dir,
                  std::unique_ptr<KeywordTable>& out) -> Status {
    std::string path = join_path(home, join_path(dir, "dovecot-keywords"));
    auto heads = MS_TRY(t.head({path}, kKeywordsFileMax).context(t.describe()));
    if (heads.size() != 1) return Error::internal("head() returned no result");
    if (!heads[0].ok()) {
      // No table: the folder's keyword letters are dropped. An unreadable
      // keywords file must not hold the late mail itself back.
      if (heads[0].error().code() != ErrorCode::kNotFound)
        spdlog::warn("sweep: cannot read '{}' on {} ({}); late mail in that folder keeps its flags but not its "
                     "keywords",
                     printable(path), t.describe(), heads[0].error().message());
      return {};
    }
    out = std::make_unique<KeywordTable>(parse_keywords_file(*heads[0]));
    return {};
  };
  MS_CHECK(read(src_, src_home_, folder, fk.src));
  MS_CHECK(read(dst_, dst_home_, dst_folder, fk.dst));
  return &keywords_.emplace(folder, std::move(fk)).first->second;
}

// A folder made on the source after the final pass (a sieve `fileinto
// :create` on the old server, an MTA's plus-address folder) is not on the
// destination: make it there as Maildir++ has it (the folder with cur/, new/
// and tmp/; Dovecot lists such a folder by itself), each directory with the
// source's owner and mode. Existing directories are left alone.
Status SyncEngine::ensure_late_folder(const std::string& src_folder, const std::string& dst_folder) {
  // (source directory, destination directory), relative to the homes, parents
  // first. A nested destination name (Dovecot's LAYOUT=fs after a Courier
  // conversion: ".A.B" is "A/B") may lack its parents, which get the
  // folder's owner and mode.
  std::vector<std::pair<std::string, std::string>> dirs;
  for (size_t slash = dst_folder.find('/'); slash != std::string::npos; slash = dst_folder.find('/', slash + 1))
    dirs.emplace_back(src_folder, dst_folder.substr(0, slash));
  if (!dst_folder.empty()) dirs.emplace_back(src_folder, dst_folder);
  for (const char* sub : {"cur", "new", "tmp"}) dirs.emplace_back(join_path(src_folder, sub), join_path(dst_folder, sub));
  std::vector<StatRequest> probe;
  for (const auto& d : dirs) probe.push_back({join_path(dst_home_, d.second), {}});
  auto have = MS_TRY(dst_.stat(probe).context("destination " + dst_.describe()));
  std::vector<TreeOp> ops;
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (!have[i].error) continue;
    if (have[i].error->code() != ErrorCode::kNotFound)
      return Error(*have[i].error).context("destination " + dst_.describe());
    TreeOp op;
    op.kind = TreeOp::Kind::kMkdir;
    op.path = probe[i].path;
    auto src_attrs = MS_TRY(src_.stat({{join_path(src_home_, dirs[i].first), {}}}));
    if (!src_attrs[0].error) {
      op.attrs = src_attrs[0].attrs;
      op.attr_mask = TreeOp::kOwner | TreeOp::kMode;
    }
    ops.push_back(std::move(op));
  }
  if (ops.empty()) return {};
  spdlog::info("sweep: making folder '{}' on {}: late mail arrived in it on the source after the final pass",
               printable(dst_folder), dst_.describe());
  auto res = MS_TRY(dst_.apply(ops).context("destination " + dst_.describe()));
  for (const auto& r : res)
    if (!r.ok()) return r.error();
  return {};
}

Result<SyncEngine::LateDelivery> SyncEngine::deliver_late(const std::string& src_rel) {
  MS_CHECK(check_relative_path(src_rel));
  std::string sub = path_parent(src_rel);
  std::string folder = path_parent(sub);
  if (path_last(sub) != "cur" && path_last(sub) != "new")
    return Error::invalid(fmt::format("'{}' is not a Maildir message (not in cur/ or new/)", printable(src_rel)));
  // On the destination the folder may have another name (a conversion
  // renamed it: set_dst_folder_namer); keywords are read on each side's own.
  const std::string src_folder = folder;
  if (dst_folder_namer_) folder = dst_folder_namer_(folder);
  const std::string name = path_last(src_rel);
  const std::string base(message_base(name));
  LateDelivery out;
  // Already there (an earlier sweep, the final pass got it after all, or
  // Dovecot moved an earlier sweep's copy to cur/ and changed its flags)?
  // Base names are unique ids, so this also keeps the copy below from
  // replacing any file the destination has.
  bool folder_incomplete = false;  // new/ or cur/ missing: the folder is made below
  for (const char* s : {"new", "cur"}) {
    std::string dir = join_path(folder, s);
    auto listing = dst_.list_tree(join_path(dst_home_, dir));
    if (!listing.ok()) {
      if (listing.error().code() == ErrorCode::kNotFound) {
        folder_incomplete = true;
        continue;
      }
      return std::move(listing).error().context("destination " + dst_.describe());
    }
    if (listing->empty()) continue;
    for (const auto& e : listing->front().entries)
      if (message_base(e.name) == base) {
        out.dst_rel = join_path(dir, e.name);
        out.already_there = true;
        return out;
      }
  }
  // Where it goes: new/ for a message as delivered (no flags part), cur/ with
  // its flags otherwise (Dovecot only ever reads flags from cur/ names).
  std::string dst_name = base;
  std::string dst_sub = "new";
  if (auto flags = message_flags(name)) {
    const FolderKeywords* kw = MS_TRY(folder_keywords(src_folder, folder));
    RemappedFlags f = remap_message_flags(*flags, kw->src.get(), kw->dst.get());
    out.dropped_keywords = std::move(f.dropped);
    dst_name = base + ":2," + f.flags;
    dst_sub = "cur";
  }
  out.dst_rel = join_path(join_path(folder, dst_sub), dst_name);
  if (folder_incomplete) MS_CHECK(ensure_late_folder(src_folder, folder));
  CopySpec c;
  c.read = ReadSpec(join_path(src_home_, src_rel));
  c.dst_path = join_path(dst_home_, out.dst_rel);  // with the source's owner, mode and mtime: the mtime is the INTERNALDATE
  std::vector<CopySpec> one;
  one.push_back(std::move(c));
  auto res = MS_TRY(copy_batch(std::move(one), WriterOptions{options_.durability, nullptr}));
  const CopyOutcome& o = res.at(0);
  if (o.read == ReadStatus::kVanished) return Error::not_found(fmt::format("'{}' vanished", printable(src_rel)));
  if (o.read != ReadStatus::kOk)
    return o.error ? Error(*o.error) : Error::invalid(fmt::format("'{}' is not a regular file", printable(src_rel)));
  if (!o.written || o.result.status != WriteStatus::kOk)
    return !o.result.error ? Error::conflict(fmt::format("'{}' changed while copied", printable(src_rel)))
                           : Error(*o.result.error);
  return out;
}

}  // namespace mailshard
