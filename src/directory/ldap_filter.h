// Building LDAP search filters from untrusted values (RFC 4515).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace mailshard {

// Escapes a value for use inside a filter: the specials '*', '(', ')', '\\'
// and NUL, every control byte and every byte >= 0x80 become "\\xx" (two lower
// case hex digits), so the result is plain printable ASCII whatever the input.
// "a*b(c)" -> "a\\2ab\\28c\\29".
std::string escape_filter_value(std::string_view value);

// "(attribute=<escaped value>)".
std::string equality_filter(std::string_view attribute, std::string_view value);

}  // namespace mailshard
