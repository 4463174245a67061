#include "doveadm/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "doveadm/curl_lazy.h"
#include "util/strings.h"

namespace mailshard {
namespace {

Status global_init_once() {
  MS_CHECK(load_curl());
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return {};
}

struct Sink {
  std::string* out;
  size_t limit;
  bool overflow = false;
};

size_t write_cb(char* data, size_t size, size_t nmemb, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t n = size * nmemb;
  if (sink->out->size() + n > sink->limit) {
    sink->overflow = true;
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
  sink->out->append(data, n);
  return n;
}

std::string_view method_name(HttpMethod m) { return m == HttpMethod::kPost ? "POST" : "GET"; }

std::string reason_phrase(long status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

std::string redact_url(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return printable(url);
  size_t host_start = scheme + 3;
  size_t path = url.find_first_of("/?#", host_start);
  size_t at = url.rfind('@', path == std::string_view::npos ? url.size() : path);
  if (at == std::string_view::npos || at < host_start) return printable(url);
  return printable(std::string(url.substr(0, host_start)) + std::string(url.substr(at + 1)));
}

Result<HttpResponse> http_request(const HttpRequest& req) {
  const std::string what = fmt::format("{} {}", method_name(req.method), redact_url(req.url));
  MS_CHECK(global_init_once().context(what));
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Error::internal(what + ": curl_easy_init failed");
  CURL* c = curl.get();

  HttpResponse resp;
  Sink sink{&resp.body, req.max_response_bytes};
  int64_t connect_ms = req.connect_timeout_ms > 0 ? req.connect_timeout_ms : std::min<int64_t>(req.timeout_ms, 3'000);

  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_ms));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // node_exporter gzips when asked
  curl_easy_setopt(c, CURLOPT_USERAGENT, "mailshard/0.1");
  if (req.method == HttpMethod::kPost) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body.size()));
  }
  // Certificate and host name checks stay on (libcurl's default); only the
  // trusted CAs can be chosen.
  if (!req.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, req.ca_file.c_str());
  if (!req.basic_user.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, req.basic_user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, req.basic_password.reveal().c_str());
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  for (const auto& h : req.headers) headers.reset(curl_slist_append(headers.release(), h.c_str()));
  if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());

  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    // curl_easy_strerror, not the error buffer: the buffer adds timings
    // ("after 3001 ms") that make messages differ from run to run, and the
    // URL is already in `what`.
    std::string detail = curl_easy_strerror(rc);
    if (sink.overflow)
      return Error::corrupt(fmt::format("{}: response larger than {} bytes", what, req.max_response_bytes));
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT: return Error::timeout(fmt::format("{}: {}", what, detail));
      case CURLE_PEER_FAILED_VERIFICATION:
        return Error::permission(fmt::format("{}: TLS certificate not accepted: {} (check the server's ca_file{})", what,
                                             detail, req.ca_file.empty() ? ", unset: the system CAs" : " '" + printable(req.ca_file) + "'"));
      case CURLE_SSL_CACERT_BADFILE:
        return Error::invalid(fmt::format("{}: cannot use ca_file '{}': {}", what, printable(req.ca_file), detail));
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL: return Error::invalid(fmt::format("{}: {}", what, detail));
      default: return Error::unavailable(fmt::format("{}: {}", what, detail));
    }
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

Status check_http_status(const HttpRequest& req, const HttpResponse& resp) {
  if (resp.status >= 200 && resp.status < 300) return {};
  std::string phrase = reason_phrase(resp.status);
  std::string msg = fmt::format("{} {}: HTTP {}{}{}", method_name(req.method), redact_url(req.url), resp.status,
                                phrase.empty() ? "" : " ", phrase);
  if (resp.status == 401 || resp.status == 403) return Error::permission(msg + " (check the credentials)");
  if (resp.status == 404) return Error::not_found(msg);
  if (resp.status >= 500 || resp.status == 429) return Error::unavailable(msg);
  return Error::invalid(msg);
}

}  // namespace mailshard
