#include "router/auth_http.h"

#include <fmt/format.h>

#include "core/freeze_value.h"
#include "util/net.h"
#include "util/strings.h"

namespace mailshard {
namespace {

constexpr size_t kMaxHeaders = 64;
constexpr size_t kMaxValueBytes = 1024;

// The texts a client sees. IMAP carries RFC 5530 response codes, POP3 the
// RFC 3206 ones; nginx puts them after "NO " / "-ERR ".
struct Texts {
  const char* failed;
  const char* frozen;
  const char* tempfail;
  const char* disabled;
};
constexpr Texts kImap{"[AUTHENTICATIONFAILED] Invalid login or password",
                      "[UNAVAILABLE] Account frozen, try again later",
                      "[UNAVAILABLE] Temporary authentication failure, try again later",
                      "[CONTACTADMIN] Account disabled"};
constexpr Texts kPop3{"[AUTH] Invalid login or password", "[SYS/TEMP] Account frozen, try again later",
                      "[SYS/TEMP] Temporary authentication failure, try again later",
                      "[SYS/PERM] Account disabled"};

const Texts& texts_for(std::string_view protocol) { return protocol == "pop3" ? kPop3 : kImap; }

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Equal without an early exit on the first difference (the shared secret).
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

}  // namespace

Result<std::string> url_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      const bool room = i + 2 < s.size();
      int hi = room ? hex(s[i + 1]) : -1, lo = room ? hex(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return Error::invalid(fmt::format("bad %-escape at byte {}", i));
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return Error::invalid("a NUL byte");
    out.push_back(c);
  }
  return out;
}

Result<AuthRequest> parse_auth_request(std::string_view head) {
  auto eol = head.find("\r\n");
  std::string_view request_line = head.substr(0, eol);
  if (!starts_with(request_line, "GET ")) return Error::invalid("not a GET request");
  AuthRequest r;
  size_t count = 0;
  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    if (++count > kMaxHeaders) return Error::invalid(fmt::format("more than {} headers", kMaxHeaders));
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return Error::invalid(fmt::format("header without a colon: '{}'", printable(line, 60)));
    std::string name = to_lower(trim(line.substr(0, colon)));
    std::string_view value = trim(line.substr(colon + 1));
    if (value.size() > kMaxValueBytes) return Error::invalid(fmt::format("header {} longer than {} bytes", name, kMaxValueBytes));
    if (name == "auth-user") {
      r.user = MS_TRY(url_unescape(value).context("Auth-User"));
    } else if (name == "auth-pass") {
      r.pass = MS_TRY(url_unescape(value).context("Auth-Pass"));
    } else if (name == "auth-method") {
      r.method = to_lower(value);
    } else if (name == "auth-protocol") {
      r.protocol = to_lower(value);
    } else if (name == "auth-login-attempt") {
      r.attempt = std::string(value);
    } else if (name == "client-ip") {
      r.client_ip = std::string(value);
    } else if (name == "x-auth-key") {
      r.auth_key = std::string(value);
    }
  }
  return r;
}

std::string format_auth_response(const AuthAnswer& a) {
  std::string out = "HTTP/1.0 200 OK\r\nAuth-Status: " + a.status + "\r\n";
  if (!a.server.empty()) out += fmt::format("Auth-Server: {}\r\nAuth-Port: {}\r\n", a.server, a.port);
  if (a.wait_s >= 0) out += fmt::format("Auth-Wait: {}\r\n", a.wait_s);
  out += "Content-Length: 0\r\n\r\n";
  return out;
}

AuthDecider::AuthDecider(const Config& config, Clock& clock) : config_(config), clock_(clock) {}

AuthAnswer AuthDecider::refuse(std::string decision, std::string log, bool warn) const {
  AuthAnswer a;
  a.decision = std::move(decision);
  a.log = std::move(log);
  a.warn = warn;
  if (a.decision != "disabled") a.wait_s = static_cast<int>((config_.auth_http.auth_wait_ms + 999) / 1000);
  return a;
}

AuthAnswer AuthDecider::decide(const AuthRequest& rq, AuthDirectory& dir) const {
  const Texts& t = texts_for(rq.protocol);
  auto with = [](AuthAnswer a, const char* status) {
    a.status = status;
    return a;
  };
  const Secret& secret = config_.auth_http.shared_secret;
  if (!secret.reveal().empty() && !same_secret(rq.auth_key, secret.reveal()))
    return with(refuse("forbidden", "why=bad-auth-key", true), t.tempfail);
  if (rq.protocol != "imap" && rq.protocol != "pop3")
    return with(refuse("failed", fmt::format("why=unsupported-protocol:{}", printable(rq.protocol, 20))), t.failed);
  // APOP and CRAM-MD5 need the clear-text password on our side; LDAP has a hash.
  if (rq.method != "plain" && rq.method != "login")
    return with(refuse("failed", fmt::format("why=unsupported-method:{}", printable(rq.method, 20))), t.failed);
  if (rq.user.empty() || rq.pass.empty()) return with(refuse("failed", "why=empty-login"), t.failed);

  auto account = dir.find_login(rq.user);
  if (!account.ok()) {
    const Error& e = account.error();
    if (e.code() == ErrorCode::kNotFound) return with(refuse("failed", "why=unknown-user"), t.failed);
    return with(refuse("tempfail", fmt::format("why=\"{}\"", printable(e.message())), true), t.tempfail);
  }
  auto password_ok = dir.check_password(account->dn, rq.pass);
  if (!password_ok.ok())
    return with(refuse("tempfail", fmt::format("why=\"{}\"", printable(password_ok.error().message())), true),
                t.tempfail);
  if (!*password_ok) return with(refuse("failed", "why=bad-password"), t.failed);

  const std::string store = "store=" + printable(account->host, 60);
  const std::string status = " status=" + (account->status.empty() ? std::string("-") : printable(account->status, 60));
  const std::string where = store + status;
  if (config_.freeze.method == FreezeMethod::kLdapAttribute) {
    FreezeValue f = read_freeze_value(config_.freeze, account->status, clock_.now_ms());
    if (f.state == FreezeState::kFrozen)
      return with(refuse("frozen", where + (f.bad_deadline ? " why=unreadable-deadline" : ""), f.bad_deadline),
                  t.frozen);
  }
  for (const auto& v : config_.auth_http.disabled_values)
    if (account->status == v) return with(refuse("disabled", where), t.disabled);

  const ServerConfig* server = config_.find_server(account->host);
  const std::string& address = server ? (rq.protocol == "pop3" ? server->pop3_address : server->imap_address) : "";
  auto parsed = parse_socket_address(address);
  if (!server || !parsed.ok())
    return with(refuse("tempfail", fmt::format("{} why=no-{}_address", where, rq.protocol), true), t.tempfail);
  AuthAnswer ok;
  ok.status = "OK";
  ok.server = parsed->ip;
  ok.port = parsed->port;
  ok.decision = "ok";
  ok.log = fmt::format("{} port={}{}", store, parsed->port, status);
  return ok;
}

std::string AuthDecider::log_line(const AuthRequest& rq, const AuthAnswer& a) {
  return fmt::format("user={} client={} attempt={} protocol={} decision={} {}", rq.user.empty() ? "-" : printable(rq.user, 120),
                     printable(rq.client_ip, 60), printable(rq.attempt, 10), printable(rq.protocol, 20), a.decision, a.log);
}

}  // namespace mailshard
