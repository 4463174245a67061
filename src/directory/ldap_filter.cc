#include "directory/ldap_filter.h"

namespace mailshard {

std::string escape_filter_value(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size() + 8);
  for (unsigned char c : value) {
    bool escape = c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c >= 0x7f;
    if (escape) {
      out += '\\';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string equality_filter(std::string_view attribute, std::string_view value) {
  std::string out = "(";
  out += attribute;
  out += '=';
  out += escape_filter_value(value);
  out += ')';
  return out;
}

}  // namespace mailshard
