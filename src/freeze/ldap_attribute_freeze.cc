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

// The assertion that the attribute still holds exactly what was read.
std::string holds(const std::string& attr, const std::optional<std::string>& now) {
  return now ? eq(attr, *now) : fmt::format("(!({}=*))", attr);
}
}  // namespace

std::string LdapAttributeFreeze::flip_assertion(const FreezeTarget& t, int64_t until_ms) const {
  return eq(config_.attribute, frozen_value_for(config_, until_ms, t.owner));
}

// Reads the value, decides, and swaps exactly what it read: a value changed in
// between (another controller's freeze, an operator) makes the write fail
// with kConflict instead of overriding it.
Status LdapAttributeFreeze::freeze(const FreezeTarget& t, int64_t until_ms) {
  const std::string& a = config_.attribute;
  const std::string value = frozen_value_for(config_, until_ms, t.owner);
  auto refuse = [&](const std::string& now, const std::string& why) {
    return Error::conflict(
        fmt::format("freeze {}: {} is '{}', {}: refusing to freeze", printable(t.user), a, printable(now), why));
  };
  auto now = directory_.get_attribute(t.dn, a);
  if (!now.ok()) return std::move(now).error().context(fmt::format("freeze {}", printable(t.user)));
  if (now->has_value() && **now != config_.active_value) {
    FreezeValue f = read_freeze_value(config_, **now, 0);
    if (f.state == FreezeState::kNotFrozen) return refuse(**now, fmt::format("not '{}'", config_.active_value));
    // Frozen already: refreshed only by the move that froze it (a value that
    // names no move is ours only when we name none either).
    if (f.owner != (config_.owner_in_value ? t.owner : std::string()))
      return refuse(**now, f.owner.empty() ? std::string("frozen by something other than this move")
                                           : fmt::format("frozen by move {}", printable(f.owner)));
  }
  auto st = directory_.set_attribute(t.dn, a, value, holds(a, *now));
  if (st.ok()) return {};
  if (st.error().code() == ErrorCode::kConflict) {
    auto again = directory_.get_attribute(t.dn, a);
    std::string v = again.ok() && again->has_value() ? **again : "?";
    return refuse(v, "changed while freezing");
  }
  return std::move(st).error().context(fmt::format("freeze {}", printable(t.user)));
}

Status LdapAttributeFreeze::thaw(const FreezeTarget& t) {
  const std::string& a = config_.attribute;
  auto now = directory_.get_attribute(t.dn, a);
  if (!now.ok()) return std::move(now).error().context(fmt::format("thaw {}", printable(t.user)));
  if (!now->has_value() || **now == config_.active_value) return {};  // not frozen: nothing to thaw
  FreezeValue f = read_freeze_value(config_, **now, 0);
  // Whatever deadline the value carries (expired or not), a freeze of this
  // move is ours to lift. A value of no move (a move journaled before owners
  // were written has none either) is lifted by any thaw, as before owners.
  // Never turn a disabled account on, nor lift another move's freeze.
  bool ours = f.state != FreezeState::kNotFrozen && (f.owner.empty() || f.owner == t.owner);
  if (!ours) {
    spdlog::warn("thaw {}: {} is '{}'{}; left as it is", printable(t.user), a, printable(**now),
                 f.owner.empty() ? "" : fmt::format(" (frozen by move {}, not this one)", printable(f.owner)));
    return {};
  }
  auto st = directory_.set_attribute(t.dn, a, config_.active_value, eq(a, **now));
  if (st.ok()) return {};
  if (st.error().code() == ErrorCode::kConflict) {
    // Changed since we read it: not ours to lift any more.
    auto again = directory_.get_attribute(t.dn, a);
    if (again.ok() && again->has_value() && **again != config_.active_value)
      spdlog::warn("thaw {}: {} is '{}'; left as it is", printable(t.user), a, printable(**again));
    return {};
  }
  return std::move(st).error().context(fmt::format("thaw {}", printable(t.user)));
}

}  // namespace mailshard
