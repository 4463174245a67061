// What the three parts of MoveRunner share: the driver (move_runner.cc: the
// protocol's steps), recovery (move_recovery.cc: rollback, resume, abort) and
// audit (move_audit.cc: purge, verify_user). Internal to movers/.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/mail_location.h"
#include "movers/courier_conversion.h"
#include "movers/move_progress.h"
#include "movers/move_runner.h"
#include "movers/sync_state.h"

namespace mailshard {

// MoveProgress::convert of a Courier-IMAP -> Dovecot move.
inline constexpr std::string_view kCourierToDovecot = "courier-to-dovecot";

// "a/b/c" -> "a/b"; "c" -> "".
inline std::string dirname_of(const std::string& rel) {
  auto p = rel.rfind('/');
  return p == std::string::npos ? std::string() : rel.substr(0, p);
}

// Ops per Transport::apply() (or stat) call when a step walks a whole tree.
inline constexpr size_t kOpsPerBatch = 4000;

// File helpers of the steps; they need only the transports they are given.
// Whether `path` exists (kNotFound is false; any other error is returned).
Result<bool> exists(Transport& t, const std::string& path);
// Deletes the tree at `dir`, files before their directory, then syncs its
// parent. A missing tree is success (idempotent).
Status remove_tree(Transport& t, const std::string& dir);
// Creates the directories above `rel` on `dst` that it lacks, with the
// owner and mode they have on `src`.
Status ensure_parents(Transport& src, Transport& dst, const std::string& rel);
// Deletes the file at `path` (never a directory: kInvalidInput), then syncs
// its directory. A missing file is success (idempotent).
Status remove_file(Transport& t, const std::string& path);

// A tree of the move as the engine reads it on the source: the tree, or for
// a tree of one file (ExtraTree::file) its directory with only_entry set to
// the file's name, so that the copy is that file in the tree's staging
// directory (file_in_staging) and nothing else of its directory.
std::string engine_src_root(const ExtraTree& t);
SyncOptions engine_options(const ExtraTree& t, SyncOptions options);
// A file tree's file name ("" for a directory tree): what only_entry reads.
std::string tree_file_name(const ExtraTree& t);
// A file tree's copy inside its staging directory.
std::string file_in_staging(const ExtraTree& t, const std::string& staging);
// A server's mail_location as a move journaled it at preflight (`journaled`,
// progress src_location/dst_location), else as `server` is configured now.
MailLocation journaled_location(const std::optional<std::string>& journaled, const ServerConfig& server);
// Two existing names of one file: a place (TreeOp::kPlace) cut short between
// its link and its unlink.
bool same_file(const StatResult& a, const StatResult& b);

// Everything one move works with.
struct MoveRunner::Ctx {
  MoveRecord rec;
  Account account;
  const ServerConfig* from = nullptr;
  const ServerConfig* to = nullptr;
  Transport* src = nullptr;
  Transport* dst = nullptr;
  // The engine's options for src -> dst: the runner's, with the data path of
  // this pair of servers (core/peer_path.h).
  SyncOptions sync;
  // What the steps have learned and done, journaled with rec at every save
  // (src_home, new_home, empty_source, ...).
  MoveProgress progress;
  std::string dst_final;    // relative to the destination mail root
  std::string dst_staging;  // where the copy is built before the flip
  SyncState state;
  bool state_loaded = false;
  // The trees outside the home (progress.trees, same order): where each is
  // built on the destination before the flip, and its sync state.
  struct TreeCopy {
    std::string staging;  // relative to the destination mail root
    SyncState state;
    bool state_loaded = false;
  };
  std::vector<TreeCopy> extra;
  std::unique_ptr<MoveLease> lease;
  int64_t frozen_mono = -1;
  std::optional<std::vector<MailboxStatusInfo>> src_status;  // doveadm, before the final pass
  // sdbox/mdbox: the source's mailboxes and messages (doveadm), under the
  // freeze before the final pass; the flip compares the destination's to it.
  std::optional<std::vector<MailboxContents>> src_contents;
  bool flip_unknown = false;
  // The sweep: whether the source home was there, what the last round found,
  // settle rounds so far; when the next stretch may run (the settle pause).
  bool swept_source = false;
  int64_t last_swept = 0;
  int settle_rounds = 0;
  // The destination's quota was recounted after the last write behind its
  // Dovecot's back (the final pass, the conversion, a sweep that carried mail).
  bool quota_current = false;
  bool stale_tmp_logged = false;  // the kick said once which tmp/ files it does not wait for
  int64_t wake_at_ms = 0;  // the flip's modify may have been applied: resume decides
  std::optional<DovecotConversion> conversion;  // Courier -> Dovecot: what the convert step applied
  FreezeTarget target() const { return {rec.user, rec.dn, progress.freeze_owner}; }
  // The source's and the destination's mail_location as journaled when the
  // move began (progress.src_location), or, for a move journaled before
  // that, as configured now. from/to must be set.
  MailLocation from_location() const;
  MailLocation to_location() const;
  // progress from the journal's record (an unreadable one is empty, a field
  // of the wrong type unset: what they held is re-derived by the steps that
  // need it). Logs what it could not read.
  void load_progress();
};

// A journaled step (design.md §4): the record saved and the step's begin
// logged before fn runs, the record saved and its end (with end_detail()) or
// its error logged after; the environment's step boundary (the test hook)
// after the begin and after the end. Copy moves and director moves share it.
template <typename Save, typename F, typename EndDetail>
Status journaled_step(Journal& journal, MoveEnvironment& env, MoveRecord& rec, const std::string& name, Save&& save,
                      F&& fn, EndDetail&& end_detail) {
  rec.step = name;
  MS_CHECK(save());
  MS_CHECK(journal.log_step(rec.id, name, StepPhase::kBegin, ""));
  env.step_boundary(name, StepPhase::kBegin);
  Status st = fn();
  if (!st.ok()) {
    (void)journal.log_step(rec.id, name, StepPhase::kError, st.error().message());
    return st;
  }
  MS_CHECK(save());
  MS_CHECK(journal.log_step(rec.id, name, StepPhase::kEnd, end_detail()));
  env.step_boundary(name, StepPhase::kEnd);
  return {};
}

template <typename F>
Status MoveRunner::step(Ctx& c, const std::string& name, F&& fn) {
  return journaled_step(d_.journal, d_.env, c.rec, name, [&] { return save(c); }, std::forward<F>(fn),
                        [] { return std::string(); });
}

}  // namespace mailshard
