// The move protocol (design.md §4) as data: every step of a move in order,
// the state the move is in once the step succeeded, which side of the commit
// point (the guarded LDAP flip) the step is on, and what it may touch.
//
// Before the flip a failure rolls back (thaw, drop the staging copy, the
// source stays authoritative); the flip is the commit point; after it the
// move only rolls forward. The driver (MoveRunner::run_stretch), recovery
// (MoveRunner::resume skips the post-flip steps whose state was reached) and
// the CLI's help read this table; the step list is written nowhere else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/journal.h"

namespace mailshard {

enum class CommitSide : uint8_t {
  kBeforeFlip,  // a failure rolls back
  kFlip,        // the commit point: an unknown outcome is decided by resume from LDAP
  kAfterFlip,   // only forward: a failure leaves the move for resume
};

enum class StepId : uint8_t {
  kPreflight,
  kPrecopy,
  kFreeze,
  kKick,
  kFinalSync,
  kConvert,
  kVerify,
  kFlip,
  kThaw,
  kSweep,
  kQuotaRecalc,
  kDone
};

// Which collaborators a step may call, besides the journal (every step
// journals itself). The fault-matrix test (tests/unit/movers/
// move_fault_matrix_test.cc) records the step of every call a move makes,
// faulted or not, and fails on a call its step does not declare here.
enum Touch : uint16_t {
  kReadsDirectory = 1u << 0,
  kWritesDirectory = 1u << 1,    // the guarded flip: host and home in one modify
  kFreezes = 1u << 2,            // the freeze backend: freeze, thaw
  kKicks = 1u << 3,              // the session kicker
  kReadsSource = 1u << 4,
  kProbesSource = 1u << 5,       // a directory made and removed in the mail root (the clock probe); never a home
  kReadsDestination = 1u << 6,
  kWritesDestination = 1u << 7,  // staging, the clock probe, a stale copy, then the home itself
  kAsksDoveadm = 1u << 8,        // mailbox status and quota (read, and quota recalc)
};

struct ProtocolStep {
  StepId id;
  std::string_view name;     // as journaled (move_steps.step) and in MAILSHARD_TEST_AT
  MoveState done;            // the move's state once the step succeeded
  CommitSide side;
  std::string_view touches;  // what the step may change
  uint16_t may;              // Touch flags: what it may call
};

// What a rollback (before the flip: thaw, drop the staging copy; recovery's
// "rollback" step in the journal) may call.
inline constexpr uint16_t kRollbackMay = kReadsDirectory | kFreezes | kReadsDestination | kWritesDestination;

inline constexpr ProtocolStep kMoveProtocol[] = {
    {StepId::kPreflight, "preflight", MoveState::kPrecopy, CommitSide::kBeforeFlip,
     "the journal (claims the user); a clock probe in each mail root; at the destination, a stale copy "
     "left by an earlier move or an empty home doveadm made; reads LDAP and both servers",
     kReadsDirectory | kReadsSource | kProbesSource | kReadsDestination | kWritesDestination | kAsksDoveadm},
    {StepId::kPrecopy, "precopy", MoveState::kPrecopy, CommitSide::kBeforeFlip,
     "the destination's staging directories (the home's, and one per tree outside it: mail_location INDEX=, "
     "CONTROL=); reads the source",
     kReadsSource | kReadsDestination | kWritesDestination},
    {StepId::kFreeze, "freeze", MoveState::kFrozen, CommitSide::kBeforeFlip, "the freeze (with its expiry)",
     kFreezes},
    {StepId::kKick, "kick", MoveState::kFrozen, CommitSide::kBeforeFlip, "the user's sessions on the source",
     kKicks | kReadsSource},
    {StepId::kFinalSync, "final_sync", MoveState::kFinalSync, CommitSide::kBeforeFlip,
     "the destination's staging directory; reads the source",
     kReadsSource | kReadsDestination | kWritesDestination | kAsksDoveadm},
    {StepId::kConvert, "convert", MoveState::kFinalSync, CommitSide::kBeforeFlip,
     "the destination's staging directory, only when the formats differ (Courier -> Dovecot: metadata files "
     "written, messages and folders renamed); reads the source",
     kReadsSource | kReadsDestination | kWritesDestination},
    {StepId::kVerify, "verify", MoveState::kVerified, CommitSide::kBeforeFlip,
     "the staging copy's dovecot.index.cache of a folder whose index files changed on the source under the freeze "
     "(dropped: Dovecot rebuilds it); reads both sides",
     kReadsSource | kReadsDestination | kWritesDestination | kAsksDoveadm},
    {StepId::kFlip, "flip", MoveState::kFlipped, CommitSide::kFlip,
     "the destination's trees (each staging directory renamed into place: those outside the home, then the "
     "home); for sdbox/mdbox the destination's doveadm lists the copy (mailboxes, UIDs, GUIDs) and must agree with "
     "the source's view under the freeze; then LDAP host and home in one guarded modify",
     kReadsDirectory | kWritesDirectory | kReadsDestination | kWritesDestination | kAsksDoveadm},
    {StepId::kThaw, "thaw", MoveState::kThawed, CommitSide::kAfterFlip, "the freeze", kFreezes},
    {StepId::kSweep, "sweep", MoveState::kSwept, CommitSide::kAfterFlip,
     "cur/ and new/ of the destination home (late deliveries); sdbox/mdbox: a side copy of the source's trees "
     "beside the destination home, imported by the destination's doveadm, then removed; reads the source",
     kReadsSource | kReadsDestination | kWritesDestination | kAsksDoveadm},
    {StepId::kQuotaRecalc, "quota_recalc", MoveState::kQuotaRecalc, CommitSide::kAfterFlip,
     "the destination's quota bookkeeping (doveadm quota recalc, when it has doveadm); never mail", kAsksDoveadm},
    {StepId::kDone, "done", MoveState::kDone, CommitSide::kAfterFlip, "the journal", 0},
};

// The move is frozen once step `id` has ended (freeze through flip; the thaw
// ends it). The driver runs such a stretch without a pause: a move that
// shares its thread with others (MoveTask) never waits for them while its
// user is locked out.
constexpr bool frozen_after(StepId id) { return id >= StepId::kFreeze && id < StepId::kThaw; }

// The table's entry for a step.
constexpr const ProtocolStep& protocol_step(StepId id) {
  for (const ProtocolStep& s : kMoveProtocol)
    if (s.id == id) return s;
  return kMoveProtocol[0];
}
// "preflight, precopy, ..., done" (for help texts).
std::string protocol_step_names();

}  // namespace mailshard
