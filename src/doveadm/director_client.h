// DirectorClient: the DirectorRouter of a Dovecot 2.3 director ring, through the doveadm HTTP
// API of one director ([router] director_url): directorStatus, directorMove, directorKick.
// DirectorKicker: the SessionKicker of [router] method = "director" (kicks go to the director,
// sessions are counted on the backend's own doveadm_url when it has one).
//
// Thread-safety: like DoveadmClient, immutable after construction.
#pragma once

#include <memory>
#include <string>

#include "core/config.h"
#include "core/director_router.h"
#include "core/freeze_backend.h"
#include "doveadm/doveadm_client.h"
#include "doveadm/doveadm_fleet.h"

namespace mailshard {

class DirectorClient final : public DirectorRouter {
 public:
  explicit DirectorClient(DoveadmOptions options) : api_(std::move(options)) {}
  // From [router]: director_url, director_user, director_password, ca_file, timeout.
  static std::unique_ptr<DirectorClient> from_config(const RouterConfig& router);

  std::string describe() const override { return "director " + api_.url(); }
  Result<std::vector<DirectorBackend>> backends() override;
  Result<DirectorUserStatus> user_status(const std::string& user) override;
  Status move(const std::string& user, const std::string& host) override;
  Status kick(const std::string& user) override;

 private:
  DoveadmClient api_;
};

// Payload parsers (exposed for unit tests). kCorrupt on a malformed payload.
Result<std::vector<DirectorBackend>> parse_director_status(const nlohmann::json& payload);
Result<DirectorUserStatus> parse_director_user_status(const nlohmann::json& payload);

class DirectorKicker final : public SessionKicker {
 public:
  explicit DirectorKicker(const Config& config);
  std::string_view name() const override { return "director"; }
  // doveadm director kick USER: the director ends the user's proxied sessions on every backend.
  Status kick(const std::string& user, const std::string& server) override;
  Result<int> sessions(const std::string& user, const std::string& server) override;

 private:
  std::unique_ptr<DirectorClient> director_;
  DoveadmFleet fleet_;
};

}  // namespace mailshard
