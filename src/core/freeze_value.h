// The value of the ldap-attribute freeze, as every router reads it.
//
//   active                              not frozen (any value but the frozen forms is "not frozen":
//                                       an operator's "disabled" is not ours to judge)
//   frozen                              frozen, no deadline in the value (the guard and resume lift it)
//   frozen;until=20261205T013000Z       frozen until that UTC second ([freeze] until_in_value = true);
//                                       once it has passed, routers treat the user as not frozen
//
// A deadline that does not parse is read as frozen (and the caller logs it):
// a router must never let a user in by mistake during a move.
// Pure functions; thread-safe.
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
};

// The value a freeze until `until_ms` writes: frozen_value, or with
// until_in_value frozen_value + ";until=" + the UTC second (rounded down).
std::string frozen_value_for(const FreezeConfig& config, int64_t until_ms);

// What `value` means at `now_ms`.
FreezeValue read_freeze_value(const FreezeConfig& config, std::string_view value, int64_t now_ms);

// "20261205T013000Z" <-> epoch ms (whole seconds). parse returns -1 when the
// text is not exactly that form.
std::string format_compact_utc(int64_t epoch_ms);
int64_t parse_compact_utc(std::string_view text);

}  // namespace mailshard
