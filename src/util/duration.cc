#include "util/duration.h"

#include <algorithm>
#include <cctype>
#include <ctime>
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

Result<int64_t> parse_deadline_ms(std::string_view text, int64_t now_ms) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    auto d = parse_duration_ms(text);
    if (!d.ok()) return Error::invalid(fmt::format("'{}' is neither a duration (5h) nor a clock time (05:30)", printable(text)));
    return now_ms + *d;
  }
  auto digits = [](std::string_view s) {
    return !s.empty() && s.size() <= 2 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::string_view hh = text.substr(0, colon), mm = text.substr(colon + 1);
  if (!digits(hh) || mm.size() != 2 || !digits(mm))
    return Error::invalid(fmt::format("'{}' is not a clock time HH:MM", printable(text)));
  int h = std::stoi(std::string(hh)), m = std::stoi(std::string(mm));
  if (h > 23 || m > 59) return Error::invalid(fmt::format("'{}' is not a clock time HH:MM (00:00 to 23:59)", printable(text)));
  time_t now = static_cast<time_t>(now_ms / 1000);
  for (int day = 0; day < 3; ++day) {
    struct tm t = {};
    localtime_r(&now, &t);
    t.tm_mday += day;
    t.tm_hour = h;
    t.tm_min = m;
    t.tm_sec = 0;
    t.tm_isdst = -1;  // a DST change between now and then is mktime's to apply
    time_t at = mktime(&t);
    if (at != static_cast<time_t>(-1) && static_cast<int64_t>(at) * 1000 > now_ms) return static_cast<int64_t>(at) * 1000;
  }
  return Error::invalid(fmt::format("cannot place clock time '{}' in the local time zone", printable(text)));
}

}  // namespace mailshard
