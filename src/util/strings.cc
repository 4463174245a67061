#include "util/strings.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace mailshard {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out.append(sep);
    out.append(parts[i]);
  }
  return out;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // A typo is at most a third of the word (and at least 2 edits are allowed).
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

std::string human_bytes(int64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (std::fabs(v) >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

Result<int64_t> parse_int(std::string_view text) {
  text = trim(text);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty())
    return Error::invalid(fmt::format("not an integer: '{}'", printable(text, 40)));
  return v;
}

Result<double> parse_double(std::string_view text) {
  text = trim(text);
  if (text.empty()) return Error::invalid("not a number: ''");
  std::string tmp(text);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(tmp.c_str(), &end);
  if (end != tmp.c_str() + tmp.size() || errno == ERANGE)
    return Error::invalid(fmt::format("not a number: '{}'", printable(text, 40)));
  return v;
}

ScaleStatus scale_decimal(std::string_view number, int64_t unit, int64_t max, int64_t& out) {
  size_t dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : number.substr(dot + 1);
  if (whole.empty() && frac.empty()) return ScaleStatus::kMalformed;
  int64_t w = 0;
  bool too_large = false;
  for (char ch : whole) {
    if (ch < '0' || ch > '9') return ScaleStatus::kMalformed;
    too_large = too_large || __builtin_mul_overflow(w, 10, &w) || __builtin_add_overflow(w, ch - '0', &w);
  }
  for (char ch : frac)
    if (ch < '0' || ch > '9') return ScaleStatus::kMalformed;
  if (too_large || __builtin_mul_overflow(w, unit, &w)) return ScaleStatus::kTooLarge;
  // The fraction adds less than one unit; a double is exact enough for that.
  double f = 0, scale = 0.1;
  for (size_t i = 0; i < frac.size() && i < 18; ++i, scale /= 10) f += (frac[i] - '0') * scale;
  if (__builtin_add_overflow(w, static_cast<int64_t>(std::llround(f * static_cast<double>(unit))), &w) || w > max)
    return ScaleStatus::kTooLarge;
  out = w;
  return ScaleStatus::kOk;
}

Result<int64_t> parse_bytes(std::string_view text) {
  std::string_view t = trim(text);
  size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  std::string unit = to_lower(trim(t.substr(i)));
  int64_t mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kib" || unit == "kb") mult = int64_t{1} << 10;
  else if (unit == "m" || unit == "mib" || unit == "mb") mult = int64_t{1} << 20;
  else if (unit == "g" || unit == "gib" || unit == "gb") mult = int64_t{1} << 30;
  else if (unit == "t" || unit == "tib" || unit == "tb") mult = int64_t{1} << 40;
  else if (i > 0) return Error::invalid(fmt::format("unknown byte unit in '{}' (use B, KiB, MiB, GiB, TiB)", printable(text, 40)));
  int64_t v = 0;
  switch (i == 0 ? ScaleStatus::kMalformed : scale_decimal(t.substr(0, i), mult, kMaxByteSize, v)) {
    case ScaleStatus::kOk: return v;
    case ScaleStatus::kTooLarge:
      return Error::invalid(fmt::format("byte size too large: '{}' (at most 8 PiB)", printable(text, 40)));
    case ScaleStatus::kMalformed: break;
  }
  return Error::invalid(fmt::format("not a byte size: '{}'", printable(text, 40)));
}

bool next_code_point(std::string_view s, size_t& i, uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  int len = 0;
  if (b0 < 0x80) {
    cp = b0;
    ++i;
    return true;
  }
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return false;
  }
  if (i + len > s.size()) return false;
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  i += len;
  return true;
}

std::string printable(std::string_view s, size_t max_len) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

}  // namespace mailshard
