#include "freeze/freeze_table.h"

#include "doveadm/director_client.h"
#include "doveadm/doveadm_fleet.h"
#include "freeze/command_freeze.h"
#include "freeze/http_freeze.h"
#include "freeze/ldap_attribute_freeze.h"
#include "freeze/thaw_hook.h"

namespace mailshard {

namespace {

std::unique_ptr<FreezeBackend> make_gate(const Config& config, Directory& directory) {
  switch (config.freeze.method) {
    case FreezeMethod::kLdapAttribute: return std::make_unique<LdapAttributeFreeze>(config.freeze, directory);
    case FreezeMethod::kHttp: return std::make_unique<HttpFreeze>(config.freeze);
    case FreezeMethod::kCommand: return std::make_unique<CommandFreeze>(config.freeze.command);
    case FreezeMethod::kNone: return std::make_unique<NoFreeze>();
  }
  return std::make_unique<NoFreeze>();
}

}  // namespace

std::unique_ptr<FreezeBackend> make_freeze_backend(const Config& config, Directory& directory) {
  auto gate = make_gate(config, directory);
  // Nothing was held without a freeze, so there is nothing for the hook to release.
  if (config.thaw.command.empty() || config.freeze.method == FreezeMethod::kNone) return gate;
  return std::make_unique<ThawHook>(std::move(gate), config.thaw.command, config.thaw.timeout_ms);
}

std::unique_ptr<SessionKicker> make_session_kicker(const Config& config) {
  switch (config.kick.method) {
    case KickMethod::kDoveadm:
      // Behind a director, the director ends the user's proxied sessions wherever they are.
      if (config.router.method == RouterMethod::kDirector) return std::make_unique<DirectorKicker>(config);
      return std::make_unique<DoveadmFleet>(config);
    case KickMethod::kCommand: return std::make_unique<CommandKicker>(config.kick.command);
    case KickMethod::kNone: return std::make_unique<NoKick>();
  }
  return std::make_unique<NoKick>();
}

}  // namespace mailshard
