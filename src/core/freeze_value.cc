#include "core/freeze_value.h"

#include <cctype>
#include <ctime>
#include <random>

#include <fmt/format.h>

namespace mailshard {
namespace {
constexpr std::string_view kUntil = "until=";
constexpr std::string_view kMove = "move=";
}  // namespace

std::string freeze_owner_for(int64_t move_id) {
  std::random_device rd;
  return fmt::format("{}.{:08x}", move_id, static_cast<uint32_t>(rd()));
}

bool valid_freeze_owner(std::string_view owner) {
  if (owner.empty() || owner.size() > 64) return false;
  for (char ch : owner)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-')) return false;
  return true;
}

std::string format_compact_utc(int64_t epoch_ms) {
  time_t t = static_cast<time_t>(epoch_ms / 1000);
  struct tm tm = {};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

int64_t parse_compact_utc(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return -1;
  auto num = [&](size_t at, size_t n, int lo, int hi) {
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v < lo || v > hi ? -1 : v;
  };
  int y = num(0, 4, 1970, 9999), mo = num(4, 2, 1, 12), d = num(6, 2, 1, 31);
  int h = num(9, 2, 0, 23), mi = num(11, 2, 0, 59), se = num(13, 2, 0, 60);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0) return -1;
  struct tm tm = {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  time_t t = timegm(&tm);
  if (t == static_cast<time_t>(-1)) return -1;
  // timegm normalises 31 February to March: such a date is not a date.
  struct tm back = {};
  gmtime_r(&t, &back);
  if (back.tm_mday != d || back.tm_mon != mo - 1) return -1;
  return static_cast<int64_t>(t) * 1000;
}

std::string frozen_value_for(const FreezeConfig& config, int64_t until_ms, const std::string& owner) {
  std::string v = config.frozen_value;
  if (config.owner_in_value && !owner.empty()) v += fmt::format(";{}{}", kMove, owner);
  if (config.until_in_value) v += fmt::format(";{}{}", kUntil, format_compact_utc(until_ms));
  return v;
}

FreezeValue read_freeze_value(const FreezeConfig& config, std::string_view value, int64_t now_ms) {
  FreezeValue out;
  const std::string_view frozen = config.frozen_value;
  if (frozen.empty() || value.substr(0, frozen.size()) != frozen) return out;
  std::string_view rest = value.substr(frozen.size());
  if (!rest.empty() && rest[0] != ';') return out;  // "frozenish": another value
  out.state = FreezeState::kFrozen;
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the ';'
    size_t end = rest.find(';');
    std::string_view field = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    if (field.substr(0, kMove.size()) == kMove) {
      out.owner = std::string(field.substr(kMove.size()));
    } else if (field.substr(0, kUntil.size()) == kUntil) {
      int64_t until = parse_compact_utc(field.substr(kUntil.size()));
      if (until < 0) {
        out.bad_deadline = true;
        out.until_ms = 0;
      } else if (!out.bad_deadline) {
        out.until_ms = until;
      }
    } else {
      out.unknown_field = true;
    }
  }
  if (!out.bad_deadline && !out.unknown_field && out.until_ms > 0 && out.until_ms <= now_ms)
    out.state = FreezeState::kExpired;
  return out;
}

}  // namespace mailshard
