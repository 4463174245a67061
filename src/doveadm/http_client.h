// A small blocking HTTP client on libcurl, for the JSON and text endpoints
// mailshard talks to (doveadm's HTTP API, node_exporter's /metrics).
//
// Every request is bounded: a connect timeout, a total timeout and a cap on
// the response size, so a hung or hostile endpoint costs at most that.
// Credentials travel only in the request (Basic auth from a Secret) and are
// never part of an error message; URLs in messages have any userinfo removed.
//
// Thread-safety: http_request() may be called from several threads at once
// (each call uses its own curl handle; global init happens once).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"
#include "util/secret.h"

namespace mailshard {

enum class HttpMethod { kGet, kPost };

struct HttpRequest {
  HttpMethod method = HttpMethod::kGet;
  std::string url;
  std::string body;                  // POST body
  std::vector<std::string> headers;  // "Content-Type: application/json"
  std::string basic_user;            // Basic auth when non-empty
  Secret basic_password;
  std::string ca_file;               // https: trust this CA bundle instead of the system's
  int64_t timeout_ms = 5'000;        // whole request
  int64_t connect_timeout_ms = 0;    // 0 = min(timeout_ms, 3 s)
  size_t max_response_bytes = 64u << 20;  // a node_exporter page is ~100 KB; this is a safety cap
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

// Performs the request. Success means an HTTP response arrived (any status);
// use check_http_status() to turn a status into an error.
// Errors (messages start with "GET <url>: " / "POST <url>: "):
//   kUnavailable  connection refused, DNS failure, reset, TLS handshake failure
//   kTimeout      the connect or total timeout passed
//   kPermission   the server's TLS certificate was not accepted
//   kCorrupt      the response exceeded max_response_bytes
Result<HttpResponse> http_request(const HttpRequest& request);

// 2xx: ok. 401/403: kPermission ("... HTTP 401 Unauthorized (check the
// credentials)"), 404: kNotFound, 5xx and 429: kUnavailable, other: kInvalidInput.
Status check_http_status(const HttpRequest& request, const HttpResponse& response);

// The URL with any "user:password@" removed, for messages.
std::string redact_url(std::string_view url);

}  // namespace mailshard
