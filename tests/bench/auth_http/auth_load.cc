// Load generator for tests/bench/auth_http/run.sh. For S seconds, C threads
// each repeat one authentication and time it; prints one JSON line: count,
// outcomes, per second and latency percentiles. Three modes:
//   --mode http  nginx's auth_http request (its headers, HTTP/1.0, one per
//                connection) straight to the responder on --port;
//   --mode imap  an IMAP client through nginx on --port: connect, greeting,
//                LOGIN, the tagged answer (nginx asks the responder; a frozen
//                user's NO [UNAVAILABLE] needs no backend), close;
//   --mode ldap  the floor: the responder's LDAP work alone from C threads,
//                a search as --bind-dn on one connection and a bind as the user
//                on another (libldap, --ldap-uri, --base, --bind-pw-file).
//   auth_load --mode M --port P --users N [--prefix user] [--password secret]
//             [--concurrency C] [--seconds S]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ldap.h>

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

// One IMAP LOGIN through nginx on a fresh connection; the tagged answer line.
std::string imap_login(int port, const std::string& user, const std::string& pass) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got, answer;
  auto read_line = [&](const std::string& prefix) {
    char buf[512];
    for (;;) {
      size_t nl;
      while ((nl = got.find("\r\n")) != std::string::npos) {
        std::string line = got.substr(0, nl);
        got.erase(0, nl + 2);
        if (line.rfind(prefix, 0) == 0) return line;
      }
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return std::string();
      got.append(buf, static_cast<size_t>(n));
    }
  };
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && !read_line("* OK").empty()) {
    std::string rq = "a1 LOGIN " + user + " " + pass + "\r\n";
    if (send(fd, rq.data(), rq.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(rq.size())) answer = read_line("a1 ");
    if (answer.rfind("a1 OK", 0) == 0) {
      (void)!send(fd, "a2 LOGOUT\r\n", 11, MSG_NOSIGNAL);
      read_line("a2 ");
    }
  }
  close(fd);
  return answer;
}

struct LdapPair {
  LDAP* search = nullptr;
  LDAP* bind = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  int port = 0, users = 0, concurrency = 32, wrong_every = 0;
  double seconds = 10;
  std::string prefix = "user", password = "secret", mode = "http";
  std::string ldap_uri, base, bind_dn, bind_pw_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") port = std::atoi(v.c_str());
    else if (k == "--users") users = std::atoi(v.c_str());
    else if (k == "--prefix") prefix = v;
    else if (k == "--password") password = v;
    else if (k == "--concurrency") concurrency = std::atoi(v.c_str());
    else if (k == "--seconds") seconds = std::atof(v.c_str());
    else if (k == "--wrong-every") wrong_every = std::atoi(v.c_str());
    else if (k == "--mode") mode = v;
    else if (k == "--ldap-uri") ldap_uri = v;
    else if (k == "--base") base = v;
    else if (k == "--bind-dn") bind_dn = v;
    else if (k == "--bind-pw-file") bind_pw_file = v;
    else {
      std::fprintf(stderr, "auth_load: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if ((mode != "ldap" && port <= 0) || users <= 0 || concurrency <= 0 ||
      (mode != "http" && mode != "imap" && mode != "ldap") || (mode == "ldap" && (ldap_uri.empty() || base.empty()))) {
    std::fprintf(stderr, "usage: auth_load --mode http|imap|ldap --port P --users N [--concurrency C] [--seconds S]\n");
    return 2;
  }
  std::string service_pw;
  if (!bind_pw_file.empty()) {
    FILE* f = std::fopen(bind_pw_file.c_str(), "r");
    char buf[256] = {0};
    if (!f || !std::fgets(buf, sizeof buf, f)) {
      std::fprintf(stderr, "auth_load: cannot read %s\n", bind_pw_file.c_str());
      return 2;
    }
    std::fclose(f);
    service_pw = buf;
    while (!service_pw.empty() && (service_pw.back() == '\n' || service_pw.back() == '\r')) service_pw.pop_back();
  }
  // The floor's connections, opened before the clock starts (the responder keeps its own open too).
  std::vector<LdapPair> ldap(static_cast<size_t>(concurrency));
  for (auto& p : ldap) {
    if (mode != "ldap") break;
    int v3 = LDAP_VERSION3;
    for (LDAP** ld : {&p.search, &p.bind}) {
      if (ldap_initialize(ld, ldap_uri.c_str()) != LDAP_SUCCESS) return 2;
      ldap_set_option(*ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    }
    berval cred{static_cast<ber_len_t>(service_pw.size()), service_pw.data()};
    if (ldap_sasl_bind_s(p.search, bind_dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr) != LDAP_SUCCESS) {
      std::fprintf(stderr, "auth_load: bind as %s failed\n", bind_dn.c_str());
      return 2;
    }
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
        const std::string pass = wrong ? "wrong" : password;
        auto s = Clock::now();
        if (mode == "http") {
          std::string rq = std::string("GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: ") +
                           name + "\r\nAuth-Pass: " + pass +
                           "\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n"
                           "Client-Host: [UNAVAILABLE]\r\n\r\n";
          std::string reply = ask(port, rq);
          if (reply.empty()) ++tot.errors;
          else if (reply.find("Auth-Status: OK\r\n") != std::string::npos) ++tot.ok;
          else if (reply.find("AUTHENTICATIONFAILED") != std::string::npos) ++tot.failed;
          else ++tot.other;
        } else if (mode == "imap") {
          std::string answer = imap_login(port, name, pass);
          if (answer.empty()) ++tot.errors;
          else if (answer.rfind("a1 OK", 0) == 0) ++tot.ok;
          else if (answer.find("AUTHENTICATIONFAILED") != std::string::npos) ++tot.failed;
          else ++tot.other;  // e.g. NO [UNAVAILABLE] for a frozen user
        } else {
          LdapPair& p = ldap[static_cast<size_t>(t)];
          const std::string filter = std::string("(&(objectClass=*)(|(mail=") + name + ")(uid=" + name + ")))";
          char* attrs[] = {const_cast<char*>("mail"), const_cast<char*>("mailHost"),
                           const_cast<char*>("mailMessageStore"), const_cast<char*>("mailAccountStatus"), nullptr};
          LDAPMessage* res = nullptr;
          int rc = ldap_search_ext_s(p.search, base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), attrs, 0, nullptr,
                                     nullptr, nullptr, 2, &res);
          LDAPMessage* e = rc == LDAP_SUCCESS ? ldap_first_entry(p.search, res) : nullptr;
          char* dn = e ? ldap_get_dn(p.search, e) : nullptr;
          if (!dn) {
            ++tot.errors;
          } else {
            berval cred{static_cast<ber_len_t>(pass.size()), const_cast<char*>(pass.data())};
            rc = ldap_sasl_bind_s(p.bind, dn, LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
            if (rc == LDAP_SUCCESS) ++tot.ok;
            else if (rc == LDAP_INVALID_CREDENTIALS) ++tot.failed;
            else ++tot.errors;
            ldap_memfree(dn);
          }
          if (res) ldap_msgfree(res);
        }
        tot.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
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
      "\"per_second\": %.0f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, \"concurrency\": %d, \"mode\": \"%s\"}\n",
      all.latency_ms.size(), all.ok, all.failed, all.other, all.errors, elapsed, all.latency_ms.size() / elapsed,
      pct(0.5), pct(0.99), all.latency_ms.empty() ? 0.0 : all.latency_ms.back(), concurrency, mode.c_str());
  return all.errors > 0 ? 1 : 0;
}
