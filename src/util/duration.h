// Durations as written in the config and on the command line: "10m", "7d",
// "1h30m", "500ms", "30s". Values are int64 milliseconds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace mailshard {

// The longest duration accepted anywhere: 100 years. Longer is a typo, and
// now + kMaxDurationMs stays far inside int64 milliseconds.
inline constexpr int64_t kMaxDurationMs = 36'525ll * 86'400'000;  // 36525 days

// Parses a non-negative duration. A bare number is seconds. Longer than
// kMaxDurationMs: "duration too long: '...' (at most 100 years)".
Result<int64_t> parse_duration_ms(std::string_view text);
// A point in time from the command line, as epoch ms: a duration from now
// ("5h", "90m") or a local clock time "HH:MM" (the next such time: later
// today, else tomorrow; the controller's time zone, as cron's). kInvalidInput
// names the text.
Result<int64_t> parse_deadline_ms(std::string_view text, int64_t now_ms);
// "1h30m", "2.5s", "120ms": short, for logs and reports.
std::string format_duration_ms(int64_t ms);

}  // namespace mailshard
