#include "directory/account_validator.h"

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {
namespace {

// Why a value cannot be used, or "" when it can.
std::string value_problem(std::string_view v) {
  if (v.size() > kMaxValueBytes) return fmt::format("is {} bytes long (limit {})", v.size(), kMaxValueBytes);
  if (!is_valid_utf8(v)) return "is not valid UTF-8";
  for (unsigned char c : v)
    if (c < 0x20 || c == 0x7f) return "contains control characters";
  return {};
}

// Splits a path into components, dropping "" and ".".
std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view c = path.substr(pos, end - pos);
    if (!c.empty() && c != ".") out.push_back(c);
    pos = end + 1;
  }
  return out;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();)
    if (!next_code_point(s, i, cp)) return false;  // overlong, surrogate, past U+10FFFF, truncated
  return true;
}

Result<std::string> relative_home(std::string_view home, std::string_view mail_root) {
  auto parts = components(home);
  for (auto c : parts)
    if (c == "..") return Error::invalid(fmt::format("'{}' contains '..'", printable(home)));
  if (!home.empty() && home.front() == '/') {
    auto root = components(mail_root);
    bool inside = parts.size() > root.size();
    for (size_t i = 0; inside && i < root.size(); ++i) inside = parts[i] == root[i];
    if (!inside) {
      if (parts.size() == root.size() && std::equal(parts.begin(), parts.end(), root.begin()))
        return Error::invalid(fmt::format("'{}' is the mail_root itself", printable(home)));
      return Error::invalid(fmt::format("'{}' is outside mail_root '{}'", printable(home), printable(mail_root)));
    }
    parts.erase(parts.begin(), parts.begin() + static_cast<ptrdiff_t>(root.size()));
  }
  if (parts.empty()) return Error::invalid(fmt::format("'{}' names the mail_root itself", printable(home)));
  std::string rel;
  for (auto c : parts) {
    if (!rel.empty()) rel += '/';
    rel += c;
  }
  return rel;
}

AccountValidator::AccountValidator(const LdapConfig& ldap, const std::vector<ServerConfig>& servers,
                                   std::string status_attribute)
    : user_attr_(ldap.user_attribute),
      host_attr_(ldap.host_attribute),
      home_attr_(ldap.home_attribute),
      status_attr_(std::move(status_attribute)),
      activity_attr_(ldap.activity_attribute) {
  for (const auto& s : servers) mail_roots_.emplace(s.name, s.mail_root);
}

Result<Account> AccountValidator::validate(RawEntry&& e) const {
  auto single = [&](const std::vector<std::string>& values, const std::string& attr,
                    bool first_of_many) -> Result<std::string> {
    if (values.empty()) return Error::invalid(fmt::format("no {} attribute", attr));
    if (values.size() > 1 && !first_of_many)
      return Error::invalid(fmt::format("{} values for {} (expected one)", values.size(), attr));
    if (std::string p = value_problem(values[0]); !p.empty())
      return Error::invalid(fmt::format("{} '{}' {}", attr, printable(values[0], 80), p));
    return values[0];
  };

  Account a;
  if (std::string p = value_problem(e.dn); !p.empty()) return Error::invalid(fmt::format("dn {}", p));
  a.dn = std::move(e.dn);
  // A user attribute such as `mail` may carry aliases: the first value names the account.
  a.user = MS_TRY(single(e.user, user_attr_, true));
  a.host = MS_TRY(single(e.host, host_attr_, false));
  auto root = mail_roots_.find(a.host);
  if (root == mail_roots_.end())
    return Error::invalid(fmt::format("{} '{}' is not a configured server", host_attr_, printable(a.host, 80)));
  a.home = MS_TRY(single(e.home, home_attr_, false));
  auto rel = relative_home(a.home, root->second);
  if (!rel.ok()) return Error::invalid(fmt::format("{} {}", home_attr_, rel.error().message()));
  a.home_rel = std::move(*rel);
  if (!e.status.empty() && value_problem(e.status[0]).empty()) a.status = e.status[0];
  if (!e.activity.empty()) {
    auto v = parse_double(trim(e.activity[0]));
    // An unusable activity figure only weakens load balancing: it counts as unknown (0).
    if (v.ok() && *v >= 0 && *v < 1e300) a.activity = *v;
  }
  return a;
}

}  // namespace mailshard
