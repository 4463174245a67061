#include "doveadm/director_client.h"

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {
namespace {

using nlohmann::json;

std::string field(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_string()) return {};
  std::string v = it->get<std::string>();
  return v == "-" ? std::string() : v;
}

int int_field(const json& o, const char* key) {
  auto r = parse_int(field(o, key));
  return r.ok() ? static_cast<int>(*r) : 0;
}

}  // namespace

Result<std::vector<DirectorBackend>> parse_director_status(const json& payload) {
  if (!payload.is_array()) return Error::corrupt("doveadm directorStatus: payload is not an array");
  std::vector<DirectorBackend> out;
  for (const auto& o : payload) {
    if (!o.is_object() || field(o, "mail server ip").empty())
      return Error::corrupt(
          fmt::format("doveadm directorStatus: malformed entry '{}'", printable(o.dump(), 80)));
    out.push_back({field(o, "mail server ip"), field(o, "state"), int_field(o, "vhosts"), int_field(o, "users")});
  }
  return out;
}

Result<DirectorUserStatus> parse_director_user_status(const json& payload) {
  if (!payload.is_array() || payload.size() != 1 || !payload[0].is_object() || !payload[0].contains("hashed"))
    return Error::corrupt(
        fmt::format("doveadm directorStatus: unexpected answer for a user: '{}'", printable(payload.dump(), 80)));
  const json& o = payload[0];
  // A user without a mapping: status "n/a", expires "-1".
  std::string current = field(o, "status"), expires = field(o, "expires");
  if (current == "n/a") current.clear();
  if (expires == "-1") expires.clear();
  return DirectorUserStatus{current, field(o, "hashed"), expires};
}

std::unique_ptr<DirectorClient> DirectorClient::from_config(const RouterConfig& router) {
  DoveadmOptions o;
  o.url = router.director_url;
  o.user = router.director_user;
  o.password = router.director_password;
  o.ca_file = router.ca_file;
  o.timeout_ms = router.timeout_ms;
  return std::make_unique<DirectorClient>(std::move(o));
}

Result<std::vector<DirectorBackend>> DirectorClient::backends() {
  auto r = api_.run("directorStatus", json::object());
  if (!r.ok()) return std::move(r).error().context(describe());
  return parse_director_status(*r);
}

Result<DirectorUserStatus> DirectorClient::user_status(const std::string& user) {
  auto r = api_.run("directorStatus", {{"user", user}});
  if (!r.ok()) return std::move(r).error().context(describe());
  return parse_director_user_status(*r);
}

Status DirectorClient::move(const std::string& user, const std::string& host) {
  auto r = api_.run("directorMove", {{"user", user}, {"host", host}});
  if (!r.ok()) {
    // doveadm director move answers 68 (not found) for a backend the ring does not know.
    if (r.error().code() == ErrorCode::kNotFound)
      return Error::not_found(fmt::format("{}: does not know backend {} ({})", describe(), host, r.error().message()));
    return std::move(r).error().context(describe());
  }
  return {};
}

Status DirectorClient::kick(const std::string& user) {
  auto r = api_.run("directorKick", {{"user", user}});
  if (!r.ok()) return std::move(r).error().context(describe());
  return {};
}

DirectorKicker::DirectorKicker(const Config& config)
    : director_(DirectorClient::from_config(config.router)), fleet_(config) {}

Status DirectorKicker::kick(const std::string& user, const std::string& server) {
  (void)server;  // the director reaches the user's sessions wherever they are
  return director_->kick(user);
}

Result<int> DirectorKicker::sessions(const std::string& user, const std::string& server) {
  return fleet_.sessions(user, server);
}

}  // namespace mailshard
