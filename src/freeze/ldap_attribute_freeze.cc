#include "freeze/ldap_attribute_freeze.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "directory/ldap_filter.h"
#include "util/strings.h"

namespace mailshard {
namespace {
std::string eq(const std::string& attr, const std::string& value) {
  return fmt::format("({}={})", attr, escape_filter_value(value));
}
}  // namespace

std::string LdapAttributeFreeze::flip_assertion() const { return eq(config_.attribute, config_.frozen_value); }

Status LdapAttributeFreeze::freeze(const FreezeTarget& t, int64_t) {
  const std::string& a = config_.attribute;
  // Only an active, absent or already-frozen value may become frozen.
  std::string guard = fmt::format("(|{}{}(!({}=*)))", eq(a, config_.active_value), eq(a, config_.frozen_value), a);
  auto st = directory_.set_attribute(t.dn, a, config_.frozen_value, guard);
  if (st.ok()) return {};
  if (st.error().code() == ErrorCode::kConflict) {
    auto now = directory_.get_attribute(t.dn, a);
    std::string v = now.ok() && now->has_value() ? **now : "?";
    return Error::conflict(fmt::format("freeze {}: {} is '{}', not '{}': refusing to freeze", printable(t.user), a,
                                       printable(v), config_.active_value));
  }
  return std::move(st).error().context(fmt::format("freeze {}", printable(t.user)));
}

Status LdapAttributeFreeze::thaw(const FreezeTarget& t) {
  const std::string& a = config_.attribute;
  auto st = directory_.set_attribute(t.dn, a, config_.active_value, eq(a, config_.frozen_value));
  if (st.ok()) return {};
  if (st.error().code() == ErrorCode::kConflict) {
    // Not frozen (any more): nothing to thaw. Never turn a disabled account on.
    auto now = directory_.get_attribute(t.dn, a);
    if (now.ok() && now->has_value() && **now != config_.active_value)
      spdlog::warn("thaw {}: {} is '{}'; left as it is", printable(t.user), a, printable(**now));
    return {};
  }
  return std::move(st).error().context(fmt::format("thaw {}", printable(t.user)));
}

}  // namespace mailshard
