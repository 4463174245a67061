// MoveRunner, recovery: roll back a move that has not flipped, resume an
// interrupted one (LDAP says which side of the commit point it is on), and
// abort on an operator's request.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "movers/maildir_rules.h"
#include "movers/move_runner.h"
#include "movers/move_runner_internal.h"
#include "util/duration.h"
#include "util/strings.h"

namespace mailshard {

Status MoveRunner::roll_back(Ctx& c, const Error& why) {
  spdlog::warn("move {}: rolling back: {}", printable(c.rec.user), why.message());
  c.rec.state = MoveState::kRollingBack;
  c.rec.error = why.message();
  MS_CHECK(save(c));
  MS_CHECK(d_.journal.log_step(c.rec.id, "rollback", StepPhase::kBegin, why.message()));
  d_.env.step_boundary("rollback", StepPhase::kBegin);
  // 1. Nobody stays frozen. Thawing is safe on either side of the commit point
  //    (and a no-op for a user who is not frozen). The freeze step writes the
  //    record's freeze_expires_at_ms with the progress's freeze_requested, in
  //    the same save: either one means the freeze may have happened, so a
  //    progress record that could not be read never leaves a user frozen.
  if (may_be_frozen(c)) {
    MS_CHECK_CTX(d_.freeze.thaw(c.target()), "rollback");
    c.rec.thawed_at_ms = d_.clock.now_ms();
    if (c.frozen_mono >= 0) c.rec.lockout_ms = d_.clock.monotonic_ms() - c.frozen_mono;
    else if (c.rec.frozen_at_ms > 0) c.rec.lockout_ms = c.rec.thawed_at_ms - c.rec.frozen_at_ms;
    MS_CHECK(save(c));
  }
  // 2. Drop our copies: each tree's staging directory (the trees outside
  //    the home, then the home), or its final path once renamed. A final
  //    path is deleted only while LDAP still points at the source, read now
  //    (once): deleting the copy LDAP points at would lose the mailbox.
  if (c.dst) {
    bool confirmed = false;
    auto confirm_not_flipped = [&]() -> Status {
      if (confirmed) return {};
      auto account = d_.directory.find_account(c.rec.user);
      if (!account.ok())
        return std::move(account).error().context("rollback: cannot confirm that the flip did not happen");
      if (account->host == c.rec.to_server)
        return Error::conflict(fmt::format("rollback: LDAP already points {} at {}; run 'mailshard resume'",
                                           printable(c.rec.user), c.rec.to_server));
      // LDAP does not point at our copy (the source, or wherever an operator
      // sent the user meanwhile): it is ours to drop.
      confirmed = true;
      return {};
    };
    auto drop = [&](const std::string& staging_path, const std::string& final_path, bool renamed) -> Status {
      bool staging = MS_TRY_CTX(exists(*c.dst, staging_path), "rollback");
      if (staging) {
        MS_CHECK_CTX(remove_tree(*c.dst, staging_path), "rollback");
        return {};
      }
      if (renamed || c.rec.step == "flip") {
        MS_CHECK(confirm_not_flipped());
        MS_CHECK_CTX(remove_tree(*c.dst, final_path), "rollback");
      }
      return {};
    };
    // A file tree (an mbox spool INBOX): its staging directory stays after
    // the file left it, so whether the file was placed is whether it is
    // still in there. Still there: whatever has the final name is not ours
    // (it appeared during the move) and stays, unless it is the same inode
    // (a place cut short between its link and its unlink). Gone from there
    // after the flip began: the file at the final name is ours. Only that
    // file is ever removed, never its directory.
    auto drop_file = [&](const ExtraTree& t, const std::string& staging_dir) -> Status {
      auto st = MS_TRY_CTX(c.dst->stat({{file_in_staging(t, staging_dir), {}}, {t.dst, {}}}), "rollback");
      for (const auto& r : st)
        if (r.error && r.error->code() != ErrorCode::kNotFound) return Error(*r.error).context("rollback");
      const bool staged = !st[0].error, there = !st[1].error;
      const bool linked = same_file(st[0], st[1]);
      const bool placed = !t.empty_source && (t.renamed || c.rec.step == "flip") && (!staged || linked);
      MS_CHECK_CTX(remove_tree(*c.dst, staging_dir), "rollback");
      if (placed && there) {
        MS_CHECK(confirm_not_flipped());
        MS_CHECK_CTX(remove_file(*c.dst, t.dst), "rollback");
      }
      return {};
    };
    for (size_t i = 0; i < c.progress.trees.size() && i < c.extra.size(); ++i) {
      const ExtraTree& t = c.progress.trees[i];
      MS_CHECK(t.file ? drop_file(t, c.extra[i].staging) : drop(c.extra[i].staging, t.dst, t.renamed));
    }
    MS_CHECK(drop(c.dst_staging, c.dst_final, c.progress.renamed));
  }
  c.rec.state = MoveState::kRolledBack;
  c.rec.finished_at_ms = d_.clock.now_ms();
  MS_CHECK(save(c));
  MS_CHECK(d_.journal.log_step(c.rec.id, "rollback", StepPhase::kEnd, ""));
  d_.env.step_boundary("rollback", StepPhase::kEnd);
  return {};
}


bool MoveRunner::may_be_frozen(const Ctx& c) {
  return c.progress.freeze_requested || c.rec.freeze_expires_at_ms > 0 || c.rec.frozen_at_ms > 0;
}

Status MoveRunner::open_sides_or_thaw(Ctx& c, const std::string& what) {
  Status st = open_sides(c);
  if (st.ok()) return st;
  // Recovery cannot work on this move (an unreadable record, a server no
  // longer configured): it stays for an operator, but its user must not stay
  // frozen meanwhile. Thawing is safe on either side of the commit point.
  if (may_be_frozen(c)) {
    Status thawed = d_.freeze.thaw(c.target());
    if (thawed.ok()) {
      spdlog::warn("{}: thawed {}; the move itself is left for an operator", what, printable(c.rec.user));
    } else {
      spdlog::error("{}: cannot thaw {}: {}", what, printable(c.rec.user), thawed.error().message());
    }
  }
  return std::move(st).error().context(what);
}

Result<MoveRecord> MoveRunner::resume(int64_t move_id) {
  Ctx c;
  c.lease = MS_TRY(d_.journal.lease_move(move_id));
  c.rec = MS_TRY(d_.journal.get_move(move_id));
  if (is_terminal(c.rec.state)) return c.rec;
  c.load_progress();
  MS_CHECK(open_sides_or_thaw(c, fmt::format("resume move {}", move_id)));
  MS_CHECK(d_.journal.log_step(c.rec.id, "resume", StepPhase::kBegin, std::string(move_state_name(c.rec.state))));

  // LDAP, not the journal, says which side of the commit point we are on: a
  // crash can fall between the modify and its journal line.
  auto account = d_.directory.find_account(c.rec.user);
  if (!account.ok()) return std::move(account).error().context(fmt::format("resume move {}", move_id));
  bool flipped = account->host == c.rec.to_server;
  bool at_source = account->host == c.rec.from_server;

  if (flipped) {
    if (c.rec.state < MoveState::kFlipped || c.rec.state == MoveState::kRollingBack) {
      c.rec.state = MoveState::kFlipped;
      if (!c.rec.flipped_at_ms) c.rec.flipped_at_ms = d_.clock.now_ms();
    }
    // The post-flip steps whose state the move has not reached yet.
    for (const ProtocolStep& step : kMoveProtocol) {
      // Stopped in the settle pause (swept, the quota_recalc step not run):
      // the settle round may not have run, so it runs now, at its time.
      const bool settle_owed = step.id == StepId::kSweep && c.rec.state == MoveState::kSwept &&
                               d_.config.move.sweep_settle_ms > 0;
      if (step.side != CommitSide::kAfterFlip || (c.rec.state >= step.done && !settle_owed)) continue;
      if (settle_owed) {
        c.settle_rounds = 1;
        if (const int64_t wait = settle_wake_ms(c) - d_.clock.now_ms(); wait > 0) d_.clock.sleep_ms(wait);
      }
      Status s = run_step(c, step);
      while (s.ok() && step.id == StepId::kSweep && settle_again(c)) {
        auto wake = begin_settle_pause(c);
        if (!wake.ok()) {
          s = std::move(wake).error();
          break;
        }
        if (const int64_t wait = *wake - d_.clock.now_ms(); wait > 0) d_.clock.sleep_ms(wait);
        s = run_step(c, step);
      }
      if (!s.ok()) {
        c.rec.error = s.error().message();
        (void)save(c);
        return std::move(s).error().context(fmt::format("resume move {}", move_id));
      }
    }
    return c.rec;
  }
  if (c.rec.state >= MoveState::kFlipped && c.rec.state != MoveState::kRollingBack) {
    // The journal says flipped but LDAP does not: someone changed the entry.
    c.rec.state = MoveState::kFailed;
    c.rec.error = fmt::format("the move flipped to {} but LDAP now says '{}'; left for an operator", c.rec.to_server,
                              account->host);
    MS_CHECK(d_.freeze.thaw(c.target()));
    MS_CHECK(save(c));
    return c.rec;
  }
  Error why = at_source ? Error::interrupted(fmt::format("interrupted during {}; rolled back by resume", c.rec.step))
                        : Error::conflict(fmt::format("LDAP moved the user to '{}' meanwhile; rolled back by resume",
                                                      account->host));
  MS_CHECK(roll_back(c, why));
  return c.rec;
}

Result<MoveRecord> MoveRunner::abort(int64_t move_id) {
  Ctx c;
  c.lease = MS_TRY(d_.journal.lease_move(move_id));
  c.rec = MS_TRY(d_.journal.get_move(move_id));
  if (is_terminal(c.rec.state))
    return Error::invalid(fmt::format("move {} is already {}", move_id, move_state_name(c.rec.state)));
  if (c.rec.state >= MoveState::kFlipped && c.rec.state != MoveState::kRollingBack)
    return Error::conflict(fmt::format("move {} has flipped; it can only roll forward: run 'mailshard resume'", move_id));
  c.load_progress();
  MS_CHECK(open_sides_or_thaw(c, fmt::format("abort move {}", move_id)));
  // The flip may have happened just before a crash: LDAP decides.
  auto account = d_.directory.find_account(c.rec.user);
  if (!account.ok()) return std::move(account).error().context(fmt::format("abort move {}", move_id));
  if (account->host == c.rec.to_server)
    return Error::conflict(fmt::format("move {} has flipped (LDAP says {}); run 'mailshard resume'", move_id,
                                       c.rec.to_server));
  MS_CHECK(roll_back(c, Error::interrupted(fmt::format("aborted by the operator during {}", c.rec.step))));
  return c.rec;
}

}  // namespace mailshard
