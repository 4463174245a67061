// Freeze through an LDAP attribute (freeze.attribute, e.g. mailAccountStatus):
// frozen_value while a move holds the user, active_value otherwise. The
// proxy's auth_http and the MTA's routing honour it; the flip asserts it.
//
// Every write reads the value first and swaps exactly what it read (an LDAP
// assertion control), so the backend never overrides an operator's decision
// or another controller's freeze: it freezes only an active (or
// attribute-less) account, or refreshes its own freeze, and thaws only an
// account it finds frozen by its own move. A disabled account stays disabled.
// With owner_in_value (the default) the value names the move that froze it
// ("frozen;move=42.9f3a1c2b", core/freeze_value.h); a value naming no move
// is thawed by any move, as before owners were written.
// LDAP cannot expire the value by itself: the expiry is enforced by the
// mover's guard process and by `mailshard resume` (docs/operations.md), and
// with until_in_value the value carries its deadline
// ("frozen;until=20261205T013000Z") so the routers we ship let the user in
// after it with no mailshard process running.
#pragma once

#include "core/config.h"
#include "core/directory.h"
#include "core/freeze_backend.h"

namespace mailshard {

class LdapAttributeFreeze final : public FreezeBackend {
 public:
  LdapAttributeFreeze(const FreezeConfig& config, Directory& directory) : config_(config), directory_(directory) {}
  std::string_view name() const override { return "ldap-attribute"; }
  // Errors: kConflict when the account holds another value (e.g. disabled)
  // or is frozen by another move.
  Status freeze(const FreezeTarget& target, int64_t until_ms) override;
  Status thaw(const FreezeTarget& target) override;
  std::string flip_assertion(const FreezeTarget& target, int64_t until_ms) const override;

 private:
  const FreezeConfig& config_;
  Directory& directory_;
};

}  // namespace mailshard
