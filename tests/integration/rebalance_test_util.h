// Helpers of the rebalance lab tests (rebalance_test.cc, rebalance_shared_test.cc):
// a scenario's users, config and plan, mailshard in the background, the
// journal's moves through `status --json`, and the checks every night ends with.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <set>
#include <algorithm>
#include <map>
#include <regex>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace rebalance_lab {

using Clock = std::chrono::steady_clock;

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "2026-12-05T15:17:14.345Z" (format_time_ms) -> epoch ms; -1 for null.
inline int64_t epoch_ms(const nlohmann::json& v) {
  if (!v.is_string()) return -1;
  struct tm tm = {};
  int ms = 0;
  const std::string s = v.get<std::string>();
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) != 7)
    throw LabError("not a time: " + s);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

// The --json summary of a rebalance: always on stdout, whatever the exit code.
inline nlohmann::json summary_json(const std::string& out, const std::string& err) {
  if (out.empty()) throw LabError("no JSON summary on stdout; stderr: " + err.substr(0, 2000));
  return nlohmann::json::parse(out);
}

// One scenario's users, config and directory.
struct Scenario {
  std::string name;   // "rebalance_a"
  std::string dir;    // <lab>/<name>: journal, plan, outputs
  std::string cfg;    // <lab>/<name>.toml
  std::vector<std::string> users;  // user71000@example.org ...
};

// Adds N users userFIRST.. on store1 (FIRST a multiple of 1000, N < 1000), each
// with `messages` messages of ~20 kB, and writes the scenario's config: the
// lab's, with the filter on the block, capacity_bytes 32 MiB and the given
// slots on every server, its own journal, then `append`.
inline Scenario make_scenario(const std::string& name, int first, int n, int messages, int slots_out, int slots_in,
                       const std::string& append, std::vector<std::pair<std::string, std::string>> edits = {}) {
  Lab& lab = Lab::get();
  Scenario s;
  s.name = name;
  s.dir = lab.dir() + "/" + name;
  lab.run({"rm", "-rf", s.dir});
  lab.run({"mkdir", "-p", s.dir});
  const int added = lab.populate(n, first, "store1");
  if (added != n)
    throw LabError(name + ": " + std::to_string(n - added) + " users of the block " + std::to_string(first) +
                   " exist already; the scenario needs a fresh lab (ctest's lab fixture starts one)");
  for (int i = 0; i < n; ++i) s.users.push_back("user" + std::to_string(first + i) + "@example.org");
  // Seed in 4 threads: deliver.py is ~0.25 s per user, most of it start-up.
  std::vector<std::thread> seeders;
  for (int t = 0; t < 4; ++t)
    seeders.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) lab.deliver(s.users[i], messages, "seed", {"--size", "20000"});
    });
  for (auto& t : seeders) t.join();
  // The block: user71000..user71999 is "user71*".
  const std::string prefix = "user" + std::to_string(first / 1000);
  edits.insert(edits.begin(),
               {{R"re(filter = "\(objectClass=mlabMailAccount\)")re",
                 "filter = \"(&(objectClass=mlabMailAccount)(uid=" + prefix + "*))\""},
                {R"re(capacity_bytes = [0-9]+[^\n]*)re", "capacity_bytes = \"32MiB\"\nmax_moves_out = " +
                                                         std::to_string(slots_out) +
                                                         "\nmax_moves_in = " + std::to_string(slots_in)},
                {R"re(path = "[^"]*/journal.sqlite")re", "path = \"" + s.dir + "/journal.sqlite\""}});
  s.cfg = lab_config(name, edits,
                     "\n[move]\nheadroom = \"1MiB\"\n\n[rebalance]\nmax_load_per_cpu = 1000\n" + append);
  const std::string text = slurp(s.cfg);
  if (text.find("uid=" + prefix + "*") == std::string::npos || text.find(s.dir + "/journal.sqlite") == std::string::npos ||
      text.find("max_moves_out = " + std::to_string(slots_out)) == std::string::npos)
    throw LabError(name + ": the config edits did not apply to " + s.cfg);
  return s;
}

// `plan --band 0.003 --output DIR/plan.json`; returns the plan JSON.
inline nlohmann::json make_plan(const Scenario& s) {
  RunResult r = mailshard(s.cfg, {"plan", "--band", "0.003", "--output", s.dir + "/plan.json"});
  if (r.rc != 0) throw LabError(s.name + ": plan failed: " + r.describe());
  return nlohmann::json::parse(slurp(s.dir + "/plan.json"));
}

// (user -> destination name) of a plan.
inline std::map<std::string, std::string> planned_moves(const nlohmann::json& plan) {
  std::map<std::string, std::string> out;
  for (const auto& m : plan["moves"])
    out[m["user"].get<std::string>()] = plan["servers"][m["to"].get<size_t>()]["name"].get<std::string>();
  return out;
}

// A mailshard process in the background (fork/exec), stdout and stderr to
// files; wait() bounds it and SIGKILLs its process group after the timeout.
class Background {
 public:
  // `env`: extra "K=V" variables of the process.
  Background(const std::string& config, std::vector<std::string> args, const std::string& out_prefix,
             std::vector<std::string> env = {})
      : out_(out_prefix + ".out"), err_(out_prefix + ".err") {
    std::vector<std::string> argv = {mailshard_bin(), "-c", config};
    for (auto& a : args) argv.push_back(a);
    pid_ = ::fork();
    if (pid_ < 0) throw LabError("fork failed");
    if (pid_ == 0) {
      for (auto& e : env) ::putenv(e.data());
      ::setpgid(0, 0);
      int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (o < 0 || e < 0) ::_exit(127);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ > 0 && rc_ < 0) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }
  // Exit status (128+N if killed by signal N); after timeout_s, SIGKILL and -1.
  int wait(int timeout_s) {
    const auto until = Clock::now() + std::chrono::seconds(timeout_s);
    while (rc_ < 0) {
      int st = 0;
      pid_t p = ::waitpid(pid_, &st, WNOHANG);
      if (p == pid_) {
        rc_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        break;
      }
      if (Clock::now() > until) {
        ::kill(-pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        rc_ = 999;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return rc_;
  }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

 private:
  std::string out_, err_;
  pid_t pid_ = -1;
  int rc_ = -1;
};

// The scenario's moves in its journal (status --json, all of them).
inline nlohmann::json journal_moves(const Scenario& s) {
  RunResult r = mailshard(s.cfg, {"--json", "status", "--limit", "0"});
  if (r.rc != 0) throw LabError("status failed: " + r.describe());
  return nlohmann::json::parse(r.out);
}

inline int count_state(const nlohmann::json& moves, const std::string& state) {
  int n = 0;
  for (const auto& m : moves) n += m["state"] == state;
  return n;
}

// Polls the journal until `pred(moves)` holds; false after timeout_s.
template <typename Pred>
inline bool poll_journal(const Scenario& s, int timeout_s, Pred pred) {
  const auto until = Clock::now() + std::chrono::seconds(timeout_s);
  while (Clock::now() < until) {
    if (pred(journal_moves(s))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

// The rules every scenario ends with: nobody frozen, nothing active in the
// journal (every move done or rolled back), and `resume` has nothing to do.
inline void expect_settled(const Scenario& s) {
  Lab& lab = Lab::get();
  for (const auto& u : s.users) EXPECT_EQ(lab.ldap_get(u, "mailAccountStatus"), "active") << u;
  for (const auto& m : journal_moves(s))
    EXPECT_TRUE(m["state"] == "done" || m["state"] == "rolled_back") << m.dump();
  RunResult res = mailshard(s.cfg, {"resume"});
  EXPECT_EQ(res.rc, 0) << res.describe();
  EXPECT_EQ(res.out, "nothing to resume\n") << res.describe();
}

// The most moves that ran at once out of (or into) each server, from the
// report's per-move started_at/finished_at (a move ending at t and one
// starting at t do not overlap).
inline std::map<std::string, int> peak_concurrency(const nlohmann::json& moves, const std::string& side) {
  std::map<std::string, std::vector<std::pair<int64_t, int>>> events;
  for (const auto& m : moves) {
    int64_t a = epoch_ms(m["started_at"]), b = epoch_ms(m["finished_at"]);
    if (a < 0 || b < 0) continue;
    auto& ev = events[m[side].get<std::string>()];
    ev.push_back({a, +1});
    ev.push_back({b, -1});
  }
  std::map<std::string, int> peak;
  for (auto& [server, ev] : events) {
    std::sort(ev.begin(), ev.end());  // at equal times the end (-1) sorts first
    int now = 0;
    for (const auto& [t, d] : ev) peak[server] = std::max(peak[server], now += d);
  }
  return peak;
}


}  // namespace rebalance_lab
}  // namespace mailshard::testing
