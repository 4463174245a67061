// The move protocol (design.md §4) as data: every step of a move in order,
// the state the move is in once the step succeeded, which side of the commit
// point (the guarded LDAP flip) the step is on, and what it may touch.
//
// Before the flip a failure rolls back (thaw, drop the staging copy, the
// source stays authoritative); the flip is the commit point; after it the
// move only rolls forward. The driver (MoveRunner::run_from), recovery
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

struct ProtocolStep {
  StepId id;
  std::string_view name;     // as journaled (move_steps.step) and in MAILSHARD_TEST_AT
  MoveState done;            // the move's state once the step succeeded
  CommitSide side;
  std::string_view touches;  // what the step may change
};

inline constexpr ProtocolStep kMoveProtocol[] = {
    {StepId::kPreflight, "preflight", MoveState::kPrecopy, CommitSide::kBeforeFlip,
     "the journal (claims the user); reads LDAP and both servers"},
    {StepId::kPrecopy, "precopy", MoveState::kPrecopy, CommitSide::kBeforeFlip,
     "the destination's staging directory; reads the source"},
    {StepId::kFreeze, "freeze", MoveState::kFrozen, CommitSide::kBeforeFlip, "the freeze (with its expiry)"},
    {StepId::kKick, "kick", MoveState::kFrozen, CommitSide::kBeforeFlip, "the user's sessions on the source"},
    {StepId::kFinalSync, "final_sync", MoveState::kFinalSync, CommitSide::kBeforeFlip,
     "the destination's staging directory; reads the source"},
    {StepId::kConvert, "convert", MoveState::kFinalSync, CommitSide::kBeforeFlip,
     "the destination's staging directory, only when the formats differ (Courier -> Dovecot: metadata files "
     "written, messages and folders renamed); reads the source"},
    {StepId::kVerify, "verify", MoveState::kVerified, CommitSide::kBeforeFlip, "nothing; reads both sides"},
    {StepId::kFlip, "flip", MoveState::kFlipped, CommitSide::kFlip,
     "the destination home (staging renamed into place), then LDAP host and home in one guarded modify"},
    {StepId::kThaw, "thaw", MoveState::kThawed, CommitSide::kAfterFlip, "the freeze"},
    {StepId::kSweep, "sweep", MoveState::kSwept, CommitSide::kAfterFlip,
     "cur/ and new/ of the destination home (late deliveries); reads the source"},
    {StepId::kQuotaRecalc, "quota_recalc", MoveState::kQuotaRecalc, CommitSide::kAfterFlip,
     "the destination's quota bookkeeping (doveadm quota recalc, when it has doveadm); never mail"},
    {StepId::kDone, "done", MoveState::kDone, CommitSide::kAfterFlip, "the journal"},
};

// "preflight, precopy, ..., done" (for help texts).
std::string protocol_step_names();

}  // namespace mailshard
