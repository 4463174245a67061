#include "freeze/http_freeze.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mailshard {
namespace {

// A one-request HTTP server on 127.0.0.1: records the request, answers `status`.
class OneShotServer {
 public:
  explicit OneShotServer(int status) : status_(status) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 1);
    thread_ = std::thread([this] { serve(); });
  }
  ~OneShotServer() {
    thread_.join();
    close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/gate"; }
  const std::string& request() const { return request_; }

 private:
  void serve() {
    int c = accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    char buf[8192];
    while (true) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) break;
      request_.append(buf, static_cast<size_t>(n));
      auto hdr_end = request_.find("\r\n\r\n");
      if (hdr_end == std::string::npos) continue;
      auto cl = request_.find("Content-Length: ");
      size_t body_len = cl == std::string::npos ? 0 : std::stoul(request_.substr(cl + 16));
      if (request_.size() >= hdr_end + 4 + body_len) break;
    }
    std::string reply = "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnope here";
    (void)!write(c, reply.data(), reply.size());
    close(c);
  }
  int fd_, port_ = 0, status_;
  std::string request_;
  std::thread thread_;
};

TEST(HttpFreeze, PostsUserActionAndExpiryWithToken) {
  OneShotServer server(204);
  FreezeConfig cfg;
  cfg.url = server.url();
  cfg.token = Secret("tok123");
  HttpFreeze f(cfg);
  ASSERT_TRUE(f.freeze({"alice@example.org", "uid=alice,ou=people"}, 1'700'000'600'000).ok());
  const std::string& req = server.request();
  EXPECT_NE(req.find("POST /gate"), std::string::npos);
  EXPECT_NE(req.find("Authorization: Bearer tok123"), std::string::npos);
  auto body = nlohmann::json::parse(req.substr(req.find("\r\n\r\n") + 4));
  EXPECT_EQ(body["user"], "alice@example.org");
  EXPECT_EQ(body["action"], "freeze");
  EXPECT_EQ(body["until"], 1'700'000'600);
}

TEST(HttpFreeze, Non2xxIsAnErrorNamingTheStatus) {
  OneShotServer server(500);
  FreezeConfig cfg;
  cfg.url = server.url();
  HttpFreeze f(cfg);
  auto st = f.thaw({"bob", ""});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(st.error().message(), "freeze webhook thaw: POST " + server.url() + ": HTTP 500: nope here");
}

TEST(HttpFreeze, ForbiddenIsPermission) {
  OneShotServer server(403);
  FreezeConfig cfg;
  cfg.url = server.url();
  HttpFreeze f(cfg);
  auto st = f.freeze({"bob", ""}, 1);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kPermission);
}

TEST(HttpFreeze, DeadEndpointIsUnavailable) {
  FreezeConfig cfg;
  cfg.url = "http://127.0.0.1:1/gate";
  HttpFreeze f(cfg, 2000);
  auto st = f.freeze({"bob", ""}, 1);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(st.error().message().rfind("freeze webhook freeze: POST http://127.0.0.1:1/gate: ", 0), 0u);
}

}  // namespace
}  // namespace mailshard
