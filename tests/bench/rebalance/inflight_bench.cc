// Many moves in flight in one controller: MOVES real moves (MoveRunner, the
// real SQLite journal, local transports on small generated Maildirs, an
// in-memory directory, a freeze that only counts) through execute_plan, over
// SERVERS stores with 2 out and 2 in slots each, so that every move may run at
// once. Each journaled step boundary sleeps STEP_MS on its thread, standing in
// for the time a step spends waiting on a remote server, so moves stay in
// flight long enough to overlap.
//
//   inflight_bench ROOT [MOVES [THREADS [SERVERS [STEP_MS [MESSAGES]]]]]
//     defaults: 200 moves, 16 threads ([rebalance] threads; 0 = one per move
//     in flight), 100 servers, 5 ms, 20 messages per mailbox.
//
// Prints one line of figures: moves done, the most moves in flight at once,
// the most threads the process had, its peak RSS (VmHWM), the wall time. Exits
// 1 when a move did not end done or a copy differs from its source.
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "journal/sqlite_journal.h"
#include "movers/plan_executor.h"
#include "tests/support/fakes.h"
#include "tests/unit/movers/maildir_gen.h"
#include "transport/transport_factory.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;

// The fake directory, behind one mutex: the workers share it as they would
// share LDAP.
class LockedDirectory final : public Directory {
 public:
  explicit LockedDirectory(testing::FakeDirectory& d) : d_(d) {}
  Status for_each_account(const std::function<Status(Account&&)>& fn, std::vector<DirectoryAnomaly>* a) override {
    std::lock_guard lock(mu_);
    return d_.for_each_account(fn, a);
  }
  Result<Account> find_account(const std::string& user) override {
    std::lock_guard lock(mu_);
    return d_.find_account(user);
  }
  Status flip(const std::string& dn, const FlipExpectation& e, const std::string& host,
              const std::optional<std::string>& home) override {
    std::lock_guard lock(mu_);
    return d_.flip(dn, e, host, home);
  }
  Status set_attribute(const std::string& dn, const std::string& attr, const std::string& value,
                       const std::optional<std::string>& assertion) override {
    std::lock_guard lock(mu_);
    return d_.set_attribute(dn, attr, value, assertion);
  }
  Result<std::optional<std::string>> get_attribute(const std::string& dn, const std::string& attr) override {
    std::lock_guard lock(mu_);
    return d_.get_attribute(dn, attr);
  }

 private:
  testing::FakeDirectory& d_;
  std::mutex mu_;
};

struct CountingFreeze final : FreezeBackend {
  std::atomic<int64_t> frozen{0};
  std::string_view name() const override { return "bench"; }
  Status freeze(const FreezeTarget&, int64_t) override {
    ++frozen;
    return {};
  }
  Status thaw(const FreezeTarget&) override {
    --frozen;
    return {};
  }
};

struct NoSessions final : SessionKicker {
  std::string_view name() const override { return "bench"; }
  Status kick(const std::string&, const std::string&) override { return {}; }
  Result<int> sessions(const std::string&, const std::string&) override { return 0; }
};

// One worker's move setup: its journal handle, its transports (each opened
// at its first use, as the CLI's environment does), its runner.
class Env final : public MoveEnvironment {
 public:
  Env(const Config& c, int step_ms) : config_(c), step_ms_(step_ms) {}
  Result<Transport*> transport(const std::string& server) override {
    if (auto it = t_.find(server); it != t_.end()) return it->second.get();
    for (const auto& s : config_.servers)
      if (s.name == server) {
        auto t = MS_TRY(make_local_transport(s.mail_root, 1, s.name));
        return (t_[server] = std::move(t)).get();
      }
    return Error::invalid("unknown server " + server);
  }
  void step_boundary(const std::string&, StepPhase phase) override {
    if (phase == StepPhase::kEnd && step_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_ms_));
  }

 private:
  const Config& config_;
  int step_ms_;
  std::map<std::string, std::unique_ptr<Transport>> t_;
};

int count_threads() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

int64_t status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + std::strlen(key));
  return -1;
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: inflight_bench ROOT [MOVES [THREADS [SERVERS [STEP_MS [MESSAGES]]]]]\n");
    return 2;
  }
  const std::string root = argv[1];
  const int moves = argc > 2 ? std::atoi(argv[2]) : 200;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 16;
  const int servers = argc > 4 ? std::atoi(argv[4]) : 100;
  const int step_ms = argc > 5 ? std::atoi(argv[5]) : 5;
  const int messages = argc > 6 ? std::atoi(argv[6]) : 20;
  if (moves < 1 || threads < 0 || servers < 2 || step_ms < 0 || messages < 1) {
    std::fprintf(stderr, "inflight_bench: bad arguments\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  fs::remove_all(root);
  Config config;
  config.move.headroom_bytes = 0;
  config.move.max_clock_skew_ms = 60'000;
  Plan plan;
  for (int s = 0; s < servers; ++s) {
    ServerConfig sc;
    sc.name = "store" + std::to_string(s);
    sc.mail_root = root + "/" + sc.name;
    fs::create_directories(sc.mail_root + "/example.org");
    config.servers.push_back(sc);
    ServerOutcome so;
    so.id = s;
    so.name = sc.name;
    plan.servers.push_back(so);
  }
  testing::FakeDirectory fake;
  testing::GenOptions g;
  g.messages = messages;
  g.hard_links = 2;
  g.cache_record_bytes = 100;
  // Move i goes from server i % S to one further along: each server is the
  // source of MOVES/S moves and the destination of as many.
  for (int i = 0; i < moves; ++i) {
    const std::string user = "u" + std::to_string(i);
    const int from = i % servers;
    const int to = (from + 1 + (i / servers) % (servers - 1)) % servers;
    const std::string home = "example.org/" + user;
    g.seed = static_cast<uint64_t>(i) + 1;
    testing::generate_home(config.servers[from].mail_root + "/" + home, g);
    fake.accounts.push_back({"uid=" + user, user, config.servers[from].name, home, home, "active", 0});
    PlannedMove m;
    m.user = i;
    m.user_name = user;
    m.from = from;
    m.to = to;
    m.bytes = 1;
    plan.moves.push_back(m);
  }
  LockedDirectory directory(fake);
  CountingFreeze freeze;
  NoSessions kicker;
  SystemClock clock;
  std::mutex mu;
  std::vector<std::unique_ptr<Journal>> journals;
  std::vector<std::unique_ptr<Env>> envs;
  std::vector<std::unique_ptr<MoveRunner>> runners;
  MoveWorkerFactory factory = [&]() -> Result<MoveWorker> {
    auto j = MS_TRY(SqliteJournal::open(root + "/journal.sqlite", clock));
    auto env = std::make_unique<Env>(config, step_ms);
    auto r = std::make_unique<MoveRunner>(
        MoveDeps{config, directory, freeze, kicker, nullptr, *j, clock, *env, SyncOptions{}});
    MoveRunner* rp = r.get();
    std::lock_guard lock(mu);
    journals.push_back(std::move(j));
    envs.push_back(std::move(env));
    runners.push_back(std::move(r));
    MoveWorker w;
    w.move = [rp](const std::string& u, const std::string& to, const MoveOptions& o) { return rp->move(u, to, o); };
    w.start = [rp](const std::string& u, const std::string& to, const MoveOptions& o) { return rp->start(u, to, o); };
    return w;
  };
  ExecutionOptions o;
  o.threads = threads;
  o.progress_interval_ms = 50;
  o.poll_interval_ms = 50;
  std::atomic<int> peak_threads{count_threads()};
  o.on_progress = [&](const ExecutionReport&) { peak_threads = std::max(peak_threads.load(), count_threads()); };
  auto t0 = std::chrono::steady_clock::now();
  auto r = execute_plan(plan, o, factory, clock);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "inflight_bench: %s\n", r.error().message().c_str());
    return 1;
  }
  int bad = 0;
  for (const auto& m : r->moves) {
    if (m.result != MoveResult::kDone) {
      if (++bad <= 3) std::fprintf(stderr, "inflight_bench: %s: %s\n", m.user.c_str(), m.reason.c_str());
      continue;
    }
    // The copy against its source (which stays until purge).
    const std::string home = "/example.org/" + m.user;
    auto diff = testing::compare_trees(root + "/" + m.from + home, root + "/" + m.to + home);
    if (!diff.empty() && ++bad <= 3) std::fprintf(stderr, "inflight_bench: %s: %s\n", m.user.c_str(), diff[0].c_str());
  }
  std::printf("moves %d done %lld threads_option %d peak_in_flight %lld peak_threads %d peak_rss_mib %.1f wall_s %.2f "
              "frozen_left %lld\n",
              moves, static_cast<long long>(r->done), threads, static_cast<long long>(r->peak_running),
              peak_threads.load(), static_cast<double>(status_kib("VmHWM:")) / 1024.0, wall,
              static_cast<long long>(freeze.frozen.load()));
  fs::remove_all(root);
  return bad == 0 && freeze.frozen == 0 ? 0 : 1;
}

}  // namespace
}  // namespace mailshard

int main(int argc, char** argv) { return mailshard::run(argc, argv); }
