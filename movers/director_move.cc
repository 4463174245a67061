#include "movers/director_move.h"

#include <memory>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/freeze_value.h"
#include "movers/move_progress.h"
#include "movers/move_runner_internal.h"
#include "util/strings.h"

namespace mailshard {

namespace {
// The director refuses a second move of a user it is still moving ("User is already being
// moved", a temporary failure) until the old backend let go; a resumed move can meet that.
constexpr int kMoveAttempts = 20;
constexpr int64_t kMoveRetryMs = 500;
}  // namespace

bool is_director_move(const MoveRecord& m) {
  auto p = MoveProgress::parse(m.detail_json);
  return p.ok() && p->director.has_value();
}

struct DirectorMove::Ctx {
  MoveRecord rec;
  MoveProgress progress;  // progress.director is always set
  const ServerConfig* from = nullptr;
  const ServerConfig* to = nullptr;
  std::unique_ptr<MoveLease> lease;
};

// The journal's record of a director move; kCorrupt when it cannot be read
// or is not a director move's (resume and abort then touch nothing).
Status DirectorMove::load_progress(Ctx& c) {
  auto p = MoveProgress::parse(c.rec.detail_json);
  if (!p.ok()) return std::move(p).error().context(fmt::format("move {}", c.rec.id));
  if (!p->director) return Error::corrupt(fmt::format("move {}: the journal's record is not a director move's", c.rec.id));
  c.progress = std::move(*p);
  return {};
}

Status DirectorMove::save(Ctx& c) {
  c.rec.detail_json = c.progress.to_json();
  c.rec.updated_at_ms = d_.clock.now_ms();
  return d_.journal.update_move(c.rec);
}

// The shared journaled step (move_runner_internal.h); its end carries the progress.
template <typename F>
Status DirectorMove::step(Ctx& c, const std::string& name, F&& fn) {
  return journaled_step(d_.journal, d_.env, c.rec, name, [&] { return save(c); }, std::forward<F>(fn),
                        [&] { return c.progress.to_json(); });
}

Result<MoveRecord> DirectorMove::move(const std::string& user, const std::string& to, const MoveOptions& options) {
  const Config& cfg = d_.config;
  Ctx c;
  c.rec.user = user;
  c.rec.to_server = to;
  c.rec.plan_id = options.plan_id;
  c.rec.bytes_planned = options.bytes_planned;
  c.rec.started_at_ms = d_.clock.now_ms();

  // What needs no server: the names, the user's entry, the storage group.
  std::vector<std::string> names;
  for (const auto& s : cfg.servers) names.push_back(s.name);
  c.to = cfg.find_server(to);
  if (!c.to)
    return Error::invalid(fmt::format("unknown server '{}' (configured: {})", printable(to), join(names, ", ")));
  auto account = d_.directory.find_account(user);
  if (!account.ok()) {
    if (account.error().code() == ErrorCode::kNotFound)
      return Error::invalid(fmt::format("unknown user '{}': {}", printable(user), account.error().message()));
    return std::move(account).error().context(fmt::format("user {}", printable(user)));
  }
  c.from = cfg.find_server(account->host);
  if (!c.from) return Error::invalid(fmt::format("user {} is on unknown server '{}'", printable(user), account->host));
  if (!options.expected_from.empty() && c.from->name != options.expected_from)
    return Error::conflict(fmt::format("user {} is on {} now, not on {} as planned", printable(user), c.from->name,
                                       options.expected_from));
  if (c.from == c.to) return Error::invalid(fmt::format("user {} is already on {}", printable(user), c.to->name));
  if (!cfg.same_storage_group(c.from->name, c.to->name)) {
    auto group = [](const ServerConfig* s) {
      return s->storage_group.empty() ? std::string("no storage group")
                                      : fmt::format("storage group '{}'", s->storage_group);
    };
    return Error::invalid(fmt::format(
        "user {} is on {} ({}) and {} is in {}: with [router] method = \"director\" a user moves only inside its "
        "storage group (the director routes by its own hash, not by mailHost)",
        printable(user), c.from->name, group(c.from), c.to->name, group(c.to)));
  }
  if (options.refuse_frozen && cfg.freeze.method == FreezeMethod::kLdapAttribute &&
      read_freeze_value(cfg.freeze, account->status, d_.clock.now_ms()).state == FreezeState::kFrozen)
    return Error::conflict(fmt::format("user {} is frozen ({}={}): someone else holds it", printable(user),
                                       cfg.freeze.attribute, printable(account->status)));
  if (c.to->draining) return Error::invalid(fmt::format("server {} is draining; it receives no users", c.to->name));

  c.rec.dn = account->dn;
  c.rec.from_server = c.from->name;
  c.rec.from_home = account->home;
  if (!account->home.empty() && account->home.front() == '/')
    c.progress.new_home = c.to->mail_root + "/" + account->home_rel;
  c.rec.to_home = c.progress.new_home.value_or(account->home);
  c.progress.src_home = account->home_rel;
  DirectorProgress& dp = c.progress.director.emplace();
  dp.storage_group = c.to->storage_group;
  dp.from_host = c.from->director_host;
  dp.to_host = c.to->director_host;

  if (options.dry_run) {
    MoveFilter f;
    f.user = user;
    f.active_only = true;
    auto active = MS_TRY(d_.journal.list_moves(f));
    if (!active.empty())
      return Error::conflict(fmt::format("user {} is already being moved (move {}, state {})", printable(user),
                                         active.front().id, move_state_name(active.front().state)));
  } else {
    c.rec.state = MoveState::kPlanned;
    c.rec.step = "preflight";
    c.rec.detail_json = c.progress.to_json();
    c.rec.id = MS_TRY(options.claim ? options.claim(d_.journal, c.rec) : d_.journal.claim_move(c.rec));
    c.lease = MS_TRY(d_.journal.lease_move(c.rec.id));
    MS_CHECK(check_claim_still_ours(d_.journal, c.rec.id));
    MS_CHECK(d_.journal.log_step(c.rec.id, "preflight", StepPhase::kBegin, ""));
    d_.env.step_boundary("preflight", StepPhase::kBegin);
  }

  // The director must know both backends, and says where the user is now.
  auto checks = [&]() -> Status {
    auto backends = MS_TRY(d_.director.backends());
    std::vector<std::string> known;
    for (const auto& b : backends) known.push_back(b.host);
    for (const ServerConfig* s : {c.from, c.to}) {
      bool found = false;
      for (const auto& k : known) found |= k == s->director_host;
      if (!found)
        return Error::invalid(fmt::format("{} does not know server {} (director_host {}); it knows: {}",
                                            d_.director.describe(), s->name, s->director_host,
                                            known.empty() ? std::string("no backend") : join(known, ", ")));
    }
    auto status = MS_TRY(d_.director.user_status(user));
    c.progress.director->before = status.current;
    c.progress.director->hashed = status.hashed;
    if (!status.current.empty() && status.current != c.from->director_host && status.current != c.to->director_host)
      spdlog::warn("move {}: the director maps the user to {}, neither {} ({}) nor {} ({})", printable(user),
                   status.current, c.from->name, c.from->director_host, c.to->name, c.to->director_host);
    return {};
  };
  Status st = checks();
  if (options.dry_run) {
    c.rec.state = MoveState::kDryRun;
    c.rec.error = st.ok() ? "" : st.error().message();
    c.rec.detail_json = c.progress.to_json();
    c.rec.finished_at_ms = d_.clock.now_ms();
    c.rec.id = MS_TRY(d_.journal.claim_move(c.rec));
    if (!st.ok()) return st.error();
    return c.rec;
  }
  if (!st.ok()) {
    (void)d_.journal.log_step(c.rec.id, "preflight", StepPhase::kError, st.error().message());
    c.rec.state = MoveState::kRolledBack;
    c.rec.error = st.error().message();
    c.rec.finished_at_ms = d_.clock.now_ms();
    (void)save(c);
    return st.error();
  }
  MS_CHECK(save(c));
  MS_CHECK(d_.journal.log_step(c.rec.id, "preflight", StepPhase::kEnd, c.progress.to_json()));
  d_.env.step_boundary("preflight", StepPhase::kEnd);
  return run_from(c);
}

Status DirectorMove::director_move(Ctx& c) {
  const std::string& host = c.to->director_host;
  auto now = MS_TRY(d_.director.user_status(c.rec.user));
  if (now.current == host) {
    c.progress.director->moved = false;  // already there (a resumed move, or the user's own mapping)
    return {};
  }
  const int64_t t0 = d_.clock.monotonic_ms();
  Status moved;
  for (int attempt = 1; attempt <= kMoveAttempts; ++attempt) {
    moved = d_.director.move(c.rec.user, host);
    if (moved.ok() || moved.error().code() != ErrorCode::kUnavailable) break;
    if (attempt < kMoveAttempts) d_.clock.sleep_ms(kMoveRetryMs);
  }
  MS_CHECK(moved);
  // Read back: the director must route the user's next login to the destination.
  auto after = MS_TRY(d_.director.user_status(c.rec.user));
  if (after.current != host)
    return Error::unavailable(fmt::format("{} still maps {} to '{}' after moving it to {}", d_.director.describe(),
                                          printable(c.rec.user), after.current, host));
  c.progress.director->moved = true;
  c.progress.director->move_ms = d_.clock.monotonic_ms() - t0;
  d_.env.progress(c.rec.user, fmt::format("director: {} ({}) -> {} ({})", c.from->name, c.from->director_host,
                                          c.to->name, host));
  return {};
}

Status DirectorMove::flip(Ctx& c) {
  // No freeze to assert: the director, not LDAP, decides where the user logs in.
  FlipExpectation expected{c.from->name, c.rec.from_home, ""};
  Status st = d_.directory.flip(c.rec.dn, expected, c.to->name, c.progress.new_home);
  if (!st.ok() && (st.error().code() == ErrorCode::kUnavailable || st.error().code() == ErrorCode::kTimeout)) {
    auto now = d_.directory.find_account(c.rec.user);  // unknown outcome: read back
    if (now.ok() && now->host == c.to->name) st = {};
  }
  if (!st.ok()) return st;
  c.rec.state = MoveState::kFlipped;
  c.rec.flipped_at_ms = d_.clock.now_ms();
  return {};
}

Result<MoveRecord> DirectorMove::finish_failed(Ctx& c, const Error& why, bool roll_back) {
  if (roll_back) {
    // Put the user back where LDAP still says it is; a user the director never moved stays put.
    auto now = d_.director.user_status(c.rec.user);
    if (now.ok() && now->current == c.to->director_host) {
      Status back = d_.director.move(c.rec.user, c.from->director_host);
      if (!back.ok()) {
        c.rec.error = fmt::format("{}; moving it back in the director failed too: {} ('mailshard resume' finishes "
                                  "the move)",
                                  why.message(), back.error().message());
        (void)save(c);
        return c.rec;
      }
    } else if (!now.ok()) {
      c.rec.error = fmt::format("{} ('mailshard resume' finishes the move)", why.message());
      (void)save(c);
      return c.rec;
    }
    c.rec.state = MoveState::kRolledBack;
    c.rec.finished_at_ms = d_.clock.now_ms();
    c.rec.error = why.message();
  } else {
    c.rec.error = fmt::format("{} ('mailshard resume' finishes the move)", why.message());
  }
  (void)save(c);
  return c.rec;
}

Result<MoveRecord> DirectorMove::run_from(Ctx& c) {
  if (c.rec.state == MoveState::kPlanned) {
    Status st = step(c, "director_move", [&] { return director_move(c); });
    // Nothing changed unless the director answered: retry later rather than move back.
    if (!st.ok()) return finish_failed(c, st.error(), st.error().code() != ErrorCode::kUnavailable &&
                                                          st.error().code() != ErrorCode::kTimeout);
    st = step(c, "flip", [&] { return flip(c); });
    if (!st.ok()) {
      // Someone changed the entry: the user goes back where LDAP says; LDAP or the director
      // unreachable: resume finishes it.
      return finish_failed(c, st.error(), st.error().code() == ErrorCode::kConflict);
    }
  }
  Status st = step(c, "done", [&] {
    c.rec.state = MoveState::kDone;
    c.rec.bytes_transferred = 0;  // a shared mail root: nothing to copy
    c.rec.finished_at_ms = d_.clock.now_ms();
    c.rec.error.clear();
    return Status{};
  });
  if (!st.ok()) return finish_failed(c, st.error(), false);
  d_.env.progress(c.rec.user, fmt::format("done: {} -> {} by the director, 0 bytes copied", c.from->name, c.to->name));
  return c.rec;
}

Result<MoveRecord> DirectorMove::resume(int64_t move_id) {
  Ctx c;
  c.rec = MS_TRY(d_.journal.get_move(move_id));
  if (is_terminal(c.rec.state)) return c.rec;
  c.lease = MS_TRY(d_.journal.lease_move(move_id));
  c.rec = MS_TRY(d_.journal.get_move(move_id));  // re-read under the lease
  if (is_terminal(c.rec.state)) return c.rec;
  MS_CHECK(load_progress(c));
  c.from = d_.config.find_server(c.rec.from_server);
  c.to = d_.config.find_server(c.rec.to_server);
  if (!c.from || !c.to || !d_.config.same_storage_group(c.rec.from_server, c.rec.to_server))
    return Error::invalid(fmt::format("move {}: {} and {} are no longer one storage group in the config", move_id,
                                      c.rec.from_server, c.rec.to_server));
  // LDAP decides, as for a copy move: the entry names the destination (flipped) or the
  // source (not yet); anything else was changed by someone else.
  auto account = MS_TRY(d_.directory.find_account(c.rec.user));
  if (account.host == c.to->name) {
    if (c.rec.state != MoveState::kFlipped) {
      c.rec.state = MoveState::kFlipped;
      if (!c.rec.flipped_at_ms) c.rec.flipped_at_ms = d_.clock.now_ms();
    }
    // The director may still have the old mapping if the crash fell before the move.
    Status st = step(c, "director_move", [&] { return director_move(c); });
    if (!st.ok()) return finish_failed(c, st.error(), false);
  } else if (account.host == c.from->name) {
    c.rec.state = MoveState::kPlanned;
  } else {
    c.rec.state = MoveState::kFailed;
    c.rec.error = fmt::format("LDAP names {} for {}, neither {} nor {}: an operator decides", account.host,
                              printable(c.rec.user), c.from->name, c.to->name);
    c.rec.finished_at_ms = d_.clock.now_ms();
    (void)save(c);
    return c.rec;
  }
  return run_from(c);
}

Result<MoveRecord> DirectorMove::abort(int64_t move_id) {
  Ctx c;
  c.rec = MS_TRY(d_.journal.get_move(move_id));
  if (is_terminal(c.rec.state)) return c.rec;
  if (c.rec.state == MoveState::kFlipped)
    return Error::conflict(fmt::format("move {} has flipped; it can only roll forward ('mailshard resume')", move_id));
  c.lease = MS_TRY(d_.journal.lease_move(move_id));
  MS_CHECK(load_progress(c));
  c.from = d_.config.find_server(c.rec.from_server);
  c.to = d_.config.find_server(c.rec.to_server);
  if (!c.from || !c.to) return Error::invalid(fmt::format("move {}: its servers are no longer configured", move_id));
  auto account = MS_TRY(d_.directory.find_account(c.rec.user));
  if (account.host == c.to->name)
    return Error::conflict(fmt::format("move {} has flipped; it can only roll forward ('mailshard resume')", move_id));
  MS_CHECK(d_.journal.log_step(c.rec.id, "abort", StepPhase::kBegin, ""));
  auto r = finish_failed(c, Error::invalid("aborted by the operator"), true);
  if (r.ok() && r->state == MoveState::kRolledBack)
    (void)d_.journal.log_step(c.rec.id, "abort", StepPhase::kEnd, "");
  return r;
}

}  // namespace mailshard
