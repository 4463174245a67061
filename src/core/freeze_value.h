// The value of the ldap-attribute freeze, as every router reads it.
//
//   active                              not frozen (any value but the frozen forms is "not frozen":
//                                       an operator's "disabled" is not ours to judge)
//   frozen                              frozen, no deadline in the value (the guard and resume lift it)
//   frozen;until=20261205T013000Z       frozen until that UTC second ([freeze] until_in_value = true);
//                                       once it has passed, routers treat the user as not frozen
//   frozen;move=42.9f3a1c2b[;until=...] frozen by that move ([freeze] owner_in_value = true, the
//                                       default): only that move refreshes or lifts it
//
// After frozen_value come ";key=value" fields, move before until. A value
// that starts with frozen_value and ";" is frozen whatever its fields say; a
// deadline that does not parse, or a field mailshard does not know, is read
// as frozen (and the caller logs it): a router must never let a user in by
// mistake during a move.
// Pure functions (but freeze_owner_for); thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.h"

namespace mailshard {

enum class FreezeState { kNotFrozen, kFrozen, kExpired };

struct FreezeValue {
  FreezeState state = FreezeState::kNotFrozen;
  int64_t until_ms = 0;        // the deadline in the value; 0 when none
  bool bad_deadline = false;   // "frozen;until=<garbage>": read as frozen
  std::string owner;           // the move that froze it ("42.9f3a1c2b"); "" when the value names none
  bool unknown_field = false;  // "frozen;colour=blue": read as frozen
};

// The value a freeze until `until_ms` by move `owner` writes: frozen_value,
// then with owner_in_value (and a non-empty owner) ";move=" + owner, then with
// until_in_value ";until=" + the UTC second (rounded down).
std::string frozen_value_for(const FreezeConfig& config, int64_t until_ms, const std::string& owner);

// Whether `owner` may be written in a value: [A-Za-z0-9._-]{1,64}.
bool valid_freeze_owner(std::string_view owner);

// A new owner for move `move_id`: "<id>.<8 random hex digits>", so moves of
// two journals (two controllers) with the same id still name different owners.
// Not pure: reads std::random_device.
std::string freeze_owner_for(int64_t move_id);

// What `value` means at `now_ms`.
FreezeValue read_freeze_value(const FreezeConfig& config, std::string_view value, int64_t now_ms);

// "20261205T013000Z" <-> epoch ms (whole seconds). parse returns -1 when the
// text is not exactly that form.
std::string format_compact_utc(int64_t epoch_ms);
int64_t parse_compact_utc(std::string_view text);

}  // namespace mailshard
