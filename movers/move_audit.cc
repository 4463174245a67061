// MoveRunner, audit: purge the source copy of a done move after its grace
// period (after one last sweep), and verify a user's current copy against
// the manifest of their last move.
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "movers/courier_conversion.h"
#include "movers/mail_format.h"
#include "movers/maildir_rules.h"
#include "movers/move_runner.h"
#include "movers/move_runner_internal.h"
#include "util/duration.h"
#include "util/strings.h"

namespace mailshard {

Result<MoveRecord> MoveRunner::purge(int64_t move_id, int64_t older_than_ms) {
  Ctx c;
  c.lease = MS_TRY(d_.journal.lease_move(move_id));
  c.rec = MS_TRY(d_.journal.get_move(move_id));
  if (c.rec.state == MoveState::kPurged) return c.rec;
  if (c.rec.state != MoveState::kDone)
    return Error::invalid(fmt::format("move {} is {}; only done (verified) moves are purged", move_id,
                                      move_state_name(c.rec.state)));
  int64_t age = d_.clock.now_ms() - c.rec.finished_at_ms;
  if (age < older_than_ms)
    return Error::invalid(fmt::format("move {} finished {} ago, inside its grace period of {}", move_id,
                                      format_duration_ms(age), format_duration_ms(older_than_ms)));
  c.load_progress();
  MS_CHECK_CTX(open_sides(c), fmt::format("purge move {}", move_id));
  auto account = d_.directory.find_account(c.rec.user);
  if (!account.ok()) return std::move(account).error().context(fmt::format("purge move {}", move_id));
  if (account->host == c.rec.from_server)
    return Error::conflict(fmt::format("move {}: {} lives on {} again; its mailbox there is not a stale copy",
                                       move_id, printable(c.rec.user), c.rec.from_server));
  bool src_there = MS_TRY(exists(*c.src, c.progress.src_home));
  bool trees_there = false;
  for (const auto& t : c.progress.trees) trees_there = trees_there || MS_TRY(exists(*c.src, t.src));
  if (src_there) {
    // Last sweep into wherever the user lives now.
    const ServerConfig* now_on = d_.config.find_server(account->host);
    if (!now_on) return Error::invalid(fmt::format("user {} is on unknown server '{}'", printable(c.rec.user), account->host));
    Transport* cur = MS_TRY_CTX(d_.env.transport(now_on->name), now_on->name);
    auto run = [&]() -> Status {
      int64_t swept = 0;
      if (via_doveadm(c)) MS_CHECK(sweep_dbox(c, *now_on, *cur, account->home_rel, swept));
      else MS_CHECK(sweep_into(c, *cur, account->home_rel, swept));
      c.progress.purge_swept = swept;
      // Mail added behind Dovecot's back: recount the quota there (advisory,
      // as in the move's quota_recalc step).
      if (swept > 0 && d_.quota && !now_on->doveadm_url.empty())
        if (Status q = d_.quota->recalc_quota(c.rec.user, now_on->name); !q.ok())
          spdlog::warn("purge move {}: {} (run 'doveadm quota recalc -u {}' on {})", move_id, q.error().message(),
                       printable(c.rec.user), now_on->name);
      return {};
    };
    MS_CHECK(step(c, "purge_sweep", run));
  }
  if (src_there || trees_there) {
    // The trees outside the home first: while the home is there, a purge
    // cut short runs again (the home decides whether it sweeps).
    MS_CHECK(step(c, "purge", [&]() -> Status {
      for (const auto& t : c.progress.trees)
        MS_CHECK_CTX(t.file ? remove_file(*c.src, t.src) : remove_tree(*c.src, t.src), fmt::format("the {} tree", t.name));
      return remove_tree(*c.src, c.progress.src_home);
    }));
  }
  c.rec.state = MoveState::kPurged;
  MS_CHECK(save(c));
  return c.rec;
}

Result<std::string> MoveRunner::verify_user(const std::string& user) {
  auto account = d_.directory.find_account(user);
  if (!account.ok()) {
    if (account.error().code() == ErrorCode::kNotFound)
      return Error::invalid(fmt::format("unknown user '{}': {}", printable(user), account.error().message()));
    return std::move(account).error();
  }
  MoveFilter f;
  f.user = user;
  auto moves = MS_TRY(d_.journal.list_moves(f));
  const MoveRecord* last = nullptr;
  for (const auto& m : moves)
    if (m.state == MoveState::kDone || m.state == MoveState::kPurged) {
      last = &m;
      break;
    }
  if (!last) return Error::not_found(fmt::format("user {} has no finished move to verify against", printable(user)));
  if (account->host != last->to_server)
    return Error::conflict(fmt::format("user {} is on {} now, not on {} where move {} put them", printable(user),
                                       account->host, last->to_server, last->id));
  auto progress = MoveProgress::parse(last->detail_json);
  if (progress.ok() && progress->director)
    return fmt::format("user {} on {}: move {} was a director move inside storage group '{}': no mail was copied, "
                       "so there is no copy to check (the mailbox stayed where it was on the shared mail root)",
                       printable(user), account->host, last->id, printable(progress->director->storage_group));
  // dbox keeps messages in storage files, not one file each: this check
  // would find none and pass on nothing, so it says what to use instead.
  if (const ServerConfig* on = d_.config.find_server(account->host); on && moved_through_doveadm(server_location(*on).format))
    return Error::invalid(fmt::format(
        "user {} on {}: {} mail is in Dovecot's storage files, not one file per message, so `mailshard verify` cannot "
        "check it; move {}'s flip compared both servers' doveadm views (every mailbox's UIDs and GUIDs); compare "
        "them again with `doveadm fetch -u {} 'mailbox uid guid' all` on each server",
        printable(user), account->host, mail_format_name(server_location(*on).format), last->id, printable(user)));
  auto blob = MS_TRY(d_.journal.get_blob(last->id, "sync_state"));
  if (!blob) return fmt::format("user {}: move {} copied an empty mailbox; nothing to check", printable(user), last->id);
  SyncState manifest = MS_TRY(SyncState::deserialize(*blob));
  Transport* t = MS_TRY(d_.env.transport(account->host));
  auto listing = t->list_tree(account->home_rel);
  if (!listing.ok()) return std::move(listing).error().context(account->host);

  // Messages by folder and base name, now.
  std::map<std::string, std::map<std::string, std::string>> now;  // folder dir -> base -> path
  for (const auto& dir : *listing) {
    std::string_view p = dir.path;
    bool msg_dir = p == "cur" || p == "new" || ends_with(p, "/cur") || ends_with(p, "/new");
    if (!msg_dir) continue;
    std::string folder = dirname_of(dir.path);
    for (const auto& e : dir.entries)
      if (e.type == EntryType::kFile)
        now[folder][std::string(message_base(e.name))] = join_path(join_path(account->home_rel, dir.path), e.name);
  }
  // A Courier -> Dovecot move renamed folders (each level in modified
  // UTF-7): the manifest has Courier's names, the home Dovecot's.
  const bool converted = progress.ok() && progress->convert == kCourierToDovecot;
  const std::string maildir = converted ? progress->convert_maildir.value_or("") : std::string();
  // The destination's layout as the move journaled it (else as configured).
  DovecotLayout layout;
  if (converted) {
    const ServerConfig* to = d_.config.find_server(last->to_server);
    if (auto l = conversion_layout(journaled_location(progress->dst_location, to ? *to : ServerConfig{})); l.ok())
      layout = *l;
  }
  auto folder_now = [&](const std::string& folder) -> std::string {
    if (!converted) return folder;
    std::string_view rest = folder;
    if (!maildir.empty()) {
      if (rest.size() <= maildir.size() + 1 || rest.substr(0, maildir.size() + 1) != maildir + "/") return folder;
      rest.remove_prefix(maildir.size() + 1);
    }
    if (rest.empty() || rest.front() != '.' || rest.find('/') != std::string_view::npos) return folder;
    auto renamed = dovecot_folder_dir(rest, layout);
    return renamed.ok() ? join_path(maildir, *renamed) : folder;
  };
  std::vector<std::string> missing;
  std::map<std::string, std::set<std::string>> copied;  // folder dir (the manifest's) -> base names
  std::vector<StatRequest> to_hash;
  std::vector<Hash128> expected;
  int64_t checked = 0;
  for (const auto& [dpath, dstate] : manifest.dirs) {
    std::string_view p = dpath;
    bool msg_dir = p == "cur" || p == "new" || ends_with(p, "/cur") || ends_with(p, "/new");
    if (!msg_dir) continue;
    std::string folder = folder_now(dirname_of(dpath));
    for (const auto& [name, e] : dstate.entries) {
      if (e.type != EntryType::kFile) continue;
      ++checked;
      auto fit = now.find(folder);
      std::string base(message_base(name));
      copied[dirname_of(dpath)].insert(base);
      if (fit == now.end() || !fit->second.count(base)) {
        missing.push_back(join_path(dpath, name));
        continue;
      }
      if (e.has_hash) {
        to_hash.push_back({fit->second[base], HashSpec{true, -1}});
        expected.push_back(e.hash);
      }
    }
  }
  std::vector<std::string> differ;
  if (!to_hash.empty()) {
    auto hashed = t->stat(to_hash);
    if (!hashed.ok()) return std::move(hashed).error();
    for (size_t i = 0; i < hashed->size(); ++i) {
      const auto& r = (*hashed)[i];
      if (r.error) continue;  // expunged between the listing and now
      if (r.hash && !(*r.hash == expected[i])) differ.push_back(to_hash[i].path);
    }
  }
  // Expunges are legitimate after a move; a verify cannot tell them from loss
  // on its own, so it reports them and fails only on content differences.
  if (!differ.empty())
    return Error::verify_failed(fmt::format("user {}: {} message(s) differ from the copy move {} made, e.g. {}",
                                            printable(user), differ.size(), last->id, printable(differ.front())));

  // UIDs: every message the move copied keeps its UID, and its folder its
  // UIDVALIDITY, in the uid lists now against the source copy's. The move
  // left that copy as it was under the freeze, until purge.
  auto uid_audit = [&]() -> Result<std::string> {
    if (last->state == MoveState::kPurged) return std::string("UIDs not checked: the source copy is purged");
    if (!progress.ok()) return std::string("UIDs not checked: the move's record is unreadable");
    for (const auto& tree : progress->trees)
      if (tree.name.find("control") != std::string::npos)
        return std::string("UIDs not checked: the uid lists are in the CONTROL tree");
    const ServerConfig* from = d_.config.find_server(last->from_server);
    if (!from) return fmt::format("UIDs not checked: {} is not configured", last->from_server);
    const MailLocation src_loc = journaled_location(progress->src_location, *from);
    Transport* src = MS_TRY_CTX(d_.env.transport(from->name), from->name);
    if (!MS_TRY_CTX(exists(*src, progress->src_home), from->name))
      return fmt::format("UIDs not checked: the source copy is gone from {}", from->name);
    const MailFormat files = converted ? MailFormat::kCourier
                                       : MS_TRY_CTX(detect_home_format(*src, progress->src_home, src_loc), from->name);
    if (files != MailFormat::kCourier && files != MailFormat::kDovecot)
      return std::string("UIDs not checked: the source copy has no uid lists");
    std::string root = converted ? maildir : src_loc.maildir;
    if (!converted && root.empty() && manifest.dirs.count("Maildir/cur")) root = "Maildir";
    bool src_fs = false;  // the copy mirrors the source: its Dovecot layout is the destination's too
    if (!converted && files == MailFormat::kDovecot) {
      auto l = conversion_layout(src_loc);
      if (!l.ok()) return fmt::format("UIDs not checked: folders named by {}", printable(src_loc.naming_options()));
      src_fs = l->fs;
    }
    auto was = MS_TRY_CTX(read_folder_views(user, *src, join_path(progress->src_home, root),
                                            files == MailFormat::kCourier, src_fs),
                          from->name);
    auto now_views = MS_TRY_CTX(read_folder_views(user, *t, join_path(account->home_rel, root),
                                                  files == MailFormat::kCourier && !converted,
                                                  converted ? layout.fs : src_fs),
                                account->host);
    int64_t uids = 0, folders = 0;
    std::vector<std::string> changed;
    for (const auto& [dir, view] : was) {
      const std::string src_folder = join_path(root, dir);
      auto bases = copied.find(src_folder);
      if (bases == copied.end()) continue;
      std::string now_folder = folder_now(src_folder);
      const std::string key = root.empty() ? now_folder : now_folder.substr(std::min(now_folder.size(), root.size() + 1));
      auto it = now_views.find(key);
      if (it == now_views.end()) continue;  // the folder is gone (deleted since): its messages count as gone
      ++folders;
      for (auto& c : uid_changes(view, it->second, bases->second, uids))
        changed.push_back(fmt::format("{}: {}", key.empty() ? std::string("INBOX") : printable(key), c));
    }
    if (!changed.empty())
      return Error::verify_failed(fmt::format("user {}: UIDs differ from the copy move {} made: {}{}", printable(user),
                                              last->id, changed.front(),
                                              changed.size() > 1 ? fmt::format(" (and {} more)", changed.size() - 1) : ""));
    return fmt::format("{} UIDs in {} folders as the source copy has them", uids, folders);
  };
  std::string uid_report = MS_TRY(uid_audit());
  return fmt::format("user {} on {}: {} messages of move {} checked: {} present with identical content, {} gone "
                     "since (expunged or lost); {}",
                     printable(user), account->host, checked, last->id, checked - missing.size(), missing.size(),
                     uid_report);
}

}  // namespace mailshard
