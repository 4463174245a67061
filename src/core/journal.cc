#include "core/journal.h"

#include <array>
#include <utility>

#include <fmt/format.h>

namespace mailshard {
namespace {
constexpr std::array<std::pair<MoveState, std::string_view>, 15> kStates = {{
    {MoveState::kPlanned, "planned"},
    {MoveState::kPrecopy, "precopy"},
    {MoveState::kFrozen, "frozen"},
    {MoveState::kFinalSync, "final_sync"},
    {MoveState::kVerified, "verified"},
    {MoveState::kFlipped, "flipped"},
    {MoveState::kThawed, "thawed"},
    {MoveState::kSwept, "swept"},
    {MoveState::kQuotaRecalc, "quota_recalc"},
    {MoveState::kDone, "done"},
    {MoveState::kPurged, "purged"},
    {MoveState::kRollingBack, "rolling_back"},
    {MoveState::kRolledBack, "rolled_back"},
    {MoveState::kFailed, "failed"},
    {MoveState::kDryRun, "dry_run"},
}};
}  // namespace

std::string_view move_state_name(MoveState s) {
  for (const auto& [state, name] : kStates)
    if (state == s) return name;
  return "unknown";
}

Result<MoveState> parse_move_state(std::string_view name) {
  for (const auto& [state, n] : kStates)
    if (n == name) return state;
  return Error::corrupt(fmt::format("unknown move state '{}'", name));
}

bool is_terminal(MoveState s) {
  return s == MoveState::kDone || s == MoveState::kPurged || s == MoveState::kRolledBack || s == MoveState::kFailed ||
         s == MoveState::kDryRun;
}

std::string_view step_phase_name(StepPhase p) {
  switch (p) {
    case StepPhase::kBegin: return "begin";
    case StepPhase::kEnd: return "end";
    case StepPhase::kError: return "error";
  }
  return "begin";
}

std::string_view claim_outcome_name(ClaimOutcome o) {
  switch (o) {
    case ClaimOutcome::kClaimed: return "claimed";
    case ClaimOutcome::kSlotsFull: return "slots_full";
    case ClaimOutcome::kUserBusy: return "user_busy";
    case ClaimOutcome::kDoneAlready: return "done_already";
  }
  return "claimed";
}

SlotClaim slots_full(const MoveRecord& m, const SlotLimits& limits, int64_t active_out, int64_t active_in) {
  SlotClaim c;
  c.outcome = ClaimOutcome::kSlotsFull;
  c.source_full = active_out >= limits.out;
  c.message = c.source_full ? fmt::format("slots full: {} is the source of {} active moves (out slots {})",
                                          m.from_server, active_out, limits.out)
                            : fmt::format("slots full: {} is the destination of {} active moves (in slots {})",
                                          m.to_server, active_in, limits.in);
  return c;
}

Status check_slot_claim(const MoveRecord& m) {
  if (is_terminal(m.state))
    return Error::invalid(fmt::format("claim in slots: move of {} is {}: only an active move takes a slot", m.user,
                                      move_state_name(m.state)));
  if (m.from_server.empty() || m.to_server.empty())
    return Error::invalid(fmt::format("claim in slots: move of {} names no source or destination server", m.user));
  return {};
}

}  // namespace mailshard
