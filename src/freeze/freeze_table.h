// The one table that turns [freeze] method and [kick] method into backends
// ([thaw] command wraps the freeze backend in a ThawHook).
#pragma once

#include <memory>

#include "core/config.h"
#include "core/directory.h"
#include "core/freeze_backend.h"

namespace mailshard {

// A backend that does nothing ([freeze] method = "none"); moves then need
// --no-freeze and warn that the user is not held.
class NoFreeze final : public FreezeBackend {
 public:
  std::string_view name() const override { return "none"; }
  Status freeze(const FreezeTarget&, int64_t) override { return {}; }
  Status thaw(const FreezeTarget&) override { return {}; }
};

class NoKick final : public SessionKicker {
 public:
  std::string_view name() const override { return "none"; }
  Status kick(const std::string&, const std::string&) override { return {}; }
  Result<int> sessions(const std::string&, const std::string&) override {
    return Error::unsupported("[kick] method = \"none\" cannot count sessions");
  }
};

// `directory` is used by ldap-attribute and must outlive the backend.
std::unique_ptr<FreezeBackend> make_freeze_backend(const Config& config, Directory& directory);
std::unique_ptr<SessionKicker> make_session_kicker(const Config& config);

}  // namespace mailshard
