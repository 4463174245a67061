#include "movers/move_runner.h"

#include "movers/mail_format.h"
#include "movers/move_runner_internal.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/freeze_value.h"
#include "core/peer_path.h"
#include "movers/dbox_verify.h"
#include "movers/maildir_rules.h"
#include "movers/sync_state.h"
#include "util/duration.h"
#include "util/interrupt.h"
#include "util/strings.h"

namespace mailshard {

std::string staging_home(const std::string& home_rel, int64_t move_id) {
  return fmt::format("{}.mailshard-incoming-{}", home_rel, move_id);
}

namespace {

// A freeze must have this much life left when the flip starts: the flip and
// the thaw then happen while the gate still holds (ms).
constexpr int64_t kFreezeSafetyMs = 15'000;
// Poll interval while waiting for sessions and deliveries to drain (ms).
constexpr int64_t kDrainPollMs = 100;
// A file in a Maildir tmp/ untouched this long is no delivery in flight (files_in_tmp).
constexpr int64_t kStaleTmpMs = 10 * 60 * 1000;
// Thaw attempts before the move is left for resume (one second apart).
constexpr int kThawAttempts = 3;

// A home's size from one listing: Maildir message names carry ",S=<size>"
// (and ",W=<virtual size>"); everything else is stat'ed (a home has few
// non-message files).
struct HomeSize {
  int64_t bytes = 0;          // every file
  int64_t message_bytes = 0;  // message files, counted as Dovecot's quota with quota_vsizes does: W= where named
  int64_t messages = 0;       // files in cur/ and new/
};

// The value of ",<key>=<digits>" in a message base name, or -1.
int64_t name_field(std::string_view base, std::string_view key) {
  std::string needle = fmt::format(",{}=", key);
  auto s = base.find(needle);
  if (s == std::string_view::npos) return -1;
  int64_t v = 0;
  size_t i = s + needle.size();
  while (i < base.size() && base[i] >= '0' && base[i] <= '9') v = v * 10 + (base[i++] - '0');
  return i > s + needle.size() ? v : -1;
}

Result<HomeSize> home_size(Transport& t, const std::string& home) {
  auto listing = t.list_tree(home);
  if (!listing.ok()) return std::move(listing).error();
  HomeSize total;
  std::vector<StatRequest> unknown;
  std::vector<bool> unknown_is_message;
  for (const auto& dir : *listing) {
    std::string_view last = std::string_view(dir.path).substr(dir.path.rfind('/') + 1);
    const bool message_dir = last == "cur" || last == "new";
    for (const auto& e : dir.entries) {
      if (e.type == EntryType::kDir) continue;
      std::string_view base = message_base(e.name);
      const bool message = message_dir && e.type == EntryType::kFile && !is_skipped_name(e.name);
      total.messages += message;
      if (int64_t size = name_field(base, "S"); size >= 0) {
        total.bytes += size;
        if (message) {
          int64_t vsize = name_field(base, "W");
          total.message_bytes += vsize >= 0 ? vsize : size;
        }
        continue;
      }
      unknown.push_back({join_path(join_path(home, dir.path), e.name), {}});
      unknown_is_message.push_back(message);
    }
  }
  if (!unknown.empty()) {
    auto st = t.stat(unknown);
    if (!st.ok()) return std::move(st).error();
    for (size_t i = 0; i < st->size(); ++i) {
      if ((*st)[i].error) continue;
      total.bytes += (*st)[i].attrs.size;
      if (unknown_is_message[i]) total.message_bytes += (*st)[i].attrs.size;
    }
  }
  return total;
}

// Whether a tree holds only what Dovecot creates when it opens a user's mail
// storage that is not there (directories, dovecot* index and list files, a
// maildirsize): such a home holds no mail and may be removed.
bool only_dovecot_scaffolding(const TreeListing& listing) {
  for (const auto& dir : listing)
    for (const auto& e : dir.entries) {
      if (e.type == EntryType::kDir) continue;
      if (e.type == EntryType::kSymlink && e.name == "dbox-alt-root") continue;  // dbox's record of its ALT path
      if (e.type != EntryType::kFile) return false;
      if (!starts_with(e.name, "dovecot") && e.name != "maildirsize" && e.name != "subscriptions") return false;
    }
  return true;
}

// Free space where `rel` will be: the filesystem of its nearest existing
// ancestor (a domain directory may be its own volume; a new one is not there yet).
Result<FsSpace> space_for(Transport& t, const std::string& rel) {
  std::string p = dirname_of(rel);
  while (true) {
    auto sp = t.space(p);
    if (sp.ok() || sp.error().code() != ErrorCode::kNotFound || p.empty()) return sp;
    p = dirname_of(p);
  }
}

}  // namespace

Result<int64_t> clock_offset(Transport& t, Clock& clock) {
  // The server's clock, read the way Maildir sees it: the mtime its kernel
  // (or NFS server) gives a directory we create in the mail root.
  // Named by process, time and a counter: moves in other processes probe the
  // same root at the same millisecond (an existing directory is not an error
  // for mkdir, so two probes of one name would remove each other's).
  static std::atomic<int> counter{0};
  std::string probe = fmt::format(".mailshard-clock-{}-{}-{}", ::getpid(), clock.now_ms(), counter++);
  TreeOp mk;
  mk.kind = TreeOp::Kind::kMkdir;
  mk.path = probe;
  int64_t before = clock.now_ms();
  auto made = t.apply({mk});
  if (!made.ok()) return std::move(made).error().context("clock probe");
  if (!(*made)[0].ok()) return Error((*made)[0].error()).context("clock probe");
  auto st = t.stat({{probe, {}}});
  int64_t after = clock.now_ms();
  TreeOp rm;
  rm.kind = TreeOp::Kind::kRmdir;
  rm.path = probe;
  (void)t.apply({rm});
  if (!st.ok()) return std::move(st).error().context("clock probe");
  if ((*st)[0].error) return Error(*(*st)[0].error).context("clock probe");
  int64_t server_ms = (*st)[0].attrs.mtime_ns / 1'000'000;
  return server_ms - (before + after) / 2;
}

void MoveRunner::Ctx::load_progress() {
  std::vector<std::string> ignored;
  auto read = MoveProgress::parse(rec.detail_json, &ignored);
  if (!read.ok()) {
    spdlog::warn("move {}: {}; read as empty (the steps re-derive what they need)", rec.id, read.error().message());
    progress = {};
    return;
  }
  if (!ignored.empty())
    spdlog::warn("move {}: move progress: fields of the wrong type left unset: {}", rec.id, join(ignored, ", "));
  progress = std::move(*read);
}

MailLocation journaled_location(const std::optional<std::string>& journaled, const ServerConfig& server) {
  if (!journaled) return server_location(server);
  ServerConfig then = server;
  then.mail_location = *journaled;
  if (!journaled->empty() && !parse_mail_location(*journaled).ok()) {
    spdlog::warn("the journal's mail_location '{}' of {} is unreadable; using the configured one",
                 printable(*journaled), server.name);
    return server_location(server);
  }
  return server_location(then);
}

MailLocation MoveRunner::Ctx::from_location() const { return journaled_location(progress.src_location, *from); }
MailLocation MoveRunner::Ctx::to_location() const { return journaled_location(progress.dst_location, *to); }

Status MoveRunner::save(Ctx& c) {
  c.rec.detail_json = c.progress.to_json();
  return d_.journal.update_move(c.rec);
}

Status MoveRunner::save_state(Ctx& c) { return d_.journal.put_blob(c.rec.id, "sync_state", c.state.serialize()); }

Status MoveRunner::load_state(Ctx& c) {
  if (c.state_loaded) return {};
  auto blob = d_.journal.get_blob(c.rec.id, "sync_state");
  if (!blob.ok()) return std::move(blob).error();
  if (blob->has_value()) {
    auto st = SyncState::deserialize(**blob);
    if (!st.ok()) return std::move(st).error().context("sync state in the journal");
    c.state = std::move(*st);
    // A pass may have been cut short: list the destination before trusting it.
    c.state.dirty = true;
  } else {
    c.state = SyncState::fresh();
  }
  c.state_loaded = true;
  return {};
}

namespace {
// The journal blob of a tree's sync state ("sync_state" is the home's).
std::string tree_state_blob(const ExtraTree& t) { return "sync_state:" + t.name; }

// Whether relative paths a and b are the same or one holds the other.
bool overlaps(const std::string& a, const std::string& b) {
  auto inside = [](const std::string& x, const std::string& y) {
    return x == y || y.empty() || (starts_with(x, y) && x.size() > y.size() && x[y.size()] == '/');
  };
  return inside(a, b) || inside(b, a);
}
}  // namespace

void MoveRunner::set_tree_staging(Ctx& c) {
  c.extra.assign(c.progress.trees.size(), {});
  for (size_t i = 0; i < c.progress.trees.size(); ++i)
    c.extra[i].staging = staging_home(c.progress.trees[i].dst, c.rec.id);
}

Status MoveRunner::load_tree_state(Ctx& c, size_t i) {
  auto& x = c.extra[i];
  if (x.state_loaded) return {};
  auto blob = MS_TRY(d_.journal.get_blob(c.rec.id, tree_state_blob(c.progress.trees[i])));
  if (blob) {
    x.state = MS_TRY_CTX(SyncState::deserialize(*blob), "sync state of the " + c.progress.trees[i].name + " tree");
    x.state.dirty = true;  // a pass may have been cut short
  } else {
    x.state = SyncState::fresh();
  }
  x.state_loaded = true;
  return {};
}

Status MoveRunner::save_tree_state(Ctx& c, size_t i) {
  return d_.journal.put_blob(c.rec.id, tree_state_blob(c.progress.trees[i]), c.extra[i].state.serialize());
}

// Preflight: the user's trees outside the home on each server, from each
// server's own mail_location. Both must keep the same trees outside the home
// (a uidlist that changed place would be a new UIDVALIDITY), each inside its
// server's mail root (what the transport may touch), apart from the home
// and from each other, and not there yet on the destination.
Status MoveRunner::plan_trees(Ctx& c) {
  c.progress.trees.clear();
  const std::string user = printable(c.rec.user);
  const std::string dst_home = c.progress.new_home.value_or(c.account.home);
  auto a = MS_TRY_CTX(location_trees(c.from_location(), {c.rec.user, c.account.home}),
                      c.from->name + " mail_location");
  auto b = MS_TRY_CTX(location_trees(c.to_location(), {c.rec.user, dst_home}), c.to->name + " mail_location");
  auto names = [](const std::vector<MailTree>& t) {
    std::vector<std::string> n;
    for (size_t i = 1; i < t.size(); ++i) n.push_back(t[i].name);
    return n.empty() ? std::string("nothing") : join(n, ", ");
  };
  if (names(a) != names(b))
    return Error::invalid(fmt::format("user {}: {}'s mail_location keeps {} outside the home but {}'s keeps {}: "
                                      "those files would change place and clients would see new UIDVALIDITYs (make "
                                      "the INDEX=, CONTROL=, ALT= and INBOX= options alike)",
                                      user, c.from->name, names(a), c.to->name, names(b)));
  for (size_t i = 1; i < a.size(); ++i) {
    ExtraTree t;
    t.name = a[i].name;
    t.file = a[i].file;
    t.src = MS_TRY_CTX(tree_in_root(a[i].path, c.from->mail_root),
                       fmt::format("user {}: {}: the {} tree", user, c.from->name, t.name));
    t.dst = MS_TRY_CTX(tree_in_root(b[i].path, c.to->mail_root),
                       fmt::format("user {}: {}: the {} tree", user, c.to->name, t.name));
    for (const auto& [side, path, home] : {std::tuple{c.from->name, t.src, c.progress.src_home},
                                           std::tuple{c.to->name, t.dst, c.dst_final}}) {
      if (overlaps(path, home))
        return Error::invalid(fmt::format("user {}: {}: the {} tree '{}' and the home '{}' overlap", user, side,
                                          t.name, printable(path), printable(home)));
      for (const auto& other : c.progress.trees)
        if (overlaps(path, side == c.from->name ? other.src : other.dst))
          return Error::invalid(fmt::format("user {}: {}: the {} and {} trees overlap", user, side, other.name,
                                            t.name));
    }
    // The tree's base on the destination (ALT=/srv/sata/%d/%n: /srv/sata)
    // must be there: the copy would make it, and a mount point that is
    // missing (not mounted, misspelt) would put that tier's mail on
    // whatever disk holds its parent.
    // (A base that is the mail root itself is not inside it: it is there.)
    if (const std::string& base = b[i].base; !base.empty()) {
      auto rel = tree_in_root(base, c.to->mail_root);
      if (rel.ok() && !MS_TRY_CTX(exists(*c.dst, *rel), c.to->name))
        return Error::invalid(fmt::format("user {}: {}: the {} tree's directory {} does not exist there (from its "
                                          "mail_location); mount or create it, then move again",
                                          user, c.to->name, t.name, printable(base)));
    }
    t.empty_source = !MS_TRY_CTX(exists(*c.src, t.src), c.from->name);
    if (MS_TRY_CTX(exists(*c.dst, t.dst), c.to->name))
      return Error::conflict(fmt::format("{} already has a {} tree of user {} at {} that no mailshard move left there; "
                                         "move it aside or remove it first",
                                         c.to->name, t.name, user, printable(t.dst)));
    c.progress.trees.push_back(std::move(t));
  }
  set_tree_staging(c);
  return {};
}

Result<bool> exists(Transport& t, const std::string& path) {
  auto st = t.stat({{path, {}}});
  if (!st.ok()) return std::move(st).error();
  const auto& r = (*st)[0];
  if (!r.error) return true;
  if (r.error->code() == ErrorCode::kNotFound) return false;
  return *r.error;
}

Status remove_tree(Transport& t, const std::string& dir) {
  auto listing = t.list_tree(dir);
  if (!listing.ok()) {
    if (listing.error().code() == ErrorCode::kNotFound) return {};
    return std::move(listing).error().context(fmt::format("remove {}", printable(dir)));
  }
  std::vector<TreeOp> ops;
  auto flush = [&]() -> Status {
    if (ops.empty()) return {};
    auto res = t.apply(ops);
    if (!res.ok()) return std::move(res).error();
    for (size_t i = 0; i < res->size(); ++i)
      if (!(*res)[i].ok() && (*res)[i].error().code() != ErrorCode::kNotFound)
        return Error((*res)[i].error().code(), fmt::format("remove '{}': {}", printable(ops[i].path),
                                                           (*res)[i].error().message()));
    ops.clear();
    return {};
  };
  for (auto it = listing->rbegin(); it != listing->rend(); ++it) {
    std::string base = join_path(dir, it->path);
    for (const auto& e : it->entries) {
      if (e.type == EntryType::kDir) continue;
      TreeOp op;
      op.kind = TreeOp::Kind::kUnlink;
      op.path = join_path(base, e.name);
      ops.push_back(std::move(op));
      if (ops.size() >= kOpsPerBatch) MS_CHECK(flush());
    }
    MS_CHECK(flush());  // a directory is removed only after its files
    TreeOp rm;
    rm.kind = TreeOp::Kind::kRmdir;
    rm.path = base;
    ops.push_back(std::move(rm));
    MS_CHECK(flush());
  }
  TreeOp sync;
  sync.kind = TreeOp::Kind::kSyncDir;
  sync.path = dirname_of(dir);
  ops.push_back(sync);
  return flush();
}

// Dovecot needs "example.org/" owned by its user, as on the source.
Status ensure_parents(Transport& src, Transport& dst, const std::string& rel) {
  std::vector<std::string> parents;
  for (std::string p = dirname_of(rel); !p.empty(); p = dirname_of(p)) parents.push_back(p);
  std::reverse(parents.begin(), parents.end());
  for (const auto& p : parents) {
    auto here = exists(dst, p);
    if (!here.ok()) return std::move(here).error();
    if (*here) continue;
    auto src_attrs = src.stat({{p, {}}});
    if (!src_attrs.ok()) return std::move(src_attrs).error();
    TreeOp op;
    op.kind = TreeOp::Kind::kMkdir;
    op.path = p;
    if (!(*src_attrs)[0].error) {
      op.attrs = (*src_attrs)[0].attrs;
      op.attr_mask = TreeOp::kOwner | TreeOp::kMode;
    }
    auto res = dst.apply({op});
    if (!res.ok()) return std::move(res).error();
    if (!(*res)[0].ok()) return (*res)[0].error();
  }
  return {};
}

Status remove_file(Transport& t, const std::string& path) {
  auto st = MS_TRY_CTX(t.stat({{path, {}}}), fmt::format("remove {}", printable(path)));
  if (st[0].error) {
    if (st[0].error->code() == ErrorCode::kNotFound) return {};
    return Error(*st[0].error).context(fmt::format("remove {}", printable(path)));
  }
  if (st[0].attrs.type == EntryType::kDir)
    return Error::invalid(fmt::format("remove {}: a directory where a file was expected", printable(path)));
  TreeOp rm;
  rm.kind = TreeOp::Kind::kUnlink;
  rm.path = path;
  TreeOp sync;
  sync.kind = TreeOp::Kind::kSyncDir;
  sync.path = dirname_of(path);
  auto res = MS_TRY_CTX(t.apply({rm, sync}), fmt::format("remove {}", printable(path)));
  if (!res[0].ok() && res[0].error().code() != ErrorCode::kNotFound)
    return Error(res[0].error()).context(fmt::format("remove {}", printable(path)));
  if (!res[1].ok()) return Error(res[1].error()).context(fmt::format("remove {}", printable(path)));
  return {};
}

std::string engine_src_root(const ExtraTree& t) { return t.file ? dirname_of(t.src) : t.src; }

SyncOptions engine_options(const ExtraTree& t, SyncOptions options) {
  options.only_entry = tree_file_name(t);
  return options;
}

std::string tree_file_name(const ExtraTree& t) { return t.file ? path_last(t.src) : std::string(); }

std::string file_in_staging(const ExtraTree& t, const std::string& staging) {
  return join_path(staging, path_last(t.src));
}

bool same_file(const StatResult& a, const StatResult& b) {
  return !a.error && !b.error && a.attrs.ino == b.attrs.ino && a.attrs.nlink >= 2;
}

Status MoveRunner::open_sides(Ctx& c) {
  c.from = d_.config.find_server(c.rec.from_server);
  c.to = d_.config.find_server(c.rec.to_server);
  if (!c.from || !c.to)
    return Error::invalid(fmt::format("move {}: server {} is no longer configured", c.rec.id,
                                      c.from ? c.rec.to_server : c.rec.from_server));
  c.src = MS_TRY_CTX(d_.env.transport(c.from->name), c.from->name);
  c.dst = MS_TRY_CTX(d_.env.transport(c.to->name), c.to->name);
  c.sync = d_.sync_options;
  c.sync.direct_from = MS_TRY(direct_peer(*c.from, *c.to));
  // Without its home every path below would name a mail root itself.
  if (c.progress.src_home.empty())
    return Error::corrupt("the journal's record of the move names no home (src_home missing or unreadable); not "
                          "touching the mail roots");
  c.dst_final = c.progress.src_home;
  c.dst_staging = staging_home(c.progress.src_home, c.rec.id);
  for (const auto& t : c.progress.trees)
    if (t.name.empty() || t.src.empty() || t.dst.empty())
      return Error::corrupt("the journal's record of the move has a tree outside the home without its paths; not "
                            "touching the mail roots");
  set_tree_staging(c);
  return {};
}

// ---------------------------------------------------------------------------
// The move, as a list of steps.

class MoveRunner::Task final : public MoveTask {
 public:
  Task(MoveRunner& runner, const std::string& user, const std::string& to, const MoveOptions& options)
      : r_(runner), options_(options) {
    c_.rec.user = user;
    c_.rec.to_server = to;
    c_.rec.plan_id = options.plan_id;
    c_.rec.bytes_planned = options.bytes_planned;
  }
  bool advance() override {
    if (end_) return true;
    if (!preflighted_) {
      preflighted_ = true;
      // Preflight checks what can be checked without side effects; a dry
      // run stops after it, with one journal record.
      if (Status st = r_.preflight(c_, options_); !st.ok()) end_ = Result<MoveRecord>(st.error());
      else if (options_.dry_run) end_ = Result<MoveRecord>(c_.rec);
      return end_.has_value();
    }
    end_ = r_.run_stretch(c_, next_);
    return end_.has_value();
  }
  Result<MoveRecord> result() override {
    if (!end_) return Error::internal("the move has not ended");
    return *end_;
  }
  int64_t not_before_ms() const override { return end_ ? 0 : c_.wake_at_ms; }

 private:
  MoveRunner& r_;
  MoveOptions options_;
  Ctx c_;
  bool preflighted_ = false;
  size_t next_ = 0;
  std::optional<Result<MoveRecord>> end_;
};

std::unique_ptr<MoveTask> MoveRunner::start(const std::string& user, const std::string& to,
                                            const MoveOptions& options) {
  return std::make_unique<Task>(*this, user, to, options);
}

Result<MoveRecord> MoveRunner::move(const std::string& user, const std::string& to, const MoveOptions& options) {
  Task t(*this, user, to, options);
  while (!t.advance()) {
    const int64_t wait = t.not_before_ms() - d_.clock.now_ms();
    if (wait > 0) d_.clock.sleep_ms(wait);
  }
  return t.result();
}

Status check_claim_still_ours(Journal& journal, int64_t move_id) {
  MoveRecord now = MS_TRY(journal.get_move(move_id));
  if (is_terminal(now.state))
    return Error::conflict(fmt::format("move {} was ended by another process before it started ({})", move_id,
                                       move_state_name(now.state)));
  return {};
}

std::string protocol_step_names() {
  std::string out;
  for (const auto& s : kMoveProtocol) out += (out.empty() ? "" : ", ") + std::string(s.name);
  return out;
}

Status MoveRunner::run_step(Ctx& c, const ProtocolStep& s) {
  return step(c, std::string(s.name), [&]() -> Status {
    switch (s.id) {
      case StepId::kPreflight: return Error::internal("preflight runs before the move is claimed");
      case StepId::kPrecopy: return precopy(c);
      case StepId::kFreeze: return freeze(c);
      case StepId::kKick: return kick(c);
      case StepId::kFinalSync: return final_sync(c);
      case StepId::kConvert: return convert(c);
      case StepId::kVerify: return verify(c);
      case StepId::kFlip: return flip(c);
      case StepId::kThaw: return thaw(c);
      case StepId::kSweep: return sweep(c);
      case StepId::kQuotaRecalc: return quota_recalc(c);
      case StepId::kDone: return finish(c);
    }
    return Error::internal("unknown step");
  });
}

Result<MoveRecord> MoveRunner::end_before_flip(Ctx& c, const Error& why) {
  if (c.flip_unknown) {
    // LDAP may or may not have applied the modify: only resume, reading
    // LDAP once it answers, may decide. Nothing is deleted meanwhile.
    c.rec.error = fmt::format("{} (cannot tell whether the flip happened; 'mailshard resume' decides once LDAP "
                              "answers)", why.message());
    (void)save(c);
    return c.rec;
  }
  auto rb = roll_back(c, why);
  if (!rb.ok()) {
    // Still active (rolling_back): resume retries the rollback.
    c.rec.error = fmt::format("{}; rollback incomplete: {}", why.message(), rb.error().message());
    (void)save(c);
  }
  return c.rec;
}

std::optional<Result<MoveRecord>> MoveRunner::run_stretch(Ctx& c, size_t& next) {
  constexpr size_t n = std::size(kMoveProtocol);
  while (next < n) {
    const ProtocolStep& s = kMoveProtocol[next++];
    if (s.id == StepId::kPreflight) continue;  // ran in move(), before the claim
    if (s.side != CommitSide::kAfterFlip) {
      // Before the flip (and the flip itself): any failure rolls back and
      // the source stays authoritative.
      Status st = interrupted() ? Status(Error::interrupted("interrupted before " + std::string(s.name)))
                                : run_step(c, s);
      if (!st.ok()) return end_before_flip(c, st.error());
    } else {
      // After the flip: only forward. Errors leave the move for resume.
      if (Status st = run_step(c, s); !st.ok()) {
        c.rec.error = fmt::format("{} (the move has flipped; 'mailshard resume' finishes it)", st.error().message());
        (void)save(c);
        return c.rec;
      }
      // Ctrl-C after the flip: the thaw always runs (nobody stays frozen);
      // the sweep can wait for resume.
      if (interrupted() && s.id == StepId::kThaw) {
        c.rec.error = "interrupted after the flip; 'mailshard resume' sweeps and finishes it";
        (void)save(c);
        return c.rec;
      }
      // The sweep again after a pause (settle_again): the move waits
      // without its thread (MoveTask::not_before_ms).
      if (s.id == StepId::kSweep && settle_again(c)) {
        if (interrupted()) {  // no settle round after Ctrl-C: resume (or purge) sweeps again
          c.rec.error = "interrupted after the flip; 'mailshard resume' sweeps and finishes it";
          (void)save(c);
          return c.rec;
        }
        --next;
        auto wake = begin_settle_pause(c);
        if (!wake.ok()) {
          c.rec.error = fmt::format("{} (the move has flipped; 'mailshard resume' finishes it)", wake.error().message());
          (void)save(c);
          return c.rec;
        }
        c.wake_at_ms = *wake;
        return std::nullopt;
      }
    }
    if (!frozen_after(s.id) && next < n) return std::nullopt;  // a pause: another move may run
  }
  return c.rec;
}

Status MoveRunner::preflight(Ctx& c, const MoveOptions& options) {
  const Config& cfg = d_.config;
  std::vector<std::string> names;
  for (const auto& s : cfg.servers) names.push_back(s.name);
  c.to = cfg.find_server(c.rec.to_server);
  if (!c.to)
    return Error::invalid(fmt::format("unknown server '{}' (configured: {})", printable(c.rec.to_server), join(names, ", ")));
  if (d_.freeze.name() == "none" && !options.no_freeze)
    return Error::invalid(
        "[freeze] method is \"none\": pass --no-freeze to move without holding logins and deliveries");

  auto account = d_.directory.find_account(c.rec.user);
  if (!account.ok()) {
    if (account.error().code() == ErrorCode::kNotFound)
      return Error::invalid(fmt::format("unknown user '{}': {}", printable(c.rec.user), account.error().message()));
    return std::move(account).error().context(fmt::format("user {}", printable(c.rec.user)));
  }
  c.account = std::move(*account);
  c.from = cfg.find_server(c.account.host);
  if (!c.from) return Error::invalid(fmt::format("user {} is on unknown server '{}'", printable(c.rec.user), c.account.host));
  if (!options.expected_from.empty() && c.from->name != options.expected_from)
    return Error::conflict(fmt::format("user {} is on {} now, not on {} as planned", printable(c.rec.user), c.from->name,
                                       options.expected_from));
  if (c.from == c.to)
    return Error::invalid(fmt::format("user {} is already on {}", printable(c.rec.user), c.to->name));
  if (options.refuse_frozen && cfg.freeze.method == FreezeMethod::kLdapAttribute &&
      read_freeze_value(cfg.freeze, c.account.status, d_.clock.now_ms()).state == FreezeState::kFrozen)
    return Error::conflict(fmt::format("user {} is frozen ({}={}): someone else holds it", printable(c.rec.user),
                                       cfg.freeze.attribute, printable(c.account.status)));
  if (c.to->draining) return Error::invalid(fmt::format("server {} is draining; it receives no users", c.to->name));
  // The data path between the two servers; a "direct" one that cannot be is
  // refused before anything is claimed.
  c.sync = d_.sync_options;
  c.sync.direct_from = MS_TRY(direct_peer(*c.from, *c.to));
  if (c.to->server_class != c.from->server_class)
    spdlog::warn("move {}: {} is class '{}' but {} is '{}'", printable(c.rec.user), c.from->name,
                 c.from->server_class, c.to->name, c.to->server_class);
  if (options.no_freeze)
    spdlog::warn("move {}: no freeze: the user stays online during the final pass; late deliveries are swept, "
                 "but flag changes made during the final pass may be lost",
                 printable(c.rec.user));

  c.rec.dn = c.account.dn;
  c.rec.from_server = c.from->name;
  c.rec.from_home = c.account.home;
  c.progress.src_home = c.account.home_rel;
  c.progress.src_location = c.from->mail_location;
  c.progress.dst_location = c.to->mail_location;
  c.dst_final = c.progress.src_home;
  if (!c.account.home.empty() && c.account.home.front() == '/')
    c.progress.new_home = c.to->mail_root + "/" + c.progress.src_home;
  c.rec.to_home = c.progress.new_home.value_or(c.account.home);

  if (options.dry_run) {
    MoveFilter f;
    f.user = c.rec.user;
    f.active_only = true;
    auto active = d_.journal.list_moves(f);
    if (!active.ok()) return std::move(active).error();
    if (!active->empty())
      return Error::conflict(fmt::format("user {} is already being moved (move {}, state {})", printable(c.rec.user),
                                         active->front().id, move_state_name(active->front().state)));
  } else {
    c.rec.state = MoveState::kPlanned;
    c.rec.step = "preflight";
    c.rec.detail_json = c.progress.to_json();
    c.rec.id = MS_TRY(options.claim ? options.claim(d_.journal, c.rec) : d_.journal.claim_move(c.rec));
    c.lease = MS_TRY(d_.journal.lease_move(c.rec.id));
    MS_CHECK(check_claim_still_ours(d_.journal, c.rec.id));
    MS_CHECK(d_.journal.log_step(c.rec.id, "preflight", StepPhase::kBegin, ""));
  }

  // Checks with the servers. A failure here ends the move before anything
  // was written anywhere.
  auto checks = [&]() -> Status {
    c.src = MS_TRY_CTX(d_.env.transport(c.from->name), c.from->name);
    c.dst = MS_TRY_CTX(d_.env.transport(c.to->name), c.to->name);
    if (c.sync.direct_from)
      spdlog::info("move {}: data path direct: {}'s agent copies from {} (its peer_command); only listings and "
                   "results pass through here",
                   printable(c.rec.user), c.to->name, c.from->name);
    c.dst_staging = staging_home(c.progress.src_home, c.rec.id);
    // Clocks: Maildir names and Dovecot's caches carry timestamps. Reading a
    // server's clock means creating a probe directory, so a dry run (which
    // writes nothing) leaves it out.
    int64_t skew = 0;
    if (!options.dry_run) {
      auto a = clock_offset(*c.src, d_.clock);
      auto b = clock_offset(*c.dst, d_.clock);
      if (!a.ok()) return std::move(a).error().context(c.from->name);
      if (!b.ok()) return std::move(b).error().context(c.to->name);
      skew = *a - *b;
      if (std::llabs(skew) > cfg.move.max_clock_skew_ms)
        return Error::invalid(fmt::format("clocks of {} and {} differ by {} (max_clock_skew is {})", c.from->name,
                                          c.to->name, format_duration_ms(std::llabs(skew)),
                                          format_duration_ms(cfg.move.max_clock_skew_ms)));
    }
    auto src_there = MS_TRY_CTX(exists(*c.src, c.progress.src_home), c.from->name);
    c.progress.empty_source = !src_there;
    // Never a silent format change (Courier Maildir++ under Dovecot, or the
    // other way round): refused here, before anything was written.
    const MailFormat files =
        c.progress.empty_source
            ? MailFormat::kUnknown
            : MS_TRY_CTX(detect_home_format(*c.src, c.progress.src_home, server_location(*c.from)), c.from->name);
    if (auto why = format_change_refusal(c.rec.user, files, *c.from, *c.to)) return Error::invalid(*why);
    // dbox: flags, keywords and folder membership are in Dovecot's binary
    // indexes; Dovecot's own view of the copy gates the flip (and imports
    // late mail), so both servers need their doveadm.
    if (via_doveadm(c) && (!d_.mailbox_status || c.from->doveadm_url.empty() || c.to->doveadm_url.empty()))
      return Error::invalid(fmt::format("user {}: a {} move needs doveadm_url on both {} and {}: Dovecot's view of "
                                        "the copy gates the flip",
                                        printable(c.rec.user), mail_format_name(server_location(*c.from).format),
                                        c.from->name, c.to->name));
    // Courier -> Dovecot: converted by the convert step (movers/move_convert.cc).
    if (auto why = location_options_refusal(c.rec.user, converts_courier_to_dovecot(files, *c.from, *c.to), *c.from,
                                            *c.to))
      return Error::invalid(*why);
    if (!c.progress.empty_source && converts_courier_to_dovecot(files, *c.from, *c.to))
      MS_CHECK(plan_conversion(c));
    auto dst_there = MS_TRY_CTX(exists(*c.dst, c.dst_final), c.to->name);
    if (dst_there) {
      if (options.dry_run)
        return Error::conflict(fmt::format("{} already has a mailbox at {}", c.to->name, printable(c.dst_final)));
      MS_CHECK(purge_stale_copy(c));
    }
    MS_CHECK(plan_trees(c));
    const HomeSize size =
        c.progress.empty_source ? HomeSize{} : MS_TRY_CTX(home_size(*c.src, c.progress.src_home), c.from->name);
    int64_t need = size.bytes;
    // Each tree outside the home on its own filesystem (INDEX= is often a local disk).
    for (const auto& t : c.progress.trees) {
      if (t.empty_source) continue;
      int64_t bytes = 0;
      if (t.file) {
        auto st = MS_TRY_CTX(c.src->stat({{t.src, {}}}), c.from->name);
        if (st[0].error) return Error(*st[0].error).context(fmt::format("{}: the {} file", c.from->name, t.name));
        bytes = st[0].attrs.size;
      } else {
        bytes = MS_TRY_CTX(home_size(*c.src, t.src), c.from->name).bytes;
      }
      need += bytes;
      auto sp = MS_TRY_CTX(space_for(*c.dst, t.dst), c.to->name);
      if (sp.avail_bytes < bytes + cfg.move.headroom_bytes)
        return Error::no_space(fmt::format("{} has {} free for the {} tree; it needs {} plus {} headroom", c.to->name,
                                           human_bytes(sp.avail_bytes), t.name, human_bytes(bytes),
                                           human_bytes(cfg.move.headroom_bytes)));
    }
    if (c.rec.bytes_planned == 0) c.rec.bytes_planned = need;
    if (options.max_size_drift >= 0 && options.bytes_planned > 0) {
      double drift = std::abs(static_cast<double>(need - options.bytes_planned)) / static_cast<double>(options.bytes_planned);
      if (drift > options.max_size_drift)
        return Error::conflict(fmt::format("user {} has {} now, planned {}: {:.0f}% off (max_size_drift is {:.0f}%)",
                                           printable(c.rec.user), human_bytes(need), human_bytes(options.bytes_planned),
                                           100 * drift, 100 * options.max_size_drift));
    }
    auto space = MS_TRY_CTX(space_for(*c.dst, c.dst_final), c.to->name);
    // The ceiling is checked on the filesystem only where the filesystem is
    // the planner's model (no capacity_bytes override for the server).
    if (options.max_dest_util > 0 && c.to->capacity_bytes == 0 && space.total_bytes > 0) {
      double after = static_cast<double>(space.total_bytes - space.avail_bytes + need) / static_cast<double>(space.total_bytes);
      if (after > options.max_dest_util)
        return Error::conflict(fmt::format("{} would be {:.1f}% full with user {} (hard ceiling {:.1f}%)", c.to->name,
                                           100 * after, printable(c.rec.user), 100 * options.max_dest_util));
    }
    if (space.avail_bytes < need + cfg.move.headroom_bytes)
      return Error::no_space(fmt::format("{} has {} free; the mailbox needs {} plus {} headroom", c.to->name,
                                         human_bytes(space.avail_bytes), human_bytes(need),
                                         human_bytes(cfg.move.headroom_bytes)));
    // The user's quota limits there (doveadm): asking Dovecot creates the
    // user's home on the destination, so a dry run (which writes nothing)
    // leaves it out, like the clock probe.
    if (d_.quota && !c.to->doveadm_url.empty() && !c.progress.empty_source) {
      if (options.dry_run) {
        spdlog::info("move {}: dry run: {}'s quota limit is not checked (doveadm quota get would create the home "
                     "there)",
                     printable(c.rec.user), c.to->name);
      } else if (via_doveadm(c)) {
        // dbox and mbox keep no file per message: Dovecot's own count on the
        // source (every mailbox's messages and virtual size) is what the
        // quota there will hold.
        auto boxes = MS_TRY_CTX(d_.mailbox_status->mailbox_status(c.rec.user, c.from->name),
                                fmt::format("user {}: the mailbox's size for the quota check", printable(c.rec.user)));
        int64_t bytes = 0, messages = 0;
        for (const auto& b : boxes) {
          messages += std::max<int64_t>(b.messages, 0);
          bytes += std::max<int64_t>(b.vsize, 0);
        }
        if (messages > 0) MS_CHECK(check_destination_quota(c, bytes, messages));
      } else if (size.messages > 0) {
        MS_CHECK(check_destination_quota(c, size.message_bytes, size.messages));
      }
    }
    c.progress.clock_skew_ms = skew;
    return {};
  };
  Status st = checks();
  if (options.dry_run) {
    c.rec.state = MoveState::kDryRun;
    c.rec.step = "preflight";
    c.rec.error = st.ok() ? "" : st.error().message();
    c.rec.detail_json = c.progress.to_json();
    c.rec.finished_at_ms = d_.clock.now_ms();
    c.rec.id = MS_TRY(d_.journal.claim_move(c.rec));
    if (!st.ok()) return st;
    return {};
  }
  if (!st.ok()) {
    (void)d_.journal.log_step(c.rec.id, "preflight", StepPhase::kError, st.error().message());
    c.rec.state = MoveState::kRolledBack;
    c.rec.error = st.error().message();
    c.rec.finished_at_ms = d_.clock.now_ms();
    (void)save(c);
    return st;
  }
  c.rec.state = MoveState::kPrecopy;
  MS_CHECK(save(c));
  MS_CHECK(d_.journal.log_step(c.rec.id, "preflight", StepPhase::kEnd, c.progress.to_json()));
  d_.env.step_boundary("preflight", StepPhase::kEnd);
  return {};
}

// A done move's source copy at the destination path (the user moves back
// before purge): sweep and delete it, so the path is free. Anything else at
// that path is not ours and stops the move.
Result<MoveRecord> MoveRunner::purge_stale_copy(Ctx& c) {
  MoveFilter f;
  f.user = c.rec.user;
  auto moves = MS_TRY(d_.journal.list_moves(f));
  for (const auto& m : moves) {
    if (m.state == MoveState::kDone && m.from_server == c.to->name && m.id != c.rec.id) {
      spdlog::info("move {}: {} still holds the source copy of move {}; purging it first", printable(c.rec.user),
                   c.to->name, m.id);
      return purge(m.id, 0);
    }
  }
  return Error::conflict(fmt::format("{} already has a mailbox at {} that no mailshard move left there; move it "
                                     "aside or remove it first",
                                     c.to->name, printable(c.dst_final)));
}

Status MoveRunner::check_destination_quota(Ctx& c, int64_t message_bytes, int64_t messages) {
  auto roots = d_.quota->quota(c.rec.user, c.to->name);
  // Dovecot opened the user's mail storage to answer, and where the user has
  // no home yet it made one: an empty Maildir with a list index, at the very
  // path the flip renames the copy to. Preflight found nothing there, so
  // what is there now is Dovecot's; it holds no mail and goes.
  auto made = c.dst->list_tree(c.dst_final);
  if (made.ok()) {
    if (!only_dovecot_scaffolding(*made))
      return Error::conflict(fmt::format("{} has mail at {} that appeared during preflight", c.to->name,
                                         printable(c.dst_final)));
    MS_CHECK_CTX(remove_tree(*c.dst, c.dst_final),
                 fmt::format("{}: remove the empty home doveadm quota get created", c.to->name));
  } else if (made.error().code() != ErrorCode::kNotFound) {
    return std::move(made).error().context(c.to->name);
  }
  // The same for the trees outside the home (Dovecot makes index and control
  // directories when it opens the storage).
  for (const auto& t : c.progress.trees) {
    if (t.file) {  // an mbox spool INBOX: Dovecot may have made it, empty
      auto st = MS_TRY_CTX(c.dst->stat({{t.dst, {}}}), c.to->name);
      if (st[0].error) {
        if (st[0].error->code() == ErrorCode::kNotFound) continue;
        return Error(*st[0].error).context(c.to->name);
      }
      if (st[0].attrs.type != EntryType::kFile || st[0].attrs.size != 0)
        return Error::conflict(fmt::format("{} has a {} file at {} that appeared during preflight", c.to->name, t.name,
                                           printable(t.dst)));
      MS_CHECK_CTX(remove_file(*c.dst, t.dst),
                   fmt::format("{}: remove the empty {} file doveadm quota get created", c.to->name, t.name));
      continue;
    }
    auto there = c.dst->list_tree(t.dst);
    if (!there.ok()) {
      if (there.error().code() == ErrorCode::kNotFound) continue;
      return std::move(there).error().context(c.to->name);
    }
    if (!only_dovecot_scaffolding(*there))
      return Error::conflict(fmt::format("{} has files in the {} tree at {} that appeared during preflight",
                                         c.to->name, t.name, printable(t.dst)));
    MS_CHECK_CTX(remove_tree(*c.dst, t.dst),
                 fmt::format("{}: remove the empty {} tree doveadm quota get created", c.to->name, t.name));
  }
  if (!roots.ok()) {
    // No quota there (no plugin): nothing to exceed.
    if (roots.error().code() == ErrorCode::kUnsupported) {
      spdlog::info("move {}: {}", printable(c.rec.user), roots.error().message());
      return {};
    }
    return std::move(roots).error().context(fmt::format("user {}: the quota limit", printable(c.rec.user)));
  }
  c.progress.quota_need_bytes = message_bytes;
  c.progress.quota_need_messages = messages;
  for (const QuotaRoot& q : *roots) {
    if (q.storage_limit_kib >= 0) {
      c.progress.quota_limit_kib =
          std::min(c.progress.quota_limit_kib.value_or(q.storage_limit_kib), q.storage_limit_kib);
      if (message_bytes > q.storage_limit_kib * 1024)
        return Error::no_space(fmt::format("user {} has {} of mail ({} messages) but the quota '{}' on {} allows {}",
                                           printable(c.rec.user), human_bytes(message_bytes), messages,
                                           printable(q.root), c.to->name, human_bytes(q.storage_limit_kib * 1024)));
    }
    if (q.message_limit >= 0) {
      c.progress.quota_message_limit =
          std::min(c.progress.quota_message_limit.value_or(q.message_limit), q.message_limit);
      if (messages > q.message_limit)
        return Error::no_space(fmt::format("user {} has {} messages but the quota '{}' on {} allows {}",
                                           printable(c.rec.user), messages, printable(q.root), c.to->name,
                                           q.message_limit));
    }
  }
  return {};
}

Status MoveRunner::precopy(Ctx& c) {
  c.rec.state = MoveState::kPrecopy;
  if (c.progress.empty_source) return {};
  MS_CHECK(ensure_parents(*c.src, *c.dst, c.dst_staging));
  MS_CHECK(load_state(c));
  SyncEngine engine(*c.src, c.progress.src_home, *c.dst, c.dst_staging, c.sync, d_.clock);
  c.progress.precopy.clear();
  for (int pass = 1; pass <= d_.config.move.precopy_max_passes; ++pass) {
    if (interrupted()) return Error::interrupted(fmt::format("interrupted after precopy pass {}", pass - 1));
    // The second pass also audits everything (lstat + hash on both sides):
    // outside the freeze, where it costs nothing but time.
    bool audit = pass == 2;
    auto stats = engine.warm_pass(c.state, audit);
    if (!stats.ok()) return std::move(stats).error().context(fmt::format("precopy pass {}", pass));
    MS_CHECK(save_state(c));
    c.rec.bytes_transferred += stats->bytes_sent;
    c.progress.precopy.push_back(*stats);
    MS_CHECK(save(c));
    d_.env.progress(c.rec.user, fmt::format("precopy pass {}: {} files, {} sent", pass, stats->files_copied,
                                            human_bytes(stats->bytes_sent)));
    if (pass >= 2 && stats->bytes_sent < d_.config.move.precopy_threshold_bytes) break;
  }
  for (size_t i = 0; i < c.progress.trees.size(); ++i) MS_CHECK(precopy_tree(c, i));
  return {};
}

// Warm passes over one tree outside the home, like the home's.
Status MoveRunner::precopy_tree(Ctx& c, size_t i) {
  ExtraTree& t = c.progress.trees[i];
  if (t.empty_source) return {};
  auto& x = c.extra[i];
  MS_CHECK(ensure_parents(*c.src, *c.dst, x.staging));
  MS_CHECK(load_tree_state(c, i));
  SyncEngine engine(*c.src, engine_src_root(t), *c.dst, x.staging, engine_options(t, c.sync), d_.clock);
  for (int pass = 1; pass <= d_.config.move.precopy_max_passes; ++pass) {
    if (interrupted()) return Error::interrupted(fmt::format("interrupted in the {} tree's precopy", t.name));
    auto stats = engine.warm_pass(x.state, pass == 2);
    if (!stats.ok()) return std::move(stats).error().context(fmt::format("precopy of the {} tree, pass {}", t.name, pass));
    MS_CHECK(save_tree_state(c, i));
    c.rec.bytes_transferred += stats->bytes_sent;
    t.files_copied = t.files_copied.value_or(0) + stats->files_copied;
    MS_CHECK(save(c));
    d_.env.progress(c.rec.user, fmt::format("precopy of the {} tree, pass {}: {} files, {} sent", t.name, pass,
                                            stats->files_copied, human_bytes(stats->bytes_sent)));
    if (pass >= 2 && stats->bytes_sent < d_.config.move.precopy_threshold_bytes) break;
  }
  return {};
}

Status MoveRunner::freeze(Ctx& c) {
  int64_t until = d_.clock.now_ms() + d_.config.freeze.max_duration_ms;
  c.progress.freeze_requested = true;  // from here on, a rollback thaws
  // The freeze names this move, so that no other move (another controller's
  // on another journal) refreshes or lifts it, nor we theirs. Chosen once and
  // journaled before the freeze: a resumed move thaws what it froze.
  if (c.progress.freeze_owner.empty()) c.progress.freeze_owner = freeze_owner_for(c.rec.id);
  if (!valid_freeze_owner(c.progress.freeze_owner))
    return Error::invalid(fmt::format("move {}: the journal's freeze owner '{}' is not [A-Za-z0-9._-]{{1,64}}",
                                      c.rec.id, printable(c.progress.freeze_owner)));
  c.rec.freeze_expires_at_ms = until;
  MS_CHECK(save(c));
  MS_CHECK(d_.freeze.freeze(c.target(), until));
  c.frozen_mono = d_.clock.monotonic_ms();
  c.rec.frozen_at_ms = d_.clock.now_ms();
  c.rec.state = MoveState::kFrozen;
  d_.env.arm_freeze_guard(c.rec.id, until);
  d_.env.progress(c.rec.user, fmt::format("frozen ({}) until {}", d_.freeze.name(), format_time_ms(until)));
  return {};
}

// Files in the source's Maildir tmp/ directories (deliveries in flight).
// Only the tmp/ directories the state knows are listed: listing a 100k-message
// home to look at a dozen tmp/ directories would cost the frozen window ~50 ms.
// A file there untouched for kStaleTmpMs (by this host's clock) is what a
// delivery that died left behind (Dovecot and Courier delete such files after
// 36 hours), not one in flight: waiting for it would roll back every move of
// the user. Were it a delivery after all, the sweep would take its message.
// Courier-IMAP's imapd keeps its own files in tmp/: its lock on the Maildir
// (courier.lock, holding its pid) and the new courierimapuiddb while it
// writes it (<time>.M<usec>P<pid>_imapuid_<n>.<host>). They are no mail
// delivery: an imapd that is still there is a session, which the kick
// counts; one the kick killed leaves them behind, and waiting for them
// rolled the move back after [kick] wait.
static bool courier_imapd_file(const std::string& name) {
  return name == "courier.lock" || name.find("_imapuid_") != std::string::npos;
}

Result<int> MoveRunner::files_in_tmp(Ctx& c) {
  std::vector<std::string> tmp_dirs;
  if (c.state_loaded)
    for (const auto& [dpath, ds] : c.state.dirs)
      if (dpath == "tmp" || ends_with(dpath, "/tmp")) tmp_dirs.push_back(dpath);
  std::vector<StatRequest> files;
  auto collect = [&](const TreeListing& listing, const std::string& prefix) {
    for (const auto& dir : listing) {
      std::string p = join_path(prefix, dir.path);
      if (!(p == "tmp" || ends_with(p, "/tmp"))) continue;
      for (const auto& e : dir.entries)
        if (!starts_with(e.name, kTempPrefix) && !courier_imapd_file(e.name))
          files.push_back({join_path(c.progress.src_home, join_path(p, e.name)), {}});
    }
  };
  if (tmp_dirs.empty()) {
    auto listing = c.src->list_tree(c.progress.src_home);
    if (!listing.ok()) return std::move(listing).error();
    collect(*listing, "");
  }
  for (const auto& t : tmp_dirs) {
    auto listing = c.src->list_tree(join_path(c.progress.src_home, t));
    if (!listing.ok()) {
      if (listing.error().code() == ErrorCode::kNotFound) continue;
      return std::move(listing).error();
    }
    collect(*listing, t);
  }
  if (files.empty()) return 0;
  auto st = c.src->stat(files);
  if (!st.ok()) return std::move(st).error();
  const int64_t stale_before_ns = (d_.clock.now_ms() - kStaleTmpMs) * 1'000'000;
  int n = 0, stale = 0;
  for (const auto& r : *st) {
    if (r.error) {
      if (r.error->code() == ErrorCode::kNotFound) continue;  // delivered (or removed) meanwhile
      return *r.error;
    }
    if (r.attrs.mtime_ns < stale_before_ns) ++stale;
    else ++n;
  }
  if (stale && !c.stale_tmp_logged) {
    c.stale_tmp_logged = true;
    spdlog::info("move {}: not waiting for {} file(s) in tmp/ on {} untouched for over {} (left by deliveries that "
                 "died; they are not copied)",
                 printable(c.rec.user), stale, c.from->name, format_duration_ms(kStaleTmpMs));
  }
  return n;
}

Status MoveRunner::kick(Ctx& c) {
  // Kick, then wait, bounded, until no session is left and no delivery is in
  // flight (a file in a Maildir tmp/). A store that does not answer in time
  // (doveadm busy or restarting: a timeout, a refused connection) is asked
  // again within the same bound, like a session that has not gone yet; any
  // other failure ends the step.
  auto transient = [](const Error& e) {
    return e.code() == ErrorCode::kTimeout || e.code() == ErrorCode::kUnavailable;
  };
  const int64_t deadline = d_.clock.monotonic_ms() + d_.config.kick.wait_ms;
  Status kicked = d_.kicker.kick(c.rec.user, c.from->name);
  if (!kicked.ok() && !transient(kicked.error())) return kicked;
  std::string why;
  while (true) {
    int sessions = 0;
    bool answered = true;
    if (kicked.ok()) {
      auto n = d_.kicker.sessions(c.rec.user, c.from->name);
      if (n.ok()) {
        sessions = *n;
      } else if (transient(n.error())) {
        answered = false;
        why = n.error().message();
      } else if (n.error().code() != ErrorCode::kUnsupported) {
        return std::move(n).error();
      }
    } else {
      answered = false;
      why = kicked.error().message();
    }
    int in_flight = 0;
    if (!c.progress.empty_source) {
      auto n_tmp = files_in_tmp(c);
      if (!n_tmp.ok()) return std::move(n_tmp).error().context(c.from->name);
      in_flight = *n_tmp;
    }
    if (answered && sessions == 0 && in_flight == 0) break;
    if (answered) why = fmt::format("{} session(s) and {} delivery file(s) in tmp/ remain", sessions, in_flight);
    if (d_.clock.monotonic_ms() > deadline)
      return Error::timeout(fmt::format("{} on {} after waiting {}", why, c.from->name,
                                        format_duration_ms(d_.config.kick.wait_ms)));
    if (!answered)
      spdlog::warn("move {}: {} did not answer ({}); asking again until the kick's wait ends", printable(c.rec.user),
                   c.from->name, why);
    if (!kicked.ok() || sessions > 0) {
      kicked = d_.kicker.kick(c.rec.user, c.from->name);
      if (!kicked.ok() && !transient(kicked.error())) return kicked;
    }
    d_.clock.sleep_ms(kDrainPollMs);
  }
  return {};
}

Status MoveRunner::final_sync(Ctx& c) {
  c.rec.state = MoveState::kFinalSync;
  // A delivery may have created the mailbox (or a tree of it) since
  // preflight: copy it then.
  for (size_t i = 0; i < c.progress.trees.size(); ++i) {
    ExtraTree& t = c.progress.trees[i];
    if (!t.empty_source || !MS_TRY(exists(*c.src, t.src))) continue;
    t.empty_source = false;
    MS_CHECK(ensure_parents(*c.src, *c.dst, c.extra[i].staging));
    MS_CHECK(load_tree_state(c, i));
  }
  bool any_tree = false;
  for (const auto& t : c.progress.trees) any_tree |= !t.empty_source;
  if (c.progress.empty_source) {
    auto there = MS_TRY(exists(*c.src, c.progress.src_home));
    if (!there && !any_tree) return {};
    if (there) {
      c.progress.empty_source = false;
      MS_CHECK(ensure_parents(*c.src, *c.dst, c.dst_staging));
      MS_CHECK(load_state(c));
    }
  }
  if (d_.clock.now_ms() + kFreezeSafetyMs > c.rec.freeze_expires_at_ms)
    return Error::timeout("the freeze expires before the final pass could finish; raise [freeze] max_duration");
  auto space = MS_TRY_CTX(space_for(*c.dst, c.dst_final), c.to->name);
  if (space.avail_bytes < d_.config.move.headroom_bytes)
    return Error::no_space(fmt::format("{} has only {} free (headroom {})", c.to->name, human_bytes(space.avail_bytes),
                                       human_bytes(d_.config.move.headroom_bytes)));
  // Dovecot's own view of the source, now that nobody uses it (it also makes
  // Dovecot write its uidlist up to date before the pass copies it).
  // (Not for a Courier mailbox: Dovecot's view of it is not Courier's.)
  // For dbox, every mailbox with its messages' UIDs and GUIDs: the flip
  // compares the destination's view of the copy to it.
  if (via_doveadm(c) && !c.progress.empty_source) {
    c.src_contents =
        MS_TRY_CTX(d_.mailbox_status->mailbox_contents(c.rec.user, c.from->name), fmt::format("user {}", printable(c.rec.user)));
  } else if (d_.mailbox_status && !c.from->doveadm_url.empty() && !c.progress.convert && !c.progress.empty_source) {
    auto st = d_.mailbox_status->mailbox_status(c.rec.user, c.from->name);
    if (!st.ok()) return std::move(st).error();
    c.src_status = std::move(*st);
  }
  // The trees outside the home (the uidlists with CONTROL=), each from its
  // state into its own staging directory.
  for (size_t i = 0; i < c.progress.trees.size(); ++i) {
    ExtraTree& t = c.progress.trees[i];
    if (t.empty_source) continue;
    MS_CHECK(load_tree_state(c, i));
    SyncEngine engine(*c.src, engine_src_root(t), *c.dst, c.extra[i].staging, engine_options(t, c.sync), d_.clock);
    auto stats = engine.final_pass(c.extra[i].state);
    if (!stats.ok())
      return std::move(stats).error().context(fmt::format("user {}: the {} tree", printable(c.rec.user), t.name));
    c.rec.bytes_transferred += stats->bytes_sent;
    t.files_copied = t.files_copied.value_or(0) + stats->files_copied;
  }
  if (c.progress.empty_source) return {};
  MS_CHECK(load_state(c));
  SyncEngine engine(*c.src, c.progress.src_home, *c.dst, c.dst_staging, c.sync, d_.clock);
  auto stats = engine.final_pass(c.state);
  if (!stats.ok()) return std::move(stats).error().context(fmt::format("user {}", printable(c.rec.user)));
  // The state is journaled after the thaw (sweep), outside the frozen
  // window: a crash before the flip rolls back without it, and a sweep from
  // the last warm pass's state only finds more candidates, which
  // deliver_late recognises as already copied.
  c.rec.bytes_transferred += stats->bytes_sent;
  c.progress.final_pass = *stats;
  d_.env.progress(c.rec.user, fmt::format("final pass: {} files, {} renames, {} sent in {:.2f}s",
                                          stats->files_copied, stats->renames, human_bytes(stats->bytes_sent),
                                          stats->seconds));
  return {};
}

// The copy's dovecot.index.cache in each folder whose index files changed on
// the source while the frozen pass copied them (VerifyReport::
// changed_index_dirs: an MTA or a session ignored the freeze). An index and a
// cache copied at two moments of one write may not belong together: Dovecot
// would then show another message's cached headers for a UID. Without the
// cache Dovecot rebuilds it; UIDs, flags and keywords are not in it.
static Status drop_stale_caches(Transport& dst, const std::string& staging, const std::vector<std::string>& dirs,
                                const std::string& user, MoveEnvironment& env) {
  if (dirs.empty()) return {};
  std::vector<TreeOp> ops;
  for (const auto& d : dirs) {
    TreeOp unlink;
    unlink.kind = TreeOp::Kind::kUnlink;
    unlink.path = join_path(join_path(staging, d), "dovecot.index.cache");
    ops.push_back(std::move(unlink));
    TreeOp sync;
    sync.kind = TreeOp::Kind::kSyncDir;
    sync.path = join_path(staging, d);
    ops.push_back(std::move(sync));
  }
  auto res = MS_TRY(dst.apply(ops).context(dst.describe()));
  for (size_t i = 0; i < res.size(); ++i)
    if (!res[i].ok() && res[i].error().code() != ErrorCode::kNotFound)
      return Error(res[i].error()).context(fmt::format("drop the copy's cache '{}'", printable(ops[i].path)));
  std::vector<std::string> shown;
  for (const auto& d : dirs) shown.push_back(d.empty() ? "(the top folder)" : "'" + printable(d) + "'");
  spdlog::warn("move {}: Dovecot's index files changed on the source during the frozen pass (an MTA or a session "
               "ignores the freeze); the copy's dovecot.index.cache of {} is dropped, and Dovecot rebuilds it",
               printable(user), join(shown, ", "));
  env.progress(user, fmt::format("dropped the copied cache of {} folder{}: written on the source under the freeze",
                                 dirs.size(), dirs.size() == 1 ? "" : "s"));
  return {};
}

Status MoveRunner::verify(Ctx& c) {
  if (!c.progress.empty_source && c.progress.convert) {
    MS_CHECK(verify_converted(c));
  } else if (!c.progress.empty_source) {
    MS_CHECK(load_state(c));
    SyncEngine engine(*c.src, c.progress.src_home, *c.dst, c.dst_staging, c.sync, d_.clock);
    auto report = engine.verify_frozen_copy(c.state);
    if (!report.ok()) return std::move(report).error();
    MS_CHECK(drop_stale_caches(*c.dst, c.dst_staging, report->changed_index_dirs, c.rec.user, d_.env));
    c.progress.verify = *report;
    c.progress.verify->changed_index_dirs.clear();  // not journaled
  }
  // Each tree outside the home the same way (with CONTROL= the uidlists are there).
  for (size_t i = 0; i < c.progress.trees.size(); ++i) {
    ExtraTree& t = c.progress.trees[i];
    if (t.empty_source) continue;
    MS_CHECK(load_tree_state(c, i));
    SyncEngine engine(*c.src, engine_src_root(t), *c.dst, c.extra[i].staging, engine_options(t, c.sync), d_.clock);
    auto report = engine.verify_frozen_copy(c.extra[i].state);
    if (!report.ok()) return std::move(report).error().context(fmt::format("the {} tree", t.name));
    MS_CHECK(drop_stale_caches(*c.dst, c.extra[i].staging, report->changed_index_dirs, c.rec.user, d_.env));
    t.uidlists_checked = report->uidlists_checked;
  }
  if (!c.progress.empty_source && !c.progress.convert) MS_CHECK(compare_mailbox_status(c));
  c.rec.state = MoveState::kVerified;
  return {};
}

// doveadm's view of the source, taken under the freeze right before the
// final pass, against a read-only reading of the destination copy: its copied
// uidlist headers (UIDVALIDITY) and the message files the copy holds per
// folder. Mailboxes are matched by UIDVALIDITY (unique per mailbox),
// so no mailbox-name to folder-name mapping is needed. After the kick the
// source only grows (an MTA that ignores the freeze), so the copy may be
// ahead of the status, never behind it.
Status MoveRunner::compare_mailbox_status(Ctx& c) {
  if (!c.src_status) return {};
  // Per folder of the copy: messages, and the uidlist's path.
  std::map<std::string, int64_t> messages;  // folder path -> message files
  std::vector<std::string> uidlists;        // paths relative to the home
  for (const auto& [dpath, ds] : c.state.dirs) {
    std::string_view last = std::string_view(dpath).substr(dpath.rfind('/') + 1);
    if (last == "cur" || last == "new") {
      // Counted per directory: a 100k-message home is 100k entries here.
      int64_t n = 0;
      for (const auto& [name, e] : ds.entries) n += e.type == EntryType::kFile;
      messages[dirname_of(dpath)] += n;
      continue;
    }
    if (auto it = ds.entries.find("dovecot-uidlist"); it != ds.entries.end() && it->second.type == EntryType::kFile)
      uidlists.push_back(join_path(dpath, it->first));
  }
  std::vector<std::string> paths;
  for (const auto& u : uidlists) paths.push_back(join_path(c.dst_staging, u));
  // With CONTROL= (or INDEX=) elsewhere, a tree outside the home holds the
  // uidlists, laid out like the Maildir++ folders: its ".x/dovecot-uidlist"
  // is the uidlist of the home's "<maildir>/.x", and the INBOX's is in
  // ".INBOX/" (Dovecot 2.3; at the top in older ones).
  const std::string maildir = c.from_location().maildir;
  for (size_t i = 0; i < c.progress.trees.size(); ++i) {
    if (c.progress.trees[i].empty_source || !c.extra[i].state_loaded) continue;
    for (const auto& [dpath, ds] : c.extra[i].state.dirs)
      if (auto it = ds.entries.find("dovecot-uidlist"); it != ds.entries.end() && it->second.type == EntryType::kFile) {
        const std::string folder = dpath.empty() || dpath == ".INBOX" ? maildir : join_path(maildir, dpath);
        uidlists.push_back(join_path(folder, it->first));
        paths.push_back(join_path(c.extra[i].staging, join_path(dpath, it->first)));
      }
  }
  auto heads = c.dst->head(paths, 256);
  if (!heads.ok()) return std::move(heads).error().context("read the copied uidlists");
  struct Copied {
    std::string folder;
    int64_t messages = 0;
  };
  std::map<int64_t, std::vector<Copied>> by_validity;
  for (size_t i = 0; i < uidlists.size(); ++i) {
    if (!(*heads)[i].ok()) continue;
    // "3 V<uidvalidity> N<next uid> G<guid>"
    int64_t v = -1;
    for (const auto& tok : split(std::string((*heads)[i]->substr(0, (*heads)[i]->find('\n'))), ' '))
      if (tok.size() > 1 && tok[0] == 'V') v = parse_int(tok.substr(1)).value_or(-1);
    std::string folder = dirname_of(uidlists[i]);
    if (v >= 0) by_validity[v].push_back({folder, messages[folder]});
  }
  std::vector<std::string> diffs;
  for (const auto& m : *c.src_status) {
    auto it = by_validity.find(m.uidvalidity);
    if (it == by_validity.end()) {
      if (m.messages > 0) diffs.push_back(fmt::format("{}: UIDVALIDITY {} is in no copied uidlist", m.mailbox, m.uidvalidity));
      continue;
    }
    if (it->second.size() != 1) continue;  // a shared UIDVALIDITY (restored backups): no match to check
    const Copied& d = it->second.front();
    // UIDNEXT needs no check here: the copied uidlist and index are
    // byte-identical to the source's (verify_frozen_copy hashed them), and
    // Dovecot derives UIDNEXT from them (the header's N may lag the last line).
    if (d.messages < m.messages)
      diffs.push_back(fmt::format("{}: {} messages on {} but {} in the copy", m.mailbox, m.messages, c.from->name,
                                  d.messages));
  }
  if (!diffs.empty())
    return Error::verify_failed(fmt::format("doveadm mailbox status differs: {}{}", diffs.front(),
                                            diffs.size() > 1 ? fmt::format(" (and {} more)", diffs.size() - 1) : ""));
  c.progress.doveadm_mailboxes_compared = static_cast<int64_t>(c.src_status->size());
  return {};
}

bool MoveRunner::via_doveadm(const Ctx& c) const {
  return c.from && moved_through_doveadm(c.from_location().format);
}

// dbox keeps a "dbox-alt-root" symlink to the ALT path it was configured
// with, and the copy carries the source's. Pointed at the destination's alt
// tree here, as Dovecot itself would do at the first access (with a warning
// that ALT changed). A link naming anything but the source's alt tree is
// left alone. Idempotent.
Status MoveRunner::retarget_alt_root(Ctx& c) {
  for (const auto& t : c.progress.trees) {
    if (t.empty_source || t.name.find("alt") == std::string::npos) continue;
    const std::string link = join_path(join_path(c.dst_final, c.to_location().maildir), "dbox-alt-root");
    auto st = MS_TRY_CTX(c.dst->stat({{link, {}}}), c.to->name);
    if (st[0].error || st[0].attrs.type != EntryType::kSymlink) return {};
    const std::string want = join_path(c.to->mail_root, t.dst);
    if (st[0].link_target == want || st[0].link_target != join_path(c.from->mail_root, t.src)) return {};
    TreeOp op;
    op.kind = TreeOp::Kind::kSymlink;
    op.path = link;
    op.from = want;
    op.attrs = st[0].attrs;
    op.attr_mask = TreeOp::kOwner | TreeOp::kMtime;
    auto res = MS_TRY_CTX(c.dst->apply({op}), c.to->name);
    if (!res[0].ok())
      return Error(res[0].error()).context(fmt::format("{}: point '{}' at the alt tree", c.to->name, printable(link)));
  }
  return {};
}

Status MoveRunner::check_destination_contents(Ctx& c) {
  if (!c.src_contents) {
    // Only a flip that did not follow this process's final pass gets here
    // (resume never re-runs a flip before the commit point; it rolls back).
    return Error::verify_failed(fmt::format("user {}: no doveadm view of the source under the freeze to compare the "
                                            "copy with; not flipping",
                                            printable(c.rec.user)));
  }
  auto dst = d_.mailbox_status->mailbox_contents(c.rec.user, c.to->name);
  if (!dst.ok()) return std::move(dst).error().context(fmt::format("user {}: verify the copy on {}", printable(c.rec.user), c.to->name));
  const std::vector<std::string> diffs = compare_mailbox_contents(*c.src_contents, *dst);
  if (!diffs.empty())
    return Error::verify_failed(fmt::format("user {}: doveadm on {} sees the copy differently from {} under the "
                                            "freeze: {}{}",
                                            printable(c.rec.user), c.to->name, c.from->name, diffs.front(),
                                            diffs.size() > 1 ? fmt::format(" (and {} more)", diffs.size() - 1) : ""));
  c.progress.doveadm_mailboxes_compared = static_cast<int64_t>(c.src_contents->size());
  c.progress.doveadm_messages_compared = count_messages(*c.src_contents);
  // What the sweep counts as late mail (movers/dbox_sweep.cc): journaled
  // before the LDAP modify, so every flipped move has it.
  MS_CHECK(save_dbox_frozen(c));
  MS_CHECK(save(c));
  d_.env.progress(c.rec.user, fmt::format("doveadm on {}: {} mailboxes, {} messages as on {}", c.to->name,
                                          c.src_contents->size(), count_messages(*c.src_contents), c.from->name));
  return {};
}

// The flip's first half for one tree: its staging copy takes its path on
// the destination (renamed and the parent synced). Idempotent: a copy
// already in place (staging gone, final there) is success.
static Status rename_into_place(Transport& dst, const std::string& server, const std::string& what,
                                const std::string& staging_path, const std::string& final_path) {
  bool staging = MS_TRY(exists(dst, staging_path));
  bool final_there = MS_TRY(exists(dst, final_path));
  if (staging) {
    if (final_there)
      return Error::conflict(fmt::format("{} has {} at {} that appeared during the move", server, what,
                                         printable(final_path)));
    TreeOp op;
    op.kind = TreeOp::Kind::kRename;
    op.from = staging_path;
    op.path = final_path;
    TreeOp sync;
    sync.kind = TreeOp::Kind::kSyncDir;
    sync.path = dirname_of(final_path);
    auto res = dst.apply({op, sync});
    if (!res.ok()) return std::move(res).error();
    for (auto& r : *res)
      if (!r.ok()) return r.error();
  } else if (!final_there) {
    return Error::not_found(fmt::format("the copy on {} is gone (neither {} nor {} exists)", server,
                                        printable(staging_path), printable(final_path)));
  }
  return {};
}

// The same for a tree of one file (an mbox spool INBOX), whose final name
// is in a directory of other users' files: the file is placed without ever
// replacing one there (TreeOp::kPlace; rename() would replace a spool that
// appeared after the check). A place cut short between its link and its
// unlink (filesystems without RENAME_NOREPLACE) left both names on one
// inode: the staging name then goes.
static Status place_file(Transport& dst, const std::string& server, const std::string& what,
                         const std::string& staging_path, const std::string& final_path) {
  auto st = MS_TRY(dst.stat({{staging_path, {}}, {final_path, {}}}));
  for (const auto& r : st)
    if (r.error && r.error->code() != ErrorCode::kNotFound) return *r.error;
  const bool staging = !st[0].error, final_there = !st[1].error;
  TreeOp sync;
  sync.kind = TreeOp::Kind::kSyncDir;
  sync.path = dirname_of(final_path);
  TreeOp op;
  if (staging && final_there) {
    if (!same_file(st[0], st[1]))
      return Error::conflict(fmt::format("{} has {} at {} that appeared during the move", server, what,
                                         printable(final_path)));
    op.kind = TreeOp::Kind::kUnlink;
    op.path = staging_path;
  } else if (staging) {
    op.kind = TreeOp::Kind::kPlace;
    op.from = staging_path;
    op.path = final_path;
  } else if (final_there) {
    return {};
  } else {
    return Error::not_found(fmt::format("the copy on {} is gone (neither {} nor {} exists)", server,
                                        printable(staging_path), printable(final_path)));
  }
  auto res = MS_TRY(dst.apply({op, sync}));
  if (!res[0].ok() && res[0].error().code() == ErrorCode::kConflict)
    return Error::conflict(fmt::format("{} has {} at {} that appeared during the move", server, what,
                                       printable(final_path)));
  for (auto& r : res)
    if (!r.ok()) return r.error();
  return {};
}

Status MoveRunner::flip(Ctx& c) {
  // 1. The copies take their paths on the destination: the trees outside
  //    the home first, the home last (each journaled as renamed once it is
  //    in place, so a rollback knows what to remove). Before the flip
  //    nobody is routed there, and the freeze holds the user.
  for (size_t i = 0; i < c.progress.trees.size(); ++i) {
    ExtraTree& t = c.progress.trees[i];
    if (t.empty_source || t.renamed) continue;
    if (t.file) {
      // The file leaves its staging directory for its name in a directory
      // of other users' files, then the (empty) staging directory goes.
      MS_CHECK(place_file(*c.dst, c.to->name, "a " + t.name + " file", file_in_staging(t, c.extra[i].staging), t.dst));
      t.renamed = true;
      MS_CHECK(save(c));
      MS_CHECK_CTX(remove_tree(*c.dst, c.extra[i].staging), c.to->name);
      continue;
    }
    MS_CHECK(rename_into_place(*c.dst, c.to->name, "a " + t.name + " tree", c.extra[i].staging, t.dst));
    t.renamed = true;
    MS_CHECK(save(c));
  }
  if (!c.progress.empty_source) {
    MS_CHECK(rename_into_place(*c.dst, c.to->name, "a mailbox", c.dst_staging, c.dst_final));
    c.progress.renamed = true;
    MS_CHECK(save(c));
  }
  // 2. sdbox/mdbox: the destination's Dovecot must see what the source's saw
  //    under the freeze (mailboxes, UIDVALIDITY, UIDs, GUIDs). It can only
  //    look once the copy is at its path; a difference rolls back like any
  //    failure before the commit point (the renamed trees are removed once
  //    LDAP confirms the user was not flipped).
  if (via_doveadm(c) && !c.progress.empty_source) {
    MS_CHECK(retarget_alt_root(c));
    MS_CHECK(check_destination_contents(c));
  }
  // 3. The commit point: one LDAP modify, guarded by an assertion on what we
  //    expect (host, home, and the freeze still holding).
  if (d_.clock.now_ms() + kFreezeSafetyMs > c.rec.freeze_expires_at_ms && c.progress.freeze_requested)
    return Error::timeout("the freeze is about to expire; not flipping");
  FlipExpectation expected{c.from->name, c.rec.from_home, d_.freeze.flip_assertion(c.target(), c.rec.freeze_expires_at_ms)};
  Status st = d_.directory.flip(c.rec.dn, expected, c.to->name, c.progress.new_home);
  if (!st.ok() && (st.error().code() == ErrorCode::kUnavailable || st.error().code() == ErrorCode::kTimeout)) {
    // Unknown outcome: read back what LDAP holds.
    auto now = d_.directory.find_account(c.rec.user);
    if (now.ok() && now->host == c.to->name) st = {};
    else if (!now.ok()) c.flip_unknown = true;
  }
  if (!st.ok()) return st;
  c.rec.state = MoveState::kFlipped;
  c.rec.flipped_at_ms = d_.clock.now_ms();
  d_.env.progress(c.rec.user, fmt::format("flipped {} -> {}", c.from->name, c.to->name));
  return {};
}

Status MoveRunner::thaw(Ctx& c) {
  Status st;
  for (int attempt = 1; attempt <= kThawAttempts; ++attempt) {
    st = d_.freeze.thaw(c.target());
    if (st.ok()) break;
    spdlog::warn("thaw {}: attempt {}: {}", printable(c.rec.user), attempt, st.error().message());
    if (attempt < kThawAttempts) d_.clock.sleep_ms(1000);
  }
  if (!st.ok()) return st;
  c.rec.thawed_at_ms = d_.clock.now_ms();
  if (c.frozen_mono >= 0) c.rec.lockout_ms = d_.clock.monotonic_ms() - c.frozen_mono;
  else if (c.rec.frozen_at_ms > 0) c.rec.lockout_ms = c.rec.thawed_at_ms - c.rec.frozen_at_ms;
  if (c.rec.state == MoveState::kFlipped) c.rec.state = MoveState::kThawed;
  if (c.rec.lockout_ms >= 0)
    d_.env.progress(c.rec.user, fmt::format("thawed; lockout {}", format_duration_ms(c.rec.lockout_ms)));
  return {};
}

// Copies the source's late deliveries (not in the final-pass state, not
// swept before) into the same folder on the destination, with their flags
// (SyncEngine::deliver_late). The names already swept are
// kept in the journal, so a later sweep (resume, purge) never re-delivers a
// message the user has deleted since.
Status MoveRunner::sweep_into(Ctx& c, Transport& dst, const std::string& dst_home, int64_t& swept) {
  MS_CHECK(load_state(c));
  std::set<std::string> done;
  auto blob = MS_TRY(d_.journal.get_blob(c.rec.id, "swept"));
  if (blob)
    for (auto& line : split(*blob, '\n'))
      if (!line.empty()) done.insert(line);
  SyncEngine engine(*c.src, c.progress.src_home, dst, dst_home, &dst == c.dst ? c.sync : d_.sync_options, d_.clock);
  if (c.progress.convert) {
    auto layout = conversion_layout(c.to_location());
    if (!layout.ok()) return std::move(layout).error().context(fmt::format("sweep into {}", c.to->name));
    engine.set_dst_folder_namer(converted_folder_namer(c.progress.convert_maildir.value_or(""), *layout));
  }
  auto late = engine.late_deliveries(c.state);
  if (!late.ok()) return std::move(late).error();
  for (const auto& rel : *late) {
    // Folder + base name: the same message whether it sits in new/ or cur/.
    std::string dir = dirname_of(rel);
    std::string key = dirname_of(dir) + "|" + std::string(message_base(rel.substr(dir.empty() ? 0 : dir.size() + 1)));
    if (done.count(key)) continue;
    auto delivered = MS_TRY(engine.deliver_late(rel));
    if (!delivered.dropped_keywords.empty())
      spdlog::warn("move {}: late message '{}' reaches {} without keyword(s) {}: the destination's "
                   "dovecot-keywords does not name them (its flags are kept)",
                   printable(c.rec.user), printable(rel), dst.describe(), join(delivered.dropped_keywords, ", "));
    done.insert(key);
    MS_CHECK(d_.journal.put_blob(c.rec.id, "swept", join(std::vector<std::string>(done.begin(), done.end()), "\n")));
    ++swept;
  }
  return {};
}

Status MoveRunner::sweep(Ctx& c) {
  if (c.state_loaded) MS_CHECK(save_state(c));  // the final pass's state (see final_sync)
  int64_t swept = 0;
  c.swept_source = MS_TRY(exists(*c.src, c.progress.src_home));
  if (c.swept_source && via_doveadm(c)) MS_CHECK(sweep_dbox(c, *c.to, *c.dst, c.dst_final, swept));
  else if (c.swept_source) MS_CHECK(sweep_into(c, *c.dst, c.dst_final, swept));
  c.last_swept = swept;
  if (swept) c.quota_current = false;
  c.progress.swept = c.progress.swept.value_or(0) + swept;
  c.rec.state = MoveState::kSwept;
  if (swept) d_.env.progress(c.rec.user, fmt::format("swept {} late deliveries", swept));
  return {};
}

bool MoveRunner::settle_again(Ctx& c) {
  // Stragglers: a delivery routed to the source just before the flip can
  // land there just after the first sweep. Sweep again after a pause, and
  // again while a round still finds mail (at most 3 rounds); purge sweeps last.
  if (d_.config.move.sweep_settle_ms <= 0 || !c.swept_source) return false;
  if (c.settle_rounds > 0 && (c.last_swept == 0 || c.settle_rounds >= 3)) return false;
  ++c.settle_rounds;
  return true;
}

int64_t MoveRunner::settle_wake_ms(const Ctx& c) const {
  // Nothing is routed to the source after the flip's modify (flipped_at is
  // read after LDAP answered it), so the first round's pause counts from
  // the flip: a delivery routed just before it has had sweep_settle to
  // land. A later round runs because the round before it still found mail:
  // a whole pause after that sweep.
  const int64_t now = d_.clock.now_ms();
  if (c.settle_rounds == 1 && c.rec.flipped_at_ms > 0)
    return std::max(now, c.rec.flipped_at_ms + d_.config.move.sweep_settle_ms);
  return now + d_.config.move.sweep_settle_ms;
}

Result<int64_t> MoveRunner::begin_settle_pause(Ctx& c) {
  const int64_t wake = settle_wake_ms(c);
  // The quota recount does not wait for the pause: it runs in it, and again
  // after the last sweep only if a later sweep carried mail over. Journaled
  // as the quota_recalc step; the move's state stays kSwept, so a move that
  // stops in the pause is resumed with its settle round and recount.
  if (!c.quota_current)
    MS_CHECK(step(c, std::string(protocol_step(StepId::kQuotaRecalc).name), [&]() -> Status {
      recount_quota(c);
      return {};
    }));
  return wake;
}

// The final pass and the sweep wrote mail behind the destination Dovecot's
// back, so its quota bookkeeping (the count backend's index totals, a
// Maildir++ maildirsize copied from the source before the late mail) is
// stale until recounted. Quota is advisory and the mail is safe by now: a
// failure is a warning and recorded, and the move completes.
Status MoveRunner::quota_recalc(Ctx& c) {
  // Recounted in the settle pause and no sweep carried mail over since:
  // the count stands.
  if (!c.quota_current) recount_quota(c);
  c.rec.state = MoveState::kQuotaRecalc;
  return {};
}

void MoveRunner::recount_quota(Ctx& c) {
  c.progress.quota_recalc_error.reset();
  if (!d_.quota || c.to->doveadm_url.empty()) {
    c.progress.quota_recalc = QuotaRecalc::kSkipped;
    c.progress.quota_recalc_error = fmt::format("{} has no doveadm_url", c.to->name);
  } else if (Status st = d_.quota->recalc_quota(c.rec.user, c.to->name); !st.ok()) {
    const bool unsupported = st.error().code() == ErrorCode::kUnsupported;
    c.progress.quota_recalc = unsupported ? QuotaRecalc::kSkipped : QuotaRecalc::kFailed;
    c.progress.quota_recalc_error = st.error().message();
    if (!unsupported)
      spdlog::warn("move {}: {} (the mail is in place; run 'doveadm quota recalc -u {}' on {})", printable(c.rec.user),
                   st.error().message(), printable(c.rec.user), c.to->name);
  } else {
    c.progress.quota_recalc = QuotaRecalc::kDone;
    auto roots = d_.quota->quota(c.rec.user, c.to->name);
    if (roots.ok() && !roots->empty()) {
      c.progress.quota_storage_kib = roots->front().storage_kib;
      c.progress.quota_messages = roots->front().messages;
      d_.env.progress(c.rec.user, fmt::format("quota on {} recalculated: {} KiB, {} messages", c.to->name,
                                              roots->front().storage_kib, roots->front().messages));
    } else if (!roots.ok()) {
      spdlog::warn("move {}: quota recalculated on {}, but reading it back failed: {}", printable(c.rec.user),
                   c.to->name, roots.error().message());
    }
  }
  // A failed recount is tried again by the quota_recalc step.
  c.quota_current = c.progress.quota_recalc != QuotaRecalc::kFailed;
}

Status MoveRunner::finish(Ctx& c) {
  c.rec.state = MoveState::kDone;
  c.rec.finished_at_ms = d_.clock.now_ms();
  c.rec.error.clear();
  return {};
}

}  // namespace mailshard
