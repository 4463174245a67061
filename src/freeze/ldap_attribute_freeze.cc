#include "freeze/ldap_attribute_freeze.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/freeze_value.h"
#include "directory/ldap_filter.h"
#include "util/strings.h"

namespace mailshard {
namespace {
std::string eq(const std::string& attr, const std::string& value) {
  return fmt::format("({}={})", attr, escape_filter_value(value));
}
}  // namespace

std::string LdapAttributeFreeze::flip_assertion(int64_t until_ms) const {
  return eq(config_.attribute, frozen_value_for(config_, until_ms));
}

Status LdapAttributeFreeze::freeze(const FreezeTarget& t, int64_t until_ms) {
  const std::string& a = config_.attribute;
  const std::string value = frozen_value_for(config_, until_ms);
  std::string guard;
  if (!config_.until_in_value) {
    // Only an active, absent or already-frozen value may become frozen.
    guard = fmt::format("(|{}{}(!({}=*)))", eq(a, config_.active_value), eq(a, config_.frozen_value), a);
  } else {
    // The same rule, and a frozen value may carry any deadline (a refresh):
    // read it, and swap exactly what was read.
    auto now = directory_.get_attribute(t.dn, a);
    if (!now.ok()) return std::move(now).error().context(fmt::format("freeze {}", printable(t.user)));
    if (!now->has_value()) {
      guard = fmt::format("(!({}=*))", a);
    } else if (**now == config_.active_value ||
               read_freeze_value(config_, **now, 0).state != FreezeState::kNotFrozen) {
      guard = eq(a, **now);
    } else {
      return Error::conflict(fmt::format("freeze {}: {} is '{}', not '{}': refusing to freeze", printable(t.user), a,
                                         printable(**now), config_.active_value));
    }
  }
  auto st = directory_.set_attribute(t.dn, a, value, guard);
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
  std::string guard = eq(a, config_.frozen_value);
  if (config_.until_in_value) {
    // Whatever deadline the value carries (expired or not), it is ours to lift.
    auto now = directory_.get_attribute(t.dn, a);
    if (!now.ok()) return std::move(now).error().context(fmt::format("thaw {}", printable(t.user)));
    if (now->has_value() && read_freeze_value(config_, **now, 0).state != FreezeState::kNotFrozen) guard = eq(a, **now);
  }
  auto st = directory_.set_attribute(t.dn, a, config_.active_value, guard);
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
