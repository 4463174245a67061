#include "router/auth_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/interrupt.h"

namespace mailshard {
namespace {

constexpr size_t kMaxHeadBytes = 16 * 1024;
constexpr int kReadTimeoutMs = 5'000;
constexpr size_t kMaxQueued = 1024;
constexpr int kStopPollMs = 200;  // how often idle threads look at the stop flags

int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Reads until the blank line that ends the head; "" on timeout, EOF or an oversized head.
std::string read_head(int fd, bool& too_big) {
  std::string buf;
  char chunk[4096];
  const int64_t deadline = mono_ms() + kReadTimeoutMs;
  too_big = false;
  while (buf.find("\r\n\r\n") == std::string::npos) {
    if (buf.size() > kMaxHeadBytes) {
      too_big = true;
      return "";
    }
    const int64_t left = deadline - mono_ms();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) return "";
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    buf.append(chunk, static_cast<size_t>(n));
  }
  buf.resize(buf.find("\r\n\r\n"));
  return buf;
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the proxy went away: nothing to tell it
    off += static_cast<size_t>(n);
  }
}

}  // namespace

Result<std::unique_ptr<AuthHttpServer>> AuthHttpServer::listen(const SocketAddress& address) {
  const std::string where = fmt::format("{}{}{}:{}", address.ipv6 ? "[" : "", address.ip, address.ipv6 ? "]" : "",
                                        address.port);
  int fd = socket(address.ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error::unavailable(fmt::format("cannot listen on {}: {}", where, std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len;
  if (address.ipv6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(address.port));
    inet_pton(AF_INET6, address.ip.c_str(), &a6->sin6_addr);
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(address.port));
    inet_pton(AF_INET, address.ip.c_str(), &a4->sin_addr);
    len = sizeof *a4;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 512) != 0) {
    Error e = Error::unavailable(fmt::format("cannot listen on {}: {}", where, std::strerror(errno)));
    close(fd);
    return e;
  }
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int port = ntohs(address.ipv6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return std::unique_ptr<AuthHttpServer>(new AuthHttpServer(fd, port));
}

AuthHttpServer::~AuthHttpServer() { close(fd_); }

AuthHttpServer::Counts AuthHttpServer::counts() const {
  return {requests_.load(), ok_.load(), refused_.load(), bad_requests_.load(), dropped_.load()};
}

void AuthHttpServer::answer(int conn, const AuthDecider& decider, std::unique_ptr<AuthDirectory>& dir,
                            const DirectoryFactory& make_directory) {
  bool too_big = false;
  std::string head = read_head(conn, too_big);
  if (head.empty()) {
    if (too_big) {
      ++bad_requests_;
      spdlog::warn("auth-http: request head larger than {} bytes refused", kMaxHeadBytes);
      write_all(conn, "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    }
    return;  // the proxy closed or stalled: nobody to answer
  }
  auto request = parse_auth_request(head);
  if (!request.ok()) {
    ++bad_requests_;
    spdlog::warn("auth-http: bad request: {}", request.error().message());
    write_all(conn, "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  ++requests_;
  if (!dir) dir = make_directory();
  AuthAnswer a = decider.decide(*request, *dir);
  (a.decision == "ok" ? ok_ : refused_)++;
  if (a.warn)
    spdlog::warn("auth-http: {}", AuthDecider::log_line(*request, a));
  else
    spdlog::info("auth-http: {}", AuthDecider::log_line(*request, a));
  write_all(conn, format_auth_response(a));
}

Status AuthHttpServer::serve(int workers, const AuthDecider& decider, const DirectoryFactory& make_directory) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> queue;
  auto done = [&] { return stopping_.load() || interrupted(); };

  std::vector<std::thread> pool;
  for (int i = 0; i < workers; ++i) {
    pool.emplace_back([&] {
      std::unique_ptr<AuthDirectory> dir;
      for (;;) {
        int conn = -1;
        {
          std::unique_lock lock(mu);
          cv.wait_for(lock, std::chrono::milliseconds(kStopPollMs), [&] { return !queue.empty() || done(); });
          if (queue.empty()) {
            if (done()) return;
            continue;
          }
          conn = queue.front();
          queue.pop_front();
        }
        answer(conn, decider, dir, make_directory);
        close(conn);
      }
    });
  }

  Status result;
  while (!done()) {
    pollfd p{fd_, POLLIN, 0};
    int n = poll(&p, 1, kStopPollMs);
    if (n <= 0) continue;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        spdlog::warn("auth-http: accept: {} (waiting for connections to finish)", std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      result = Error::unavailable(fmt::format("auth-http: accept: {}", std::strerror(errno)));
      break;
    }
    int one = 1;
    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    {
      std::lock_guard lock(mu);
      if (queue.size() >= kMaxQueued) {
        ++dropped_;
        close(conn);
        continue;
      }
      queue.push_back(conn);
    }
    cv.notify_one();
  }
  stopping_ = true;
  cv.notify_all();
  for (auto& t : pool) t.join();
  for (int conn : queue) close(conn);
  return result;
}

}  // namespace mailshard
