// `mailshard auth-http` against the lab's real slapd (the lab's nginx runs
// one; these start their own on base+81 to break things safely): real binds,
// LDAP down, the shared secret, a port in use, a config with nowhere to route.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int responder_port() { return std::stoi(Lab::get().env("LAB_PORT_BASE")) + 81; }

bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool open = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);  // no request: the responder counts nothing
  return open;
}

// One auth_http request the way nginx sends it; "" when nobody answers.
std::string ask(int port, const std::string& user, const std::string& pass, const std::string& extra = "") {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string rq = "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: " + user +
                     "\r\nAuth-Pass: " + pass + "\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n" +
                     extra + "\r\n";
    (void)!send(fd, rq.data(), rq.size(), MSG_NOSIGNAL);
    char buf[512];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

// `mailshard -c CONFIG auth-http --listen 127.0.0.1:base+81` on a thread until stop().
class Responder {
 public:
  explicit Responder(std::string config) : config_(std::move(config)) {
    t_ = std::thread([this] {
      result_ = mailshard(config_, {"auth-http", "--listen", "127.0.0.1:" + std::to_string(responder_port()), "--workers", "4"},
                          {}, 120);
    });
    for (int i = 0; i < 200 && !port_open(responder_port()); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  // SIGTERM; returns what it printed and its exit status.
  RunResult stop() {
    Lab::get().run({"pkill", "-TERM", "-f", config_ + " auth-http"});
    t_.join();
    return result_;
  }
  ~Responder() {
    if (t_.joinable()) stop();
  }

 private:
  std::string config_;
  std::thread t_;
  RunResult result_;
};

TEST(AuthHttp, RealBindsRouteByMailHostAndRefuseWrongPasswords) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store2");
  Responder r(lab_config("auth_real"));
  std::string ok = ask(responder_port(), user, "secret");
  EXPECT_THAT(ok, HasSubstr("Auth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: " + lab.env("STORE2_IMAP_PORT") + "\r\n"));
  // The login may be the uid as well as the mail address; %-escapes are undone.
  std::string uid = user.substr(0, user.find('@'));
  EXPECT_THAT(ask(responder_port(), uid, "secret"), HasSubstr("Auth-Status: OK"));
  EXPECT_THAT(ask(responder_port(), user, "se%63ret"), HasSubstr("Auth-Status: OK"));
  EXPECT_THAT(ask(responder_port(), user, "wrong"), HasSubstr("[AUTHENTICATIONFAILED]"));
  EXPECT_THAT(ask(responder_port(), "nobody@example.org", "secret"), HasSubstr("[AUTHENTICATIONFAILED]"));
  // An LDAP filter in the login is a value, not a filter.
  EXPECT_THAT(ask(responder_port(), "*", "secret"), HasSubstr("[AUTHENTICATIONFAILED]"));
  RunResult done = r.stop();
  EXPECT_EQ(done.rc, 0) << done.describe();
  EXPECT_THAT(done.err, HasSubstr("user=" + user + " client=127.0.0.1 attempt=1 protocol=imap decision=ok store=store2"));
  EXPECT_THAT(done.err, HasSubstr("decision=failed why=bad-password"));
  EXPECT_THAT(done.err, HasSubstr("stopped after 6 requests (3 ok, 3 refused, 0 bad, 0 dropped)"));
  EXPECT_THAT(done.err, Not(HasSubstr("wrong"))) << "passwords are never logged";
}

TEST(AuthHttp, LdapDownIsATemporaryFailureWithAuthWaitNeverABackend) {
  // A port nothing listens on: base+82.
  const std::string dead = "ldap://127.0.0.1:" + std::to_string(std::stoi(Lab::get().env("LAB_PORT_BASE")) + 82);
  Responder r(lab_config("auth_ldap_down", {{R"(uri = "ldap://[^"]*")", "uri = \"" + dead + "\""}}));
  std::string reply = ask(responder_port(), "user00001@example.org", "secret");
  EXPECT_THAT(reply, HasSubstr("Auth-Status: [UNAVAILABLE] Temporary authentication failure, try again later\r\n"));
  EXPECT_THAT(reply, HasSubstr("Auth-Wait: 3\r\n"));
  EXPECT_THAT(reply, Not(HasSubstr("Auth-Server")));
  RunResult done = r.stop();
  EXPECT_EQ(done.rc, 0) << done.describe();
  EXPECT_THAT(done.err, HasSubstr("decision=tempfail"));
  EXPECT_THAT(done.err, HasSubstr("Can't contact LDAP server"));
}

TEST(AuthHttp, WithASharedSecretOnlyTheProxyMayAsk) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  const std::string secret = lab.dir() + "/secrets/auth_http.secret";
  lab.run({"sh", "-c", "printf k3y > " + secret + " && chmod 600 " + secret});
  Responder r(lab_config("auth_secret", {{R"(auth_wait = .*)", "auth_wait = \"1s\"\nshared_secret_file = \"" + secret + "\""}}));
  EXPECT_THAT(ask(responder_port(), user, "secret"), HasSubstr("[UNAVAILABLE]"));
  EXPECT_THAT(ask(responder_port(), user, "secret", "X-Auth-Key: nope\r\n"), HasSubstr("Auth-Wait: 1\r\n"));
  EXPECT_THAT(ask(responder_port(), user, "secret", "X-Auth-Key: k3y\r\n"), HasSubstr("Auth-Status: OK"));
  RunResult done = r.stop();
  EXPECT_THAT(done.err, HasSubstr("decision=forbidden why=bad-auth-key"));
}

// A line-based exchange with nginx's POP3 listener: greeting, USER, PASS; the last line.
std::string pop3_login(int port, const std::string& user, const std::string& pass) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got, last;
  auto line = [&] {
    char buf[256];
    size_t nl;
    while ((nl = got.find("\r\n")) == std::string::npos) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return std::string();
      got.append(buf, static_cast<size_t>(n));
    }
    std::string l = got.substr(0, nl);
    got.erase(0, nl + 2);
    return l;
  };
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && line().rfind("+OK", 0) == 0) {
    std::string u = "USER " + user + "\r\n", p = "PASS " + pass + "\r\n";
    (void)!send(fd, u.data(), u.size(), MSG_NOSIGNAL);
    if (line().rfind("+OK", 0) == 0) {
      (void)!send(fd, p.data(), p.size(), MSG_NOSIGNAL);
      last = line();
    }
  }
  close(fd);
  return last;
}

TEST(AuthHttp, Pop3ThroughNginxGetsPop3TextsAndNoStoreWithoutAPop3Address) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  // The lab's stores serve IMAP only (no pop3_address): a temporary failure in POP3's own words.
  EXPECT_EQ(pop3_login(std::stoi(lab.env("NGINX_POP3_PORT")), user, "secret"),
            "-ERR [SYS/TEMP] Temporary authentication failure, try again later");
  EXPECT_EQ(pop3_login(std::stoi(lab.env("NGINX_POP3_PORT")), user, "wrong"), "-ERR [AUTH] Invalid login or password");
  EXPECT_THAT(lab.last_auth_decision(user), HasSubstr("protocol=pop3 decision=failed why=bad-password"));
}

TEST(AuthHttp, APortInUseAndNowhereToRouteAreOneLineErrors) {
  Lab& lab = Lab::get();
  const std::string cfg = lab_config("auth_check");
  RunResult busy = mailshard(cfg, {"auth-http", "--check"});  // the lab's own responder holds [auth_http] listen
  EXPECT_EQ(busy.rc, 1) << busy.describe();
  EXPECT_EQ(busy.err, "mailshard: auth-http: cannot listen on 127.0.0.1:" + lab.env("AUTH_HTTP_PORT") +
                          ": Address already in use\n");
  RunResult free_port = mailshard(cfg, {"auth-http", "--check", "--listen", "127.0.0.1:" + std::to_string(responder_port())});
  EXPECT_EQ(free_port.rc, 0) << free_port.describe();
  RunResult nowhere = mailshard(lab_config("auth_nowhere", {{R"(imap_address = .*)", ""}}), {"auth-http", "--check"});
  EXPECT_EQ(nowhere.rc, 2) << nowhere.describe();
  EXPECT_THAT(nowhere.err, HasSubstr("no [[server]] has imap_address or pop3_address"));
}

}  // namespace
}  // namespace mailshard::testing
