// The nginx mail auth_http protocol (http://nginx.org/en/docs/mail/ngx_mail_auth_http_module.html)
// as mailshard answers it: who may log in, and to which store.
//
// nginx asks, for every login, "GET /auth HTTP/1.0" with the headers
// Auth-Method, Auth-User, Auth-Pass (both URL-escaped), Auth-Protocol,
// Auth-Login-Attempt and Client-IP, and reads back Auth-Status ("OK", or the
// text the client sees), Auth-Server/Auth-Port (an IP and a port: where to
// proxy) and Auth-Wait (seconds nginx waits before it lets the client retry).
//
// The decision, in order:
//   unknown login, wrong password      [AUTHENTICATIONFAILED], Auth-Wait
//   directory unreachable or entry      [UNAVAILABLE] temporary failure, Auth-Wait
//     that cannot be trusted (two        (never a guessed backend)
//     hosts, unknown host, ...)
//   frozen, frozen;move=... (the freeze  [UNAVAILABLE] account being moved, Auth-Wait
//     attribute, core/freeze_value.h)
//   frozen;...;until=<passed deadline>  as not frozen (the freeze expired by itself)
//   one of [auth_http] disabled_values  [CONTACTADMIN] disabled, no Auth-Wait
//   otherwise                           OK, the mailHost's imap_address/pop3_address
// The password is checked before anything about the account is said.
// Pure apart from the AuthDirectory it is given; thread-safe (const).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/directory.h"
#include "util/result.h"

namespace mailshard {

// What one responder worker asks the directory; one per thread.
class AuthDirectory {
 public:
  virtual ~AuthDirectory() = default;
  // The account a login names. Errors: kNotFound (no such login),
  // kInvalidInput (ambiguous, or an entry that cannot be trusted),
  // kUnavailable/kTimeout/kPermission (the directory).
  virtual Result<Account> find_login(const std::string& login) = 0;
  // true when `password` is the account's. Errors: the directory's.
  virtual Result<bool> check_password(const std::string& dn, const std::string& password) = 0;
};

struct AuthRequest {
  std::string method = "plain";  // Auth-Method
  std::string user;              // Auth-User, unescaped
  std::string pass;              // Auth-Pass, unescaped; never logged
  std::string protocol = "imap"; // Auth-Protocol
  std::string attempt = "1";     // Auth-Login-Attempt
  std::string client_ip = "-";   // Client-IP
  std::string auth_key;          // X-Auth-Key (the shared secret), if sent
};

struct AuthAnswer {
  std::string status;        // Auth-Status
  std::string server;        // Auth-Server (with OK)
  int port = 0;              // Auth-Port (with OK)
  int wait_s = -1;           // Auth-Wait; < 0 = none
  std::string decision;      // ok, failed, frozen, disabled, tempfail, forbidden
  std::string log;           // the rest of the decision's log line ("store=store2 port=11143", "why=...")
  bool warn = false;         // worth a warning in the log (not a user's typo)
};

// Parses the head of an auth_http request (request line and headers, up to
// and without the blank line). Errors (kInvalidInput): not a GET, a line
// without a colon, a header or value too long, bad %-escapes.
Result<AuthRequest> parse_auth_request(std::string_view head);

// "HTTP/1.0 200 OK\r\nAuth-Status: ...\r\n...\r\n\r\n".
std::string format_auth_response(const AuthAnswer& a);

// "%41b" -> "Ab". Error (kInvalidInput) on a bad escape or a NUL byte.
Result<std::string> url_unescape(std::string_view s);

class AuthDecider {
 public:
  AuthDecider(const Config& config, Clock& clock);
  AuthAnswer decide(const AuthRequest& request, AuthDirectory& directory) const;
  // The decision's log line: user=... client=... attempt=... protocol=... decision=... (the answer's log).
  static std::string log_line(const AuthRequest& request, const AuthAnswer& answer);

 private:
  AuthAnswer refuse(std::string decision, std::string log, bool warn = false) const;
  const Config& config_;
  Clock& clock_;
};

}  // namespace mailshard
