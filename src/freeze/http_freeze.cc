#include "freeze/http_freeze.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "doveadm/http_client.h"
#include "util/strings.h"

namespace mailshard {

Status HttpFreeze::post(const FreezeTarget& target, std::string_view action, int64_t until_ms) {
  nlohmann::json body = {{"user", target.user}, {"dn", target.dn}, {"action", action}};
  if (until_ms > 0) body["until"] = until_ms / 1000;
  HttpRequest req;
  req.method = HttpMethod::kPost;
  req.url = config_.url;
  req.body = body.dump();
  req.headers.push_back("Content-Type: application/json");
  if (!config_.token.empty()) req.headers.push_back("Authorization: Bearer " + config_.token.reveal());
  req.timeout_ms = timeout_ms_;
  req.connect_timeout_ms = timeout_ms_;
  req.max_response_bytes = 64u << 10;  // a webhook answers in a line or two
  // Messages read "freeze webhook freeze: POST <url>: ..." (the URL without userinfo).
  const std::string what = fmt::format("freeze webhook {}", action);
  auto resp = http_request(req);
  if (!resp.ok()) return std::move(resp).error().context(what);
  if (resp->status == 401 || resp->status == 403)
    return Error::permission(
        fmt::format("{}: POST {}: HTTP {} (check freeze.token_file)", what, redact_url(req.url), resp->status));
  if (resp->status < 200 || resp->status >= 300) {
    std::string first_line = resp->body.substr(0, resp->body.find('\n'));
    return Error::unavailable(fmt::format("{}: POST {}: HTTP {}{}{}", what, redact_url(req.url), resp->status,
                                          first_line.empty() ? "" : ": ", printable(first_line, 200)));
  }
  return {};
}

Status HttpFreeze::freeze(const FreezeTarget& target, int64_t until_ms) { return post(target, "freeze", until_ms); }
Status HttpFreeze::thaw(const FreezeTarget& target) { return post(target, "thaw", 0); }

}  // namespace mailshard
