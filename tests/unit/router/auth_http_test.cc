// The auth_http responder: request parsing, every decision with a fake
// directory, and the server end to end on a loopback port (concurrent
// requests, bad and stalled clients, stop).
#include "router/auth_http.h"
#include "router/auth_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/freeze_value.h"
#include "tests/support/fakes.h"
#include "util/log.h"

namespace mailshard {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class FakeAuthDirectory final : public AuthDirectory {
 public:
  struct Entry {
    Account account;
    std::string password;
  };
  std::map<std::string, Entry> entries;  // by login
  std::optional<Error> find_error, bind_error;
  int binds = 0;

  void add(const std::string& login, const std::string& host, const std::string& status = "active") {
    Account a;
    a.dn = "uid=" + login + ",ou=people,dc=example,dc=org";
    a.user = login;
    a.host = host;
    a.status = status;
    entries[login] = {a, "secret"};
  }
  Result<Account> find_login(const std::string& login) override {
    if (find_error) return *find_error;
    auto it = entries.find(login);
    if (it == entries.end()) return Error::not_found("no account with mail=" + login);
    return it->second.account;
  }
  Result<bool> check_password(const std::string& dn, const std::string& password) override {
    ++binds;
    if (bind_error) return *bind_error;
    for (const auto& [_, e] : entries)
      if (e.account.dn == dn) return !password.empty() && password == e.password;
    return false;
  }
};

Config test_config() {
  Config c;
  for (auto [name, imap, pop3] : {std::tuple{"store1", "127.0.0.1:11143", "127.0.0.1:11110"},
                                  std::tuple{"store2", "192.0.2.7:143", ""}}) {
    ServerConfig s;
    s.name = name;
    s.mail_root = "/srv/mail";
    s.imap_address = imap;
    s.pop3_address = pop3;
    c.servers.push_back(s);
  }
  c.freeze.method = FreezeMethod::kLdapAttribute;
  c.auth_http.disabled_values = {"disabled"};
  c.auth_http.auth_wait_ms = 3'000;
  return c;
}

AuthRequest login(const std::string& user, const std::string& pass = "secret", const std::string& protocol = "imap") {
  AuthRequest r;
  r.user = user;
  r.pass = pass;
  r.protocol = protocol;
  return r;
}

// --- parsing ----------------------------------------------------------------

TEST(AuthHttpParse, TheHeadersNginxSendsWithEscapedLoginAndPassword) {
  auto r = parse_auth_request(
      "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: j%20doe%25x\r\n"
      "auth-pass: p%40ss%3Aword\r\nAuth-Protocol: IMAP\r\nAuth-Login-Attempt: 2\r\nClient-IP: 192.0.2.1\r\n"
      "X-Auth-Key: k\r\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->user, "j doe%x");
  EXPECT_EQ(r->pass, "p@ss:word");
  EXPECT_EQ(r->protocol, "imap");
  EXPECT_EQ(r->method, "plain");
  EXPECT_EQ(r->attempt, "2");
  EXPECT_EQ(r->client_ip, "192.0.2.1");
  EXPECT_EQ(r->auth_key, "k");
}

TEST(AuthHttpParse, MalformedRequestsAreRefusedWithTheReason) {
  EXPECT_THAT(parse_auth_request("POST /auth HTTP/1.0\r\n").error().message(), HasSubstr("not a GET"));
  EXPECT_THAT(parse_auth_request("GET / HTTP/1.0\r\nno colon here\r\n").error().message(), HasSubstr("without a colon"));
  EXPECT_THAT(parse_auth_request("GET / HTTP/1.0\r\nAuth-User: a%4\r\n").error().message(), HasSubstr("%-escape"));
  EXPECT_THAT(parse_auth_request("GET / HTTP/1.0\r\nAuth-Pass: a%00b\r\n").error().message(), HasSubstr("NUL"));
  EXPECT_THAT(parse_auth_request("GET / HTTP/1.0\r\nAuth-User: " + std::string(2000, 'a') + "\r\n").error().message(),
              HasSubstr("longer than"));
  std::string many = "GET / HTTP/1.0\r\n";
  for (int i = 0; i < 100; ++i) many += "X-H: v\r\n";
  EXPECT_THAT(parse_auth_request(many).error().message(), HasSubstr("more than 64 headers"));
}

TEST(AuthHttpParse, ResponseCarriesOnlyTheHeadersOfTheAnswer) {
  AuthAnswer ok;
  ok.status = "OK";
  ok.server = "127.0.0.1";
  ok.port = 11143;
  EXPECT_EQ(format_auth_response(ok),
            "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 11143\r\nContent-Length: 0\r\n\r\n");
  AuthAnswer no;
  no.status = "[UNAVAILABLE] x";
  no.wait_s = 3;
  EXPECT_EQ(format_auth_response(no), "HTTP/1.0 200 OK\r\nAuth-Status: [UNAVAILABLE] x\r\nAuth-Wait: 3\r\nContent-Length: 0\r\n\r\n");
}

// --- decisions --------------------------------------------------------------

struct DecideTest : ::testing::Test {
  Config config = test_config();
  testing::FakeClock clock;
  FakeAuthDirectory dir;
  AuthAnswer decide(const AuthRequest& r) { return AuthDecider(config, clock).decide(r, dir); }
};

TEST_F(DecideTest, AnActiveUserGoesToTheAddressOfItsMailHostPerProtocol) {
  dir.add("alice", "store1");
  dir.add("bob", "store2", "");
  auto a = decide(login("alice"));
  EXPECT_EQ(a.status, "OK");
  EXPECT_EQ(a.server, "127.0.0.1");
  EXPECT_EQ(a.port, 11143);
  EXPECT_EQ(a.wait_s, -1);
  EXPECT_THAT(AuthDecider::log_line(login("alice"), a), HasSubstr("user=alice client=- attempt=1 protocol=imap decision=ok store=store1 port=11143"));
  auto p = decide(login("alice", "secret", "pop3"));
  EXPECT_EQ(p.port, 11110);
  auto b = decide(login("bob"));
  EXPECT_EQ(b.server, "192.0.2.7");
  EXPECT_EQ(b.port, 143);
  // store2 has no POP3 address: a temporary failure, never another store.
  auto bp = decide(login("bob", "secret", "pop3"));
  EXPECT_EQ(bp.decision, "tempfail");
  EXPECT_TRUE(bp.server.empty());
  EXPECT_THAT(bp.status, HasSubstr("[SYS/TEMP]"));
  EXPECT_THAT(bp.log, HasSubstr("no-pop3_address"));
}

TEST_F(DecideTest, UnknownUsersAndWrongPasswordsFailAlikeAndWait) {
  dir.add("alice", "store1");
  auto unknown = decide(login("mallory"));
  auto wrong = decide(login("alice", "guess"));
  for (const auto& a : {unknown, wrong}) {
    EXPECT_EQ(a.decision, "failed");
    EXPECT_EQ(a.status, "[AUTHENTICATIONFAILED] Invalid login or password");
    EXPECT_EQ(a.wait_s, 3);
    EXPECT_TRUE(a.server.empty());
  }
  EXPECT_THAT(unknown.log, HasSubstr("unknown-user"));
  EXPECT_THAT(wrong.log, HasSubstr("bad-password"));
}

TEST_F(DecideTest, AnEmptyPasswordNeverReachesTheDirectory) {
  dir.add("alice", "store1");
  EXPECT_EQ(decide(login("alice", "")).decision, "failed");
  EXPECT_EQ(decide(login("", "secret")).decision, "failed");
  EXPECT_EQ(dir.binds, 0);
}

TEST_F(DecideTest, AFrozenUserWaitsButOnlyAfterThePasswordWasRight) {
  dir.add("alice", "store1", "frozen");
  auto a = decide(login("alice"));
  EXPECT_EQ(a.decision, "frozen");
  EXPECT_EQ(a.status, "[UNAVAILABLE] Account frozen, try again later");
  EXPECT_EQ(a.wait_s, 3);
  EXPECT_TRUE(a.server.empty());
  EXPECT_EQ(decide(login("alice", "guess")).decision, "failed") << "a wrong password learns nothing about the account";
  EXPECT_THAT(decide(login("alice", "secret", "pop3")).status, HasSubstr("[SYS/TEMP]"));
}

TEST_F(DecideTest, AFreezeWithADeadlineIsLiftedAtTheDeadline) {
  config.freeze.until_in_value = true;
  dir.add("alice", "store1", frozen_value_for(config.freeze, clock.now_ms() + 60'000, "3.0badc0de"));
  EXPECT_EQ(decide(login("alice")).decision, "frozen");
  clock.advance(61'000);
  auto a = decide(login("alice"));
  EXPECT_EQ(a.decision, "ok");
  EXPECT_EQ(a.port, 11143);
}

TEST_F(DecideTest, AnUnreadableDeadlineStaysFrozenAndIsWorthAWarning) {
  config.freeze.until_in_value = true;
  dir.add("alice", "store1", "frozen;until=tomorrow");
  auto a = decide(login("alice"));
  EXPECT_EQ(a.decision, "frozen");
  EXPECT_TRUE(a.warn);
  EXPECT_THAT(a.log, HasSubstr("unreadable-deadline"));
}

TEST_F(DecideTest, DisabledValuesAreRefusedForGoodWithoutWait) {
  dir.add("alice", "store1", "disabled");
  auto a = decide(login("alice"));
  EXPECT_EQ(a.decision, "disabled");
  EXPECT_EQ(a.status, "[CONTACTADMIN] Account disabled");
  EXPECT_EQ(a.wait_s, -1);
  config.auth_http.disabled_values.clear();
  EXPECT_EQ(decide(login("alice")).decision, "ok") << "not ours to judge unless configured";
}

TEST_F(DecideTest, DirectoryTroubleIsATemporaryFailureNeverABackend) {
  dir.add("alice", "store1");
  dir.find_error = Error::unavailable("LDAP ldap://127.0.0.1:1: cannot connect: Can't contact LDAP server");
  auto down = decide(login("alice"));
  EXPECT_EQ(down.decision, "tempfail");
  EXPECT_EQ(down.status, "[UNAVAILABLE] Temporary authentication failure, try again later");
  EXPECT_EQ(down.wait_s, 3);
  EXPECT_TRUE(down.server.empty());
  EXPECT_TRUE(down.warn);
  EXPECT_THAT(down.log, HasSubstr("Can't contact LDAP server"));
  // Two mailHost values: the validator's anomaly; the login waits, nobody guesses.
  dir.find_error = Error::invalid("mail=alice (uid=alice,...): several mailHost values");
  auto two = decide(login("alice"));
  EXPECT_EQ(two.decision, "tempfail");
  EXPECT_THAT(two.log, HasSubstr("several mailHost values"));
  dir.find_error.reset();
  dir.bind_error = Error::timeout("LDAP bind: Timed out");
  EXPECT_EQ(decide(login("alice")).decision, "tempfail");
}

TEST_F(DecideTest, TheSharedSecretIsCheckedFirst) {
  dir.add("alice", "store1");
  config.auth_http.shared_secret = Secret("s3cret");
  auto r = login("alice");
  EXPECT_EQ(decide(r).decision, "forbidden");
  r.auth_key = "s3cre";
  EXPECT_EQ(decide(r).decision, "forbidden");
  EXPECT_EQ(dir.binds, 0);
  r.auth_key = "s3cret";
  EXPECT_EQ(decide(r).decision, "ok");
}

TEST_F(DecideTest, MethodsThatNeedAClearTextPasswordAndOtherProtocolsFail) {
  dir.add("alice", "store1");
  auto r = login("alice");
  r.method = "cram-md5";
  EXPECT_EQ(decide(r).decision, "failed");
  EXPECT_EQ(decide(login("alice", "secret", "smtp")).decision, "failed");
  r.method = "login";
  EXPECT_EQ(decide(r).decision, "ok");
}

TEST_F(DecideTest, ThePasswordIsNeverInTheLogLine) {
  dir.add("alice", "store1");
  auto r = login("alice", "hunter2-very-secret");
  auto a = decide(r);
  EXPECT_THAT(AuthDecider::log_line(r, a), Not(HasSubstr("hunter2")));
}

// --- the server -------------------------------------------------------------

std::string ask(int port, const std::string& request, bool half_close = false) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (half_close) shutdown(fd, SHUT_WR);
    char buf[512];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

std::string nginx_request(const std::string& user, const std::string& pass) {
  return "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: " + user + "\r\nAuth-Pass: " + pass +
         "\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n\r\n";
}

struct ServerTest : ::testing::Test {
  Config config = test_config();
  testing::FakeClock clock;
  std::unique_ptr<AuthHttpServer> server;
  std::thread serving;
  std::atomic<int> directories{0};

  void start(int workers) {
    // As main does before any thread starts (util/log.h): the workers log each
    // decision, and spdlog's registry must exist before they race to create it.
    ASSERT_TRUE(init_logging(LogOptions{}).ok());
    SocketAddress any{"127.0.0.1", 0, false};
    auto s = AuthHttpServer::listen(any);
    ASSERT_TRUE(s.ok()) << s.error().message();
    server = std::move(*s);
    serving = std::thread([this, workers] {
      AuthDecider decider(config, clock);
      auto st = server->serve(workers, decider, [this] {
        ++directories;
        auto d = std::make_unique<FakeAuthDirectory>();
        for (int i = 0; i < 50; ++i) d->add(fmt::format("u{}", i), i % 2 ? "store1" : "store2");
        d->add("frozen", "store1", "frozen");
        return d;
      });
      EXPECT_TRUE(st.ok()) << st.error().message();
    });
  }
  void TearDown() override {
    if (server) server->stop();
    if (serving.joinable()) serving.join();
  }
};

TEST_F(ServerTest, ConcurrentRequestsGetTheirOwnAnswers) {
  start(4);
  std::vector<std::thread> clients;
  std::atomic<int> right{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const int u = (t * 25 + i) % 50;
        std::string reply = ask(server->port(), nginx_request(fmt::format("u{}", u), "secret"));
        const std::string want = fmt::format("Auth-Port: {}\r\n", u % 2 ? 11143 : 143);
        if (reply.rfind("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n", 0) == 0 && reply.find(want) != std::string::npos) ++right;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(right.load(), 200);
  EXPECT_THAT(ask(server->port(), nginx_request("frozen", "secret")), HasSubstr("Auth-Wait: 3\r\n"));
  EXPECT_THAT(ask(server->port(), nginx_request("u1", "wrong")), HasSubstr("AUTHENTICATIONFAILED"));
  auto n = server->counts();
  EXPECT_EQ(n.requests, 202);
  EXPECT_EQ(n.ok, 200);
  EXPECT_EQ(n.refused, 2);
  EXPECT_LE(directories.load(), 4) << "one directory per worker, kept across requests";
}

TEST_F(ServerTest, BadAndOversizedRequestsGet400AndTheServerGoesOn) {
  start(2);
  EXPECT_THAT(ask(server->port(), "POST /auth HTTP/1.0\r\n\r\n"), HasSubstr("400 Bad Request"));
  EXPECT_THAT(ask(server->port(), "GET /auth HTTP/1.0\r\n" + std::string(20'000, 'x'), true), HasSubstr("400 Bad Request"));
  EXPECT_EQ(ask(server->port(), "GET /auth HTTP/1.0\r\nAuth-User: u1\r\n", true), "") << "a head cut short gets no answer";
  EXPECT_THAT(ask(server->port(), nginx_request("u1", "secret")), HasSubstr("Auth-Status: OK"));
  EXPECT_EQ(server->counts().bad_requests, 2);
}

TEST_F(ServerTest, AStalledClientTiesUpOneWorkerOnly) {
  start(2);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(server->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  (void)!send(fd, "GET /auth", 9, MSG_NOSIGNAL);  // and nothing more
  for (int i = 0; i < 5; ++i) EXPECT_THAT(ask(server->port(), nginx_request("u2", "secret")), HasSubstr("Auth-Status: OK"));
  close(fd);
}

TEST(AuthHttpServerListen, APortInUseIsOneLineNamingTheAddress) {
  auto first = AuthHttpServer::listen(SocketAddress{"127.0.0.1", 0, false});
  ASSERT_TRUE(first.ok());
  auto second = AuthHttpServer::listen(SocketAddress{"127.0.0.1", (*first)->port(), false});
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.error().message(), HasSubstr(fmt::format("cannot listen on 127.0.0.1:{}: Address already in use",
                                                              (*first)->port())));
}

}  // namespace
}  // namespace mailshard
