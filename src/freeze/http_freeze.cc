#include "freeze/http_freeze.h"

#include <curl/curl.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/strings.h"

namespace mailshard {
namespace {

size_t collect(char* data, size_t size, size_t n, void* out) {
  auto* s = static_cast<std::string*>(out);
  if (s->size() < 4096) s->append(data, std::min(size * n, 4096 - s->size()));
  return size * n;
}

}  // namespace

Status HttpFreeze::post(const FreezeTarget& target, std::string_view action, int64_t until_ms) {
  nlohmann::json body = {{"user", target.user}, {"dn", target.dn}, {"action", action}};
  if (until_ms > 0) body["until"] = until_ms / 1000;
  std::string payload = body.dump();
  std::string response;
  CURL* curl = curl_easy_init();
  if (!curl) return Error::internal("curl_easy_init failed");
  struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  std::string auth;
  if (!config_.token.empty()) {
    auth = "Authorization: Bearer " + config_.token.reveal();
    headers = curl_slist_append(headers, auth.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, config_.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  std::string what = fmt::format("freeze webhook {} {}", action, config_.url);
  if (rc == CURLE_OPERATION_TIMEDOUT) return Error::timeout(fmt::format("{}: {}", what, curl_easy_strerror(rc)));
  if (rc != CURLE_OK) return Error::unavailable(fmt::format("{}: {}", what, curl_easy_strerror(rc)));
  if (status == 401 || status == 403)
    return Error::permission(fmt::format("{}: HTTP {} (check freeze.token_file)", what, status));
  if (status < 200 || status >= 300) {
    std::string first_line = response.substr(0, response.find('\n'));
    return Error::unavailable(fmt::format("{}: HTTP {}{}{}", what, status, first_line.empty() ? "" : ": ",
                                          printable(first_line, 200)));
  }
  return {};
}

Status HttpFreeze::freeze(const FreezeTarget& target, int64_t until_ms) { return post(target, "freeze", until_ms); }
Status HttpFreeze::thaw(const FreezeTarget& target) { return post(target, "thaw", 0); }

}  // namespace mailshard
