#include "util/duration.h"

#include <cctype>
#include <cmath>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

Result<int64_t> parse_duration_ms(std::string_view text) {
  std::string_view t = trim(text);
  auto bad = [&] {
    return Error::invalid(fmt::format("not a duration: '{}' (examples: 30s, 10m, 1h30m, 7d, 500ms)", printable(text, 40)));
  };
  auto too_long = [&] {
    return Error::invalid(fmt::format("duration too long: '{}' (at most 100 years)", printable(text, 40)));
  };
  if (t.empty()) return bad();
  int64_t total = 0;
  size_t i = 0;
  bool any = false;
  while (i < t.size()) {
    size_t start = i;
    while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
    if (i == start) return bad();
    std::string_view num = t.substr(start, i - start);
    size_t ustart = i;
    while (i < t.size() && std::isalpha(static_cast<unsigned char>(t[i]))) ++i;
    std::string unit = to_lower(t.substr(ustart, i - ustart));
    int64_t mult;
    if (unit.empty() || unit == "s" || unit == "sec") mult = 1000;
    else if (unit == "ms") mult = 1;
    else if (unit == "m" || unit == "min") mult = 60'000;
    else if (unit == "h") mult = 3'600'000;
    else if (unit == "d") mult = 86'400'000;
    else if (unit == "w") mult = 7 * 86'400'000ll;
    else return bad();
    if (unit.empty() && (any || i != t.size())) return bad();
    int64_t part = 0;
    switch (scale_decimal(num, mult, kMaxDurationMs, part)) {
      case ScaleStatus::kOk: break;
      case ScaleStatus::kTooLarge: return too_long();
      case ScaleStatus::kMalformed: return bad();
    }
    if (__builtin_add_overflow(total, part, &total) || total > kMaxDurationMs) return too_long();
    any = true;
  }
  return total;
}

std::string format_duration_ms(int64_t ms) {
  if (ms < 0) return "-" + format_duration_ms(-ms);
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return fmt::format("{:.1f}s", ms / 1000.0);
  int64_t s = ms / 1000;
  int64_t d = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60, sec = s % 60;
  std::string out;
  if (d) out += fmt::format("{}d", d);
  if (h) out += fmt::format("{}h", h);
  if (m) out += fmt::format("{}m", m);
  if (sec && !d) out += fmt::format("{}s", sec);
  return out;
}

}  // namespace mailshard
