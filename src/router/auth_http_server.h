// AuthHttpServer: the HTTP side of `mailshard auth-http`. One acceptor thread
// hands connections to a fixed pool of workers; each worker owns its own
// AuthDirectory (its own LDAP connections), reads one request head (nginx
// sends HTTP/1.0, one request per connection), answers it with the
// AuthDecider and closes. Every decision is one log line.
//
// Bounded everywhere: a request head is at most 16 KiB and must arrive within
// 5 s; at most 1024 connections wait for a worker (more are closed at once,
// which nginx reports as a temporary error to the client).
// Thread-safety: serve() runs once; stop() may be called from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "router/auth_http.h"
#include "util/net.h"
#include "util/result.h"

namespace mailshard {

class AuthHttpServer {
 public:
  using DirectoryFactory = std::function<std::unique_ptr<AuthDirectory>()>;

  // Binds and listens now. Port 0 takes a free port (tests).
  // Error (kUnavailable): "cannot listen on 127.0.0.1:9143: Address already in use".
  static Result<std::unique_ptr<AuthHttpServer>> listen(const SocketAddress& address);
  ~AuthHttpServer();

  int port() const { return port_; }

  // Answers requests on `workers` threads until stop() or a signal
  // (util/interrupt.h). Returns when every worker has finished its request.
  Status serve(int workers, const AuthDecider& decider, const DirectoryFactory& make_directory);
  void stop() { stopping_ = true; }

  struct Counts {
    int64_t requests = 0, ok = 0, refused = 0, bad_requests = 0, dropped = 0;
  };
  Counts counts() const;

 private:
  AuthHttpServer(int fd, int port) : fd_(fd), port_(port) {}
  void answer(int conn, const AuthDecider& decider, std::unique_ptr<AuthDirectory>& dir,
              const DirectoryFactory& make_directory);

  int fd_;
  int port_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> requests_{0}, ok_{0}, refused_{0}, bad_requests_{0}, dropped_{0};
};

}  // namespace mailshard
