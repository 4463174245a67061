// Load generator for tests/bench/auth_http/run.sh: sends nginx's auth_http
// requests (the headers nginx sends for an IMAP LOGIN, one request per
// connection, HTTP/1.0) from C threads for S seconds and prints one JSON line:
// requests, answers by Auth-Status, requests/s and latency percentiles.
//   auth_load --port P --users N [--prefix user] [--password secret]
//             [--concurrency C] [--seconds S] [--wrong-every K]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  std::vector<double> latency_ms;
  long ok = 0, failed = 0, other = 0, errors = 0;
};

// One request; "" on a connection error.
std::string ask(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    char buf[1024];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, users = 0, concurrency = 32, wrong_every = 0;
  double seconds = 10;
  std::string prefix = "user", password = "secret";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") port = std::atoi(v.c_str());
    else if (k == "--users") users = std::atoi(v.c_str());
    else if (k == "--prefix") prefix = v;
    else if (k == "--password") password = v;
    else if (k == "--concurrency") concurrency = std::atoi(v.c_str());
    else if (k == "--seconds") seconds = std::atof(v.c_str());
    else if (k == "--wrong-every") wrong_every = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "auth_load: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (port <= 0 || users <= 0 || concurrency <= 0) {
    std::fprintf(stderr, "usage: auth_load --port P --users N [--concurrency C] [--seconds S]\n");
    return 2;
  }
  std::vector<Totals> per(static_cast<size_t>(concurrency));
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      Totals& tot = per[static_cast<size_t>(t)];
      for (long i = t; !stop; i += concurrency) {
        char name[64];
        std::snprintf(name, sizeof name, "%s%05ld", prefix.c_str(), i % users + 1);
        const bool wrong = wrong_every > 0 && i % wrong_every == 0;
        std::string rq = std::string("GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: ") +
                         name + "\r\nAuth-Pass: " + (wrong ? "wrong" : password) +
                         "\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n"
                         "Client-Host: [UNAVAILABLE]\r\n\r\n";
        auto s = Clock::now();
        std::string reply = ask(port, rq);
        tot.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
        if (reply.empty()) ++tot.errors;
        else if (reply.find("Auth-Status: OK\r\n") != std::string::npos) ++tot.ok;
        else if (reply.find("AUTHENTICATIONFAILED") != std::string::npos) ++tot.failed;
        else ++tot.other;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  Totals all;
  for (auto& p : per) {
    all.latency_ms.insert(all.latency_ms.end(), p.latency_ms.begin(), p.latency_ms.end());
    all.ok += p.ok, all.failed += p.failed, all.other += p.other, all.errors += p.errors;
  }
  std::sort(all.latency_ms.begin(), all.latency_ms.end());
  auto pct = [&](double q) {
    if (all.latency_ms.empty()) return 0.0;
    return all.latency_ms[std::min(all.latency_ms.size() - 1, static_cast<size_t>(q * all.latency_ms.size()))];
  };
  std::printf(
      "{\"requests\": %zu, \"ok\": %ld, \"failed\": %ld, \"other\": %ld, \"errors\": %ld, \"seconds\": %.2f, "
      "\"per_second\": %.0f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, \"concurrency\": %d}\n",
      all.latency_ms.size(), all.ok, all.failed, all.other, all.errors, elapsed, all.latency_ms.size() / elapsed,
      pct(0.5), pct(0.99), all.latency_ms.empty() ? 0.0 : all.latency_ms.back(), concurrency);
  return all.errors > 0 || all.other > 0 ? 1 : 0;
}
