// Small string helpers shared by every layer. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace mailshard {

std::vector<std::string> split(std::string_view s, char sep);
std::string_view trim(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string to_lower(std::string_view s);

// Levenshtein distance; used for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `word` if it is close enough to be a plausible typo,
// else "".
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// "1.5 GiB", "512 B": binary units, one decimal.
std::string human_bytes(int64_t bytes);
// The largest byte size parse_bytes accepts: 2^53 bytes (8 PiB), so sums of
// sizes and budgets stay far inside int64.
inline constexpr int64_t kMaxByteSize = int64_t{1} << 53;
// Parses "123", "10k", "10KiB", "1.5G", "2TiB" (binary multiples) into bytes.
// Larger than kMaxByteSize: "byte size too large: '...' (at most 8 PiB)".
Result<int64_t> parse_bytes(std::string_view text);

// A plain decimal ("12", "1.5") times a positive integer unit, rounded, with
// checked arithmetic. kMalformed: not digits[.digits]; kTooLarge: past max.
enum class ScaleStatus { kOk, kMalformed, kTooLarge };
ScaleStatus scale_decimal(std::string_view number, int64_t unit, int64_t max, int64_t& out);

// Parses strict decimal integers / doubles (whole string, no trailing junk).
Result<int64_t> parse_int(std::string_view text);
Result<double> parse_double(std::string_view text);

// Decodes the code point at s[i] (i < s.size()) and moves i past it; false for
// invalid UTF-8 (overlong forms, surrogates, beyond U+10FFFF, truncated
// sequences), leaving i where it was.
bool next_code_point(std::string_view s, size_t& i, uint32_t& cp);

// Quotes a string for safe display in an error message: printable ASCII is kept,
// anything else (control bytes, non-UTF-8) is shown as \xNN, and the result is
// cut to `max_len` characters with "..." so a 4 KB hostile name stays one line.
std::string printable(std::string_view s, size_t max_len = 200);

}  // namespace mailshard
