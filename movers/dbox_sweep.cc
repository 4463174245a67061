// The sweep of an sdbox/mdbox user, with Dovecot's own tools: mail that
// reached the old server after the freeze (an MTA that ignores it) is found
// by the source's doveadm (UIDs at or above the UIDNEXT each mailbox had
// under the freeze, journaled by the flip), the source's trees are copied
// by the sync engine into a side directory on the destination that no
// Dovecot uses, and the destination's doveadm imports exactly those messages
// from it (flags, keywords and INTERNALDATE come along; they get new UIDs
// there, as new mail does). Files are never written under a running Dovecot.
//
// Idempotent: every imported message is journaled by mailbox and GUID
// ("dbox_swept") right after its import, and a message whose GUID is
// already in the destination mailbox above the frozen UIDNEXT (an import
// whose journal write was cut short) is not imported again.
#include <cctype>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/mail_location.h"
#include "movers/mail_format.h"
#include "movers/maildir_rules.h"
#include "movers/move_runner_internal.h"
#include "util/strings.h"

namespace mailshard {

namespace {

constexpr const char* kFrozenBlob = "dbox_frozen";
constexpr const char* kSweptBlob = "dbox_swept";
// The ctime (ns) after which the imports' files are checked for root's
// (give_back_to_tree_owner); "" once they were. Written before the imports.
constexpr const char* kOwnerCheckBlob = "dbox_import_owner_check";

// ':' is the separator of mail_location; a literal one is written "::".
std::string location_path(const std::string& p) {
  std::string out;
  for (char ch : p) out += ch == ':' ? std::string("::") : std::string(1, ch);
  return out;
}

// "3,5,7:9" for ascending UIDs.
std::string uid_set(const std::vector<int64_t>& uids) {
  std::string out;
  for (size_t i = 0; i < uids.size();) {
    size_t j = i;
    while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? std::to_string(uids[i]) : fmt::format("{}:{}", uids[i], uids[j]);
    i = j + 1;
  }
  return out;
}

std::string dbox_frozen_record(const std::vector<MailboxContents>& boxes) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& b : boxes)
    j.push_back({{"mailbox", b.status.mailbox}, {"uidvalidity", b.status.uidvalidity}, {"uidnext", b.status.uidnext}});
  return j.dump();
}

// The mail storage files of `format` that a side copy may leave out when
// the move's last pass copied them and they have not changed since: the
// import reads the indexes and the late mail only, and late mail is in
// files that are new (sdbox u.*, a new mdbox m.*) or grew (the m.* or mbox
// folder it was appended to). Indexes and everything else are copied.
bool storage_file(MailFormat format, const std::string& rel) {
  const std::string name = path_last(rel);
  const std::string dir = path_last(path_parent(rel));
  switch (format) {
    case MailFormat::kSdbox: return (dir == "dbox-Mails" || dir == "dbox-alt-Mails") && starts_with(name, "u.");
    case MailFormat::kMdbox: return dir == "storage" && is_mdbox_storage_file(name);
    case MailFormat::kMbox: return !is_mbox_index_path(rel);
    default: return false;
  }
}

// Gives `path` the owner (uid and gid) of `owner`.
TreeOp owner_op(const std::string& path, const FileAttrs& owner) {
  TreeOp op;
  op.kind = TreeOp::Kind::kSetAttrs;
  op.path = path;
  op.attrs.uid = owner.uid;
  op.attrs.gid = owner.gid;
  op.attr_mask = TreeOp::kOwner;
  return op;
}

// The file `path` (an mbox spool INBOX), when root owns it and it changed at
// or after `since_ctime_ns`, gets the owner of the user's home `home`: its
// directory is every user's, and a doveadm import that created the file as
// root would leave the user's own Dovecot unable to write it. 1 if it did.
Result<int64_t> give_back_file_to_home_owner(Transport& t, const std::string& path, const std::string& home,
                                             int64_t since_ctime_ns) {
  auto st = MS_TRY(t.stat({{path, {}}, {home, {}}}));
  if (st[0].error) {
    if (st[0].error->code() == ErrorCode::kNotFound) return int64_t{0};
    return *st[0].error;
  }
  if (st[1].error) return *st[1].error;
  const FileAttrs& file = st[0].attrs;
  const FileAttrs& owner = st[1].attrs;
  if (file.type != EntryType::kFile || file.uid != 0 || owner.uid == 0 || file.ctime_ns < since_ctime_ns)
    return int64_t{0};
  auto res = MS_TRY(t.apply({owner_op(path, owner)}));
  if (!res[0].ok()) return res[0].error();
  return int64_t{1};
}

// Dovecot 2.3's doveadm server (root, dropping privileges per user) runs
// `import` with root's effective uid once it has opened the source
// location, so what the import creates in the user's trees (a rewritten
// dovecot.index, a new m.* or u.* file, a mailbox directory) is root's,
// mode 0600, and the user's own Dovecot can no longer open it: in the lab,
// LMTP answered 451 to every delivery after such a sweep. After the imports
// the entries of `root` owned by root that changed at or after
// `since_ctime_ns` (the side copy, made just before the imports) get the
// owner of the tree's top directory. Older root-owned entries are left.
Result<int64_t> give_back_to_tree_owner(Transport& t, const std::string& root, int64_t since_ctime_ns) {
  auto listing = t.list_tree(root);
  if (!listing.ok()) {
    if (listing.error().code() == ErrorCode::kNotFound) return int64_t{0};
    return std::move(listing).error();
  }
  if (listing->empty() || listing->front().attrs.uid == 0) return int64_t{0};  // a root-owned tree: nothing to give back
  const FileAttrs owner = listing->front().attrs;
  std::vector<TreeOp> ops;
  auto give = [&](const std::string& path) { ops.push_back(owner_op(path, owner)); };
  std::vector<StatRequest> files;
  for (const auto& d : *listing) {
    const std::string dir = join_path(root, d.path);
    if (!d.path.empty() && d.attrs.uid == 0 && d.attrs.ctime_ns >= since_ctime_ns) give(dir);
    for (const auto& e : d.entries)
      if (e.type != EntryType::kDir && e.type != EntryType::kSymlink) files.push_back({join_path(dir, e.name), {}});
  }
  for (size_t i = 0; i < files.size(); i += kOpsPerBatch) {
    std::vector<StatRequest> batch(files.begin() + static_cast<std::ptrdiff_t>(i),
                                   files.begin() + static_cast<std::ptrdiff_t>(std::min(files.size(), i + kOpsPerBatch)));
    auto st = MS_TRY(t.stat(batch));
    for (size_t k = 0; k < st.size(); ++k)
      if (!st[k].error && st[k].attrs.type == EntryType::kFile && st[k].attrs.uid == 0 &&
          st[k].attrs.ctime_ns >= since_ctime_ns)
        give(batch[k].path);
  }
  if (ops.empty()) return int64_t{0};
  auto res = MS_TRY(t.apply(ops));
  int64_t given = 0;
  for (size_t k = 0; k < res.size(); ++k) {
    if (res[k].ok()) ++given;
    else if (res[k].error().code() != ErrorCode::kNotFound)  // (a lock file removed meanwhile)
      return Error(res[k].error().code(),
                   fmt::format("chown '{}': {}", printable(ops[k].path), res[k].error().message()));
  }
  return given;
}

}  // namespace

Status MoveRunner::save_dbox_frozen(Ctx& c) {
  return d_.journal.put_blob(c.rec.id, kFrozenBlob, dbox_frozen_record(*c.src_contents));
}

Status MoveRunner::sweep_dbox(Ctx& c, const ServerConfig& into, Transport& dst, const std::string& dst_home,
                              int64_t& swept) {
  const std::string user = printable(c.rec.user);
  auto fail = [&](const std::string& what) { return fmt::format("user {}: sweep into {}: {}", user, into.name, what); };
  // What each mailbox held under the freeze.
  auto blob = MS_TRY(d_.journal.get_blob(c.rec.id, kFrozenBlob));
  if (!blob)
    return Error::corrupt(fail("the journal has no record of the source's UIDNEXTs under the freeze; late mail "
                               "cannot be told apart (compare the servers with doveadm)"));
  std::map<std::string, std::pair<int64_t, int64_t>> frozen;  // mailbox -> (uidvalidity, uidnext)
  auto j = nlohmann::json::parse(*blob, nullptr, false);
  if (!j.is_array()) return Error::corrupt(fail("the journal's record of the source under the freeze is not JSON"));
  for (const auto& o : j)
    if (o.is_object() && o.value("mailbox", nlohmann::json()).is_string())
      frozen[o["mailbox"].get<std::string>()] = {o.value("uidvalidity", int64_t{-1}), o.value("uidnext", int64_t{1})};
  std::set<std::string> done;  // "mailbox\tguid"
  if (auto s = MS_TRY(d_.journal.get_blob(c.rec.id, kSweptBlob)))
    for (auto& line : split(*s, '\n'))
      if (!line.empty()) done.insert(line);

  // What Dovecot's imports left to root goes back to the mail's owner
  // (give_back_to_tree_owner), in the user's trees there.
  // An mbox spool INBOX is one file in a directory that is not the user's:
  // it gets the owner of the user's home.
  std::vector<std::string> roots{dst_home}, files;
  if (&into == c.to)
    for (const auto& t : c.progress.trees) (t.file ? files : roots).push_back(t.dst);
  auto give_back = [&](int64_t since_ctime_ns) -> Status {
    int64_t given = 0;
    for (const auto& r : roots)
      given += MS_TRY_CTX(give_back_to_tree_owner(dst, r, since_ctime_ns), fail(fmt::format("owner of {}", printable(r))));
    for (const auto& f : files)
      given += MS_TRY_CTX(give_back_file_to_home_owner(dst, f, dst_home, since_ctime_ns),
                          fail(fmt::format("owner of {}", printable(f))));
    if (given)
      spdlog::warn("move {}: doveadm import on {} left {} file(s) owned by root in the user's mail; given back to the "
                   "mail's owner",
                   user, into.name, given);
    return d_.journal.put_blob(c.rec.id, kOwnerCheckBlob, "");
  };
  // Imports whose files were not checked yet (a crash right after one).
  if (auto pending = MS_TRY(d_.journal.get_blob(c.rec.id, kOwnerCheckBlob)); pending && !pending->empty()) {
    auto since = parse_int(*pending);
    if (!since.ok()) return Error::corrupt(fail("the journal's " + std::string(kOwnerCheckBlob) + " is not a number"));
    MS_CHECK(give_back(*since));
  }

  // The source now: which mailboxes grew past what they held under the freeze.
  auto now = MS_TRY_CTX(d_.mailbox_status->mailbox_status(c.rec.user, c.from->name), fail("source status"));
  struct Late {
    std::string mailbox;
    std::vector<MailboxMessage> messages;
  };
  std::vector<Late> late;
  for (const auto& m : now) {
    int64_t from = 1;
    auto f = frozen.find(m.mailbox);
    if (f != frozen.end() && f->second.first == m.uidvalidity) from = f->second.second;
    if (m.uidnext <= from) continue;
    auto msgs = MS_TRY_CTX(d_.mailbox_status->messages_from(c.rec.user, c.from->name, m.mailbox, from),
                           fail(fmt::format("late mail in '{}'", printable(m.mailbox))));
    std::vector<MailboxMessage> todo;
    for (auto& msg : msgs)
      if (!done.count(m.mailbox + "\t" + msg.guid)) todo.push_back(std::move(msg));
    if (todo.empty()) continue;
    // Already imported by a run whose journal write was cut short?
    auto have = d_.mailbox_status->messages_from(c.rec.user, into.name, m.mailbox, from);
    if (!have.ok() && have.error().code() != ErrorCode::kNotFound)
      return std::move(have).error().context(fail(fmt::format("'{}' there", printable(m.mailbox))));
    std::set<std::string> there;
    if (have.ok())
      for (const auto& h : *have) there.insert(h.guid);
    std::vector<MailboxMessage> missing;
    for (auto& msg : todo) {
      if (!msg.guid.empty() && there.count(msg.guid)) done.insert(m.mailbox + "\t" + msg.guid);
      else missing.push_back(std::move(msg));
    }
    if (!missing.empty()) late.push_back({m.mailbox, std::move(missing)});
  }
  if (late.empty()) return {};

  // The source's trees, copied by the engine into one side directory beside
  // the user's home there: <home>.mailshard-sweep-<id>/{home,alt,...}. No
  // Dovecot serves it; the destination's reads it for the import only.
  const std::string side = fmt::format("{}.mailshard-sweep-{}", dst_home, c.rec.id);
  MS_CHECK_CTX(remove_tree(dst, side), fail("remove an earlier side copy"));
  // The side directory gets the owner and mode of the user's home: a
  // doveadm server that runs as the mail user (service doveadm { user =
  // vmail }) reads the side copy as that user, and a root-owned 0700
  // directory would fail every import with "Permission denied".
  MS_CHECK_CTX(ensure_parents(*c.src, dst, side), fail("create the side copy's directory"));
  {
    auto home_attrs = MS_TRY_CTX(c.src->stat({{c.progress.src_home, {}}}), fail("stat the home on the source"));
    if (home_attrs[0].error) return Error(*home_attrs[0].error).context(fail("stat the home on the source"));
    TreeOp mk;
    mk.kind = TreeOp::Kind::kMkdir;
    mk.path = side;
    mk.attrs = home_attrs[0].attrs;
    mk.attr_mask = TreeOp::kOwner | TreeOp::kMode;
    auto made = MS_TRY_CTX(dst.apply({mk}), fail("create the side copy's directory"));
    if (!made[0].ok()) return Error(made[0].error()).context(fail("create the side copy's directory"));
  }
  // The storage files (storage_file) that the move's last pass copied and
  // that have not changed since are left out: the import reads only the
  // late mail. The passes' states are the journal's (saved by the sweep
  // step before its first round; purge's last sweep reads them too).
  const MailLocation loc = c.from_location();
  MS_CHECK(load_state(c));
  for (size_t i = 0; i < c.progress.trees.size() && i < c.extra.size(); ++i) MS_CHECK(load_tree_state(c, i));
  struct SideStats {
    int64_t files = 0, bytes = 0;
  } side_stats;
  auto copy = [&](const std::string& src_path, const std::string& side_path, const SyncState* copied,
                  const std::string& only_entry = {}) -> Status {
    MS_CHECK(ensure_parents(*c.src, dst, side_path));
    SyncState state = SyncState::fresh();
    SyncOptions options = &dst == c.dst ? c.sync : d_.sync_options;
    options.only_entry = only_entry;
    if (copied)
      options.leave_out = [copied, format = loc.format](const std::string& rel, const FileAttrs& a) {
        if (!storage_file(format, rel)) return false;
        auto d = copied->dirs.find(path_parent(rel));
        if (d == copied->dirs.end()) return false;
        auto e = d->second.entries.find(path_last(rel));
        return e != d->second.entries.end() && e->second.type == EntryType::kFile && e->second.attrs.size == a.size &&
               e->second.attrs.mtime_ns == a.mtime_ns;
      };
    SyncEngine engine(*c.src, src_path, dst, side_path, options, d_.clock);
    auto stats = engine.warm_pass(state, false);
    if (!stats.ok()) return std::move(stats).error();
    side_stats.files += stats->files_copied + stats->metadata_sent;
    side_stats.bytes += stats->bytes_sent;
    return {};
  };
  const std::string root = into.mail_root == "/" ? "" : into.mail_root;
  MS_CHECK_CTX(copy(c.progress.src_home, side + "/home", &c.state), fail("side copy of the home"));
  const std::string side_home = root + "/" + side + "/home";
  const char* format = loc.format == MailFormat::kSdbox ? "sdbox" : loc.format == MailFormat::kMdbox ? "mdbox" : "mbox";
  std::string location =
      fmt::format("{}:{}", format, location_path(side_home + (loc.maildir.empty() ? "" : "/" + loc.maildir)));
  // mbox's INBOX file (inside the mail path: ~/mail/inbox), in the side copy.
  if (const std::string* inbox = loc.option("INBOX"); inbox && starts_with(*inbox, "~/"))
    location += fmt::format(":INBOX={}", location_path(side_home + inbox->substr(1)));
  for (size_t i = 0; i < c.progress.trees.size(); ++i) {
    const ExtraTree& t = c.progress.trees[i];
    if (!MS_TRY(exists(*c.src, t.src))) continue;
    const std::string side_tree = side + "/" + t.name;
    const SyncState* copied = i < c.extra.size() ? &c.extra[i].state : nullptr;
    MS_CHECK_CTX(copy(engine_src_root(t), side_tree, copied, tree_file_name(t)),
                 fail(fmt::format("side copy of the {} tree", t.name)));
    if (t.file) {  // the spool INBOX, alone in its side directory
      location += fmt::format(":INBOX={}", location_path(root + "/" + file_in_staging(t, side_tree)));
      continue;
    }
    for (const auto& key : split(t.name, '+')) {
      std::string upper;
      for (char ch : key) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      location += fmt::format(":{}={}", upper, location_path(root + "/" + side_tree));
    }
  }
  spdlog::info("move {}: side copy for the sweep on {}: {} file(s), {} byte(s) (storage files the move copied "
               "unchanged left out)",
               user, into.name, side_stats.files, side_stats.bytes);
  // What the imports create from here on is theirs (give_back_to_tree_owner).
  auto side_stat = MS_TRY_CTX(dst.stat({{side, {}}}), fail("stat the side copy"));
  if (side_stat[0].error) return Error(*side_stat[0].error).context(fail("stat the side copy"));
  const int64_t imports_from = side_stat[0].attrs.ctime_ns;
  MS_CHECK(d_.journal.put_blob(c.rec.id, kOwnerCheckBlob, std::to_string(imports_from)));
  auto import_all = [&]() -> Status {
    for (const auto& l : late) {
      std::vector<int64_t> uids;
      for (const auto& m : l.messages) uids.push_back(m.uid);
      MS_CHECK_CTX(d_.mailbox_status->import_messages(c.rec.user, into.name, location, l.mailbox, uid_set(uids)),
                   fail(fmt::format("import of {} message(s) of '{}'", uids.size(), printable(l.mailbox))));
      for (const auto& m : l.messages) done.insert(l.mailbox + "\t" + m.guid);
      MS_CHECK(d_.journal.put_blob(c.rec.id, kSweptBlob, join(std::vector<std::string>(done.begin(), done.end()), "\n")));
      swept += static_cast<int64_t>(uids.size());
      spdlog::info("move {}: imported {} late message(s) of '{}' into {} (doveadm import)", user, uids.size(),
                   printable(l.mailbox), into.name);
    }
    return {};
  };
  Status imported = import_all();
  MS_CHECK(give_back(imports_from));  // also after a failed import: what the ones before it created
  MS_CHECK(std::move(imported));
  MS_CHECK_CTX(remove_tree(dst, side), fail("remove the side copy"));
  return {};
}

}  // namespace mailshard
