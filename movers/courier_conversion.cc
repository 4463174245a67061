#include "movers/courier_conversion.h"

#include <algorithm>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "util/hash.h"
#include "util/strings.h"

namespace mailshard {

namespace {

// A metadata file is small (a 100k-message courierimapuiddb is ~5 MB); more
// than this is not a Courier file we understand.
constexpr int64_t kMaxMetadataBytes = 256ll << 20;

// Whole files; nullopt for one that does not exist (any more).
Result<std::vector<std::optional<std::string>>> read_files(Transport& t, const std::vector<std::string>& paths) {
  std::vector<std::optional<std::string>> out(paths.size());
  if (paths.empty()) return out;
  std::vector<ReadSpec> specs;
  for (const auto& p : paths) specs.emplace_back(p);
  auto reader = MS_TRY(t.open_reader(std::move(specs)));
  for (size_t i = 0; i < paths.size(); ++i) {
    auto item = MS_TRY(reader->next());
    if (item.status == ReadStatus::kVanished) continue;
    if (item.status != ReadStatus::kOk)
      return item.error ? Error(*item.error).context(printable(paths[i]))
                        : Error::invalid(fmt::format("{}: not a regular file", printable(paths[i])));
    std::string data;
    Chunk c;
    while (MS_TRY(item.file->next_chunk(c))) {
      if (static_cast<int64_t>(c.offset) != static_cast<int64_t>(data.size())) data.resize(c.offset, '\0');
      data.append(c.data, c.size);
      if (static_cast<int64_t>(data.size()) > kMaxMetadataBytes)
        return Error::corrupt(fmt::format("{}: larger than {}", printable(paths[i]), human_bytes(kMaxMetadataBytes)));
    }
    auto trailer = MS_TRY(item.file->finish());
    if (static_cast<int64_t>(data.size()) < trailer.size) data.resize(trailer.size, '\0');
    if (!trailer.stable) return Error::conflict(fmt::format("{} changed while it was read", printable(paths[i])));
    out[i] = std::move(data);
  }
  return out;
}

// A file body from memory, for the transports' writers.
class MemorySource final : public SourceFile {
 public:
  MemorySource(std::string data, FileAttrs attrs) : data_(std::move(data)), attrs_(attrs) {
    attrs_.type = EntryType::kFile;
    attrs_.size = static_cast<int64_t>(data_.size());
  }
  const FileAttrs& attrs() const override { return attrs_; }
  Result<bool> next_chunk(Chunk& out) override {
    if (sent_ || data_.empty()) return false;
    sent_ = true;
    out = {0, data_.data(), data_.size()};
    return true;
  }
  Result<SourceTrailer> finish() override {
    SourceTrailer t;
    t.hash = hash_bytes(data_);
    t.size = attrs_.size;
    return t;
  }

 private:
  std::string data_;
  FileAttrs attrs_;
  bool sent_ = false;
};

// Courier's own directories in a folder: its keyword files, and beside the
// INBOX's the hierarchy ACLs (ACLs of names that are no folder). No folder of
// Dovecot's; LAYOUT=fs would list them as folders.
std::vector<std::string> courier_own_dirs(bool inbox) {
  if (inbox) return {"courierimapkeywords", "courierimaphieracl"};
  return {"courierimapkeywords"};
}

bool is_folder_dir(const std::string& path) { return path.empty() || (path[0] == '.' && path.find('/') == std::string::npos); }

// Dovecot's files in a Courier folder come from a Dovecot that opened it (an
// LMTP delivery on the old server): they number the messages otherwise.
bool stray_dovecot_file(const std::string& name) {
  return starts_with(name, "dovecot.index") || starts_with(name, "dovecot.list.index") ||
         starts_with(name, "dovecot-uidvalidity") || name == "dovecot.mailbox.log" || name == "dovecot-uidlist" ||
         name == "dovecot-keywords";
}

struct FolderFiles {
  const DirListing* dir = nullptr;
  std::vector<std::string> cur, new_;
};

// The folders of a listing of a Maildir, by path: "" and ".name" (Courier,
// and Dovecot's Maildir++); with `nested` (Dovecot's LAYOUT=fs) any directory
// may be one ("A", "A/B").
std::map<std::string, FolderFiles> index_folders(const TreeListing& listing, bool nested = false) {
  std::map<std::string, FolderFiles> out;
  for (const auto& d : listing)
    if (nested || is_folder_dir(d.path)) out[d.path].dir = &d;
  for (const auto& d : listing) {
    auto slash = d.path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : d.path.substr(0, slash);
    std::string last = slash == std::string::npos ? d.path : d.path.substr(slash + 1);
    if (d.path.empty() || !(nested || is_folder_dir(parent)) || (last != "cur" && last != "new")) continue;
    auto it = out.find(parent);
    if (it == out.end()) continue;
    for (const auto& e : d.entries) {
      if (e.name.empty() || e.name[0] == '.' || e.type == EntryType::kDir) continue;
      (last == "cur" ? it->second.cur : it->second.new_).push_back(e.name);
    }
  }
  return out;
}

bool has_entry(const DirListing& d, const std::string& name) {
  for (const auto& e : d.entries)
    if (e.name == name) return true;
  return false;
}

}  // namespace

TreeListing sub_listing(TreeListing listing, const std::string& dir) {
  if (dir.empty()) return listing;
  TreeListing out;
  const std::string prefix = dir + "/";
  for (auto& d : listing) {
    if (d.path == dir) d.path.clear();
    else if (d.path.compare(0, prefix.size(), prefix) == 0) d.path.erase(0, prefix.size());
    else continue;
    out.push_back(std::move(d));
  }
  return out;
}

Result<CourierMailbox> read_courier_mailbox(Transport& t, const std::string& maildir, const std::string& label,
                                            std::optional<TreeListing> given) {
  CourierMailbox m;
  m.maildir = label;
  auto listing = given ? std::move(*given) : MS_TRY(t.list_tree(maildir).context(printable(maildir)));
  auto folders = index_folders(listing);
  std::vector<std::string> paths;
  struct Want {
    CourierFolder* folder;
    std::string keyword_name;  // "" = the uiddb, kAcl = courierimapacl (no file name has a '/')
  };
  static const std::string kAcl = "/acl";
  std::vector<Want> wants;
  bool subscribed = false;
  bool sizelist = false;  // courierpop3dsizelist: POP3 sees the INBOX only
  for (auto& [path, files] : folders) {
    const bool is_folder = path.empty() || has_entry(*files.dir, "cur");
    if (!is_folder) continue;
    CourierFolder f;
    f.dir = path;
    f.cur = std::move(files.cur);
    f.new_ = std::move(files.new_);
    m.folders.push_back(std::move(f));
  }
  // Directories that are no folder and not inside one's own directories.
  std::set<std::string> folder_dirs;
  for (const auto& f : m.folders) folder_dirs.insert(f.dir);
  for (const auto& d : listing) {
    if (d.path.empty() || folder_dirs.count(d.path)) continue;
    const auto slash = d.path.find('/');
    const std::string first = d.path.substr(0, slash);
    const std::string rest = slash == std::string::npos ? "" : d.path.substr(slash + 1);
    auto own = [](const std::string& name, bool inbox) {
      const std::string top = name.substr(0, name.find('/'));
      const auto courier = courier_own_dirs(inbox);
      return top == "cur" || top == "new" || top == "tmp" || std::find(courier.begin(), courier.end(), top) != courier.end();
    };
    if (folder_dirs.count(first) ? own(rest, false) : own(d.path, true)) continue;
    m.other_dirs.push_back(d.path);
  }
  for (auto& f : m.folders) {
    const DirListing& d = *folders.at(f.dir).dir;
    if (has_entry(d, "courierimapuiddb")) {
      paths.push_back(join_path(maildir, join_path(f.dir, "courierimapuiddb")));
      wants.push_back({&f, ""});
    }
    if (has_entry(d, "courierimapacl")) {
      paths.push_back(join_path(maildir, join_path(f.dir, "courierimapacl")));
      wants.push_back({&f, kAcl});
    }
    if (f.dir.empty() && has_entry(d, "courierimapsubscribed")) subscribed = true;
    if (f.dir.empty() && has_entry(d, "courierpop3dsizelist")) sizelist = true;
    for (const auto& kd : listing) {
      if (kd.path != join_path(f.dir, "courierimapkeywords")) continue;
      for (const auto& e : kd.entries) {
        if (e.type == EntryType::kDir) continue;
        // Courier's own temp files there start with '.' and end in a host name; a
        // ".<n>.<name>" update is what we want.
        if (e.name[0] == '.' && !(e.name.size() > 2 && e.name[1] >= '0' && e.name[1] <= '9')) continue;
        paths.push_back(join_path(maildir, join_path(kd.path, e.name)));
        wants.push_back({&f, e.name});
      }
    }
  }
  if (subscribed) paths.push_back(join_path(maildir, "courierimapsubscribed"));
  if (sizelist) paths.push_back(join_path(maildir, "courierpop3dsizelist"));
  auto contents = MS_TRY(read_files(t, paths));
  for (size_t i = 0; i < wants.size(); ++i) {
    if (!contents[i]) continue;  // gone meanwhile (an update merged into :list)
    if (wants[i].keyword_name.empty()) wants[i].folder->uiddb = std::move(*contents[i]);
    else if (wants[i].keyword_name == kAcl) wants[i].folder->acl = std::move(*contents[i]);
    else wants[i].folder->keyword_files[wants[i].keyword_name] = std::move(*contents[i]);
  }
  if (subscribed) m.subscribed = std::move(contents[wants.size()]);
  if (sizelist) m.pop3_sizelist = std::move(contents.back());  // nullopt if pop3d removed it meanwhile
  return m;
}

Result<ConversionStats> apply_conversion(Transport& dst, const std::string& maildir, const DovecotConversion& conv) {
  ConversionStats stats;
  auto listing = MS_TRY(dst.list_tree(maildir).context(printable(maildir)));
  auto folders = index_folders(listing, conv.layout.fs);
  // Applies `ops`; with `missing_ok`, a name an earlier run removed already
  // is no error (removals).
  auto run = [&](std::vector<TreeOp>& ops, const std::string& what, bool missing_ok = false) -> Status {
    if (ops.empty()) return {};
    auto res = MS_TRY(dst.apply(ops).context(what));
    for (size_t i = 0; i < res.size(); ++i)
      if (!res[i].ok() && !(missing_ok && res[i].error().code() == ErrorCode::kNotFound))
        return Error(res[i].error().code(), fmt::format("{} '{}': {}", what, printable(ops[i].path),
                                                        res[i].error().message()));
    ops.clear();
    return {};
  };
  std::vector<TreeOp> ops;
  auto sync_dir = [&](const std::string& rel) {
    TreeOp s;
    s.kind = TreeOp::Kind::kSyncDir;
    s.path = join_path(maildir, rel);
    ops.push_back(std::move(s));
  };

  // 1. Folders take their Dovecot names. With LAYOUT=fs a folder is a
  //    directory inside its parent's: the folders come parent first, and a
  //    parent that is no folder (Courier's ".A.B" without ".A") is made, as
  //    Dovecot makes it, a directory without cur/.
  std::map<std::string, const FolderFiles*> now;  // dst_dir -> what the copy holds there
  std::set<std::string> made;                     // directories this run made or renamed into place
  const FileAttrs& root_attrs = folders.count("") ? folders.at("").dir->attrs : FileAttrs{};
  auto make_parents = [&](const std::string& dst_dir) {
    for (size_t slash = dst_dir.find('/'); slash != std::string::npos; slash = dst_dir.find('/', slash + 1)) {
      const std::string parent = dst_dir.substr(0, slash);
      if (folders.count(parent) || !made.insert(parent).second) continue;
      TreeOp op;
      op.kind = TreeOp::Kind::kMkdir;
      op.path = join_path(maildir, parent);
      op.attrs = root_attrs;
      op.attrs.mode = 0700;
      op.attr_mask = TreeOp::kOwner | TreeOp::kMode;
      ops.push_back(std::move(op));
    }
  };
  for (const auto& f : conv.folders) {
    ++stats.folders;
    auto at_dst = folders.find(f.dst_dir);
    auto at_src = folders.find(f.src_dir);
    if (f.src_dir == f.dst_dir || at_dst != folders.end()) {
      if (f.src_dir != f.dst_dir && at_src != folders.end())
        return Error::conflict(fmt::format("{}: both {} and {} exist in the copy", printable(maildir),
                                           printable(f.src_dir), printable(f.dst_dir)));
      if (at_dst == folders.end())
        return Error::not_found(fmt::format("folder {} is not in the copy at {}", printable(f.src_dir), printable(maildir)));
      now[f.dst_dir] = &at_dst->second;
      continue;
    }
    if (at_src == folders.end())
      return Error::not_found(fmt::format("folder {} is not in the copy at {}", printable(f.src_dir), printable(maildir)));
    make_parents(f.dst_dir);
    TreeOp op;
    op.kind = TreeOp::Kind::kRename;
    op.from = join_path(maildir, f.src_dir);
    op.path = join_path(maildir, f.dst_dir);
    ops.push_back(std::move(op));
    made.insert(f.dst_dir);
    now[f.dst_dir] = &at_src->second;
    ++stats.folders_renamed;
  }
  if (!ops.empty()) {
    sync_dir("");
    for (const auto& d : made)
      if (auto slash = d.rfind('/'); slash != std::string::npos) sync_dir(d.substr(0, slash));
  }
  MS_CHECK(run(ops, "rename folder"));

  // 2. Messages with keywords take their letters.
  for (const auto& f : conv.folders) {
    const FolderFiles& files = *now.at(f.dst_dir);
    std::set<std::string, std::less<>> present;
    for (const auto& n : files.cur) present.insert("cur/" + n);
    for (const auto& n : files.new_) present.insert("new/" + n);
    bool touched = false;
    for (const auto& [from, to] : f.renames) {
      if (present.count(to)) continue;  // an earlier run did it
      if (!present.count(from))
        return Error::not_found(fmt::format("message {} is not in the copy's {}", printable(from),
                                            printable(join_path(maildir, f.dst_dir))));
      TreeOp op;
      op.kind = TreeOp::Kind::kRename;
      op.from = join_path(maildir, join_path(f.dst_dir, from));
      op.path = join_path(maildir, join_path(f.dst_dir, to));
      ops.push_back(std::move(op));
      ++stats.messages_renamed;
      touched = true;
    }
    if (touched) {
      sync_dir(join_path(f.dst_dir, "cur"));
      sync_dir(join_path(f.dst_dir, "new"));
    }
    if (ops.size() >= 4000) MS_CHECK(run(ops, "rename message"));
  }
  MS_CHECK(run(ops, "rename message"));

  // 3. Dovecot's metadata, written whole; stray Dovecot files removed.
  auto writer = MS_TRY(dst.open_writer(WriterOptions{Durability::kFsyncEach, nullptr}));
  std::vector<std::string> written;
  std::vector<std::unique_ptr<MemorySource>> sources;
  auto write = [&](const std::string& rel, const std::string& data, const FileAttrs& like) -> Status {
    FileAttrs a;
    a.uid = like.uid;
    a.gid = like.gid;
    a.mode = 0600;
    a.mtime_ns = like.mtime_ns;
    WriteSpec ws;
    ws.path = join_path(maildir, rel);
    ws.kind = WriteSpec::Kind::kNew;
    ws.attrs = a;
    sources.push_back(std::make_unique<MemorySource>(data, a));
    written.push_back(ws.path);
    return writer->write(ws, *sources.back());
  };
  for (const auto& f : conv.folders) {
    const DirListing& d = *now.at(f.dst_dir)->dir;
    for (const auto& e : d.entries) {
      if (e.type == EntryType::kDir || !stray_dovecot_file(e.name)) continue;
      if ((e.name == "dovecot-uidlist" && f.uidlist) || (e.name == "dovecot-keywords" && f.keywords)) continue;
      TreeOp op;
      op.kind = TreeOp::Kind::kUnlink;
      op.path = join_path(maildir, join_path(f.dst_dir, e.name));
      ops.push_back(std::move(op));
      ++stats.files_removed;
    }
    if (f.uidlist) MS_CHECK(write(join_path(f.dst_dir, "dovecot-uidlist"), *f.uidlist, d.attrs));
    if (f.keywords) MS_CHECK(write(join_path(f.dst_dir, "dovecot-keywords"), *f.keywords, d.attrs));
  }
  if (conv.subscriptions) MS_CHECK(write("subscriptions", *conv.subscriptions, now.at("")->dir->attrs));
  auto results = MS_TRY(writer->commit());
  for (size_t i = 0; i < results.size(); ++i)
    if (results[i].status != WriteStatus::kOk)
      return results[i].error ? Error(*results[i].error).context(fmt::format("write {}", printable(written[i])))
                              : Error::conflict(fmt::format("write {}: not published", printable(written[i])));
  stats.files_written = static_cast<int64_t>(results.size());
  if (!ops.empty()) {
    MS_CHECK(run(ops, "remove", /*missing_ok=*/true));
    for (const auto& f : conv.folders) sync_dir(f.dst_dir);
    MS_CHECK(run(ops, "sync"));
  }

  // 4. LAYOUT=fs lists every directory as a folder: Courier's own
  //    directories go, its keyword directories (what they held is in
  //    dovecot-keywords and the names now) and the INBOX's hierarchy ACLs
  //    (ACLs are not converted; preflight warned of the shares).
  if (conv.layout.fs) {
    std::map<std::string, const DirListing*> dirs;
    for (const auto& d : listing) dirs[d.path] = &d;
    std::vector<std::string> emptied;
    for (const auto& f : conv.folders) {
      for (const auto& name : courier_own_dirs(f.src_dir.empty())) {
        const std::string dst_dir = join_path(f.dst_dir, name);
        auto it = dirs.find(join_path(f.src_dir, name));
        if (it == dirs.end()) it = dirs.find(dst_dir);
        if (it == dirs.end()) continue;
        for (const auto& e : it->second->entries) {
          TreeOp op;
          op.kind = e.type == EntryType::kDir ? TreeOp::Kind::kRmdir : TreeOp::Kind::kUnlink;
          op.path = join_path(maildir, join_path(dst_dir, e.name));
          ops.push_back(std::move(op));
        }
        TreeOp rm;
        rm.kind = TreeOp::Kind::kRmdir;
        rm.path = join_path(maildir, dst_dir);
        ops.push_back(std::move(rm));
        emptied.push_back(f.dst_dir);
        stats.files_removed += static_cast<int64_t>(it->second->entries.size());
      }
    }
    if (!ops.empty()) {
      MS_CHECK(run(ops, "remove", /*missing_ok=*/true));
      for (const auto& d : emptied) sync_dir(d);
      MS_CHECK(run(ops, "sync"));
    }
  }
  return stats;
}

Result<int64_t> verify_conversion(const std::string& user, Transport& dst, const std::string& maildir,
                                  const DovecotConversion& conv) {
  auto listing = MS_TRY(dst.list_tree(maildir).context(printable(maildir)));
  auto folders = index_folders(listing, conv.layout.fs);
  std::vector<std::string> diffs;
  std::vector<std::string> paths;
  for (const auto& f : conv.folders) {
    paths.push_back(join_path(maildir, join_path(f.dst_dir, "dovecot-uidlist")));
    paths.push_back(join_path(maildir, join_path(f.dst_dir, "dovecot-keywords")));
  }
  paths.push_back(join_path(maildir, "subscriptions"));
  auto contents = MS_TRY(read_files(dst, paths));
  for (size_t i = 0; i < conv.folders.size(); ++i) {
    const auto& f = conv.folders[i];
    const std::string label = f.dst_dir.empty() ? "INBOX" : f.dst_dir;
    if (f.src_dir != f.dst_dir && folders.count(f.src_dir))
      diffs.push_back(fmt::format("{}: Courier's folder {} is still there", printable(label), printable(f.src_dir)));
    auto it = folders.find(f.dst_dir);
    if (it == folders.end()) {
      diffs.push_back(fmt::format("{}: missing", printable(label)));
      continue;
    }
    if (conv.layout.fs)
      for (const auto& name : courier_own_dirs(f.dst_dir.empty()))
        if (folders.count(join_path(f.dst_dir, name)))
          diffs.push_back(fmt::format("{}: Courier's {}/ is still there (LAYOUT=fs lists it as a folder)",
                                      printable(label), name));
    auto seen = dovecot_folder_view(user, join_path(maildir, f.dst_dir), contents[2 * i], contents[2 * i + 1],
                                    it->second.cur, it->second.new_);
    if (!seen.ok()) {
      diffs.push_back(seen.error().message());
      continue;
    }
    FolderView want = f.view;
    if (!f.uidlist) want.uidvalidity = want.next_uid = 0;  // no UID list: Dovecot numbers the folder, as Courier would
    for (auto& d : compare_folder_views(want, *seen)) diffs.push_back(fmt::format("{}: {}", printable(label), d));
  }
  if (conv.subscriptions) {
    const auto& text = contents.back();
    auto got = text ? dovecot_subscription_names(*text, conv.layout)
                    : Result<std::vector<std::string>>(std::vector<std::string>{});
    auto want = dovecot_subscription_names(*conv.subscriptions, conv.layout);
    if (!got.ok() || !want.ok() || *got != *want)
      diffs.push_back(fmt::format("subscriptions: {} instead of {}",
                                  got.ok() ? (got->empty() ? std::string("none") : join(*got, ", ")) : got.error().message(),
                                  want.ok() ? join(*want, ", ") : want.error().message()));
  }
  if (!diffs.empty())
    return Error::verify_failed(fmt::format("the converted copy differs from Courier's view: {}{}", diffs.front(),
                                            diffs.size() > 1 ? fmt::format(" (and {} more)", diffs.size() - 1) : ""));
  return static_cast<int64_t>(conv.folders.size());
}

Result<std::map<std::string, FolderView>> read_folder_views(const std::string& user, Transport& t,
                                                           const std::string& maildir, bool courier, bool nested) {
  Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::map<std::string, FolderView> out;
    Status st = [&]() -> Status {
      if (courier) {
        auto m = MS_TRY(read_courier_mailbox(t, maildir, maildir));
        for (const auto& f : m.folders) out[f.dir] = MS_TRY(courier_folder_view(user, maildir, f));
        return {};
      }
      auto listing = MS_TRY(t.list_tree(maildir).context(printable(maildir)));
      auto folders = index_folders(listing, nested);
      std::vector<std::string> dirs, paths;
      for (const auto& [path, files] : folders)
        if (path.empty() || has_entry(*files.dir, "cur")) {
          dirs.push_back(path);
          paths.push_back(join_path(maildir, join_path(path, "dovecot-uidlist")));
        }
      auto contents = MS_TRY(read_files(t, paths));
      for (size_t i = 0; i < dirs.size(); ++i) {
        const auto& files = folders[dirs[i]];
        out[dirs[i]] = MS_TRY(
            dovecot_folder_view(user, join_path(maildir, dirs[i]), contents[i], std::nullopt, files.cur, files.new_));
      }
      return {};
    }();
    if (st.ok()) return out;
    if (st.error().code() != ErrorCode::kConflict) return st.error();
    last = st;
  }
  return last.error();
}

std::vector<std::string> uid_changes(const FolderView& was, const FolderView& now, const std::set<std::string>& only,
                                     int64_t& checked, size_t max) {
  std::vector<std::string> out;
  auto add = [&](std::string s) {
    if (out.size() < max) out.push_back(std::move(s));
  };
  std::unordered_map<std::string, int64_t> uid_now;
  for (const auto& [uid, base] : now.uids) uid_now.emplace(base, uid);
  std::vector<std::string> moved;
  int64_t present = 0;
  for (const auto& [uid, base] : was.uids) {
    if (!only.count(base)) continue;
    auto it = uid_now.find(base);
    if (it == uid_now.end()) continue;
    ++present;
    if (it->second != uid) moved.push_back(fmt::format("{} has UID {}, was {}", printable(base), it->second, uid));
  }
  checked += present;
  // A folder deleted and made again has a new UIDVALIDITY and none of the
  // old messages: a client sees a new folder, nothing renumbered.
  if (present > 0 && was.uidvalidity != 0 && now.uidvalidity != was.uidvalidity)
    add(fmt::format("UIDVALIDITY {} became {}", was.uidvalidity, now.uidvalidity));
  for (auto& m : moved) add(std::move(m));
  return out;
}

std::map<std::string, std::string> converted_folder_paths(const std::string& maildir_rel, const DovecotConversion& conv) {
  std::map<std::string, std::string> out;
  for (const auto& f : conv.folders)
    if (f.src_dir != f.dst_dir) out[join_path(maildir_rel, f.src_dir)] = join_path(maildir_rel, f.dst_dir);
  return out;
}

std::function<std::string(const std::string&)> converted_folder_namer(const std::string& maildir_rel,
                                                                     const DovecotLayout& layout) {
  return [maildir_rel, layout](const std::string& folder) -> std::string {
    std::string name = folder;
    if (!maildir_rel.empty()) {
      if (!starts_with(folder, maildir_rel + "/")) return folder;
      name = folder.substr(maildir_rel.size() + 1);
    }
    if (!is_folder_dir(name) || name.empty()) return folder;
    auto dst = dovecot_folder_dir(name, layout);
    return dst.ok() ? join_path(maildir_rel, *dst) : folder;
  };
}

}  // namespace mailshard
