// Fakes of the move's collaborators that record effects: a recording freeze
// backend and kicker, and an environment of real local transports. The clock
// and the directory are testing::FakeClock and testing::FakeDirectory
// (tests/support/fakes.h).
#pragma once

#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/freeze_backend.h"
#include "core/quota_service.h"
#include "movers/move_runner.h"
#include "tests/unit/movers/maildir_gen.h"
#include "transport/transport_factory.h"

namespace mailshard::testing {

// A QuotaService that records its calls; quota() can run a side effect first
// (Dovecot creating the user's home to answer).
struct FakeQuota final : QuotaService {
  std::vector<QuotaRoot> roots;
  std::optional<Error> get_error, recalc_error;
  std::function<void()> on_get, on_recalc;
  std::vector<std::string> calls;
  Result<std::vector<QuotaRoot>> quota(const std::string& user, const std::string& server) override {
    calls.push_back("get " + user + " " + server);
    if (on_get) on_get();
    if (get_error) return *get_error;
    return roots;
  }
  Status recalc_quota(const std::string& user, const std::string& server) override {
    calls.push_back("recalc " + user + " " + server);
    if (on_recalc) on_recalc();
    if (recalc_error) return *recalc_error;
    return {};
  }
};

class RecordingFreeze : public FreezeBackend {
 public:
  std::vector<std::string> calls;
  int fail_thaws = 0;  // this many thaws fail first
  std::string_view name() const override { return "recording"; }
  Status freeze(const FreezeTarget& t, int64_t until) override {
    calls.push_back("freeze " + t.user);
    return {};
  }
  Status thaw(const FreezeTarget& t) override {
    if (fail_thaws > 0) {
      --fail_thaws;
      calls.push_back("thaw-failed " + t.user);
      return Error::unavailable("gate unreachable");
    }
    calls.push_back("thaw " + t.user);
    return {};
  }
  bool frozen() const {
    int n = 0;
    for (const auto& c : calls) n += c.rfind("freeze", 0) == 0 ? 1 : c.rfind("thaw ", 0) == 0 ? -1 : 0;
    return n > 0;
  }
};

class RecordingKicker : public SessionKicker {
 public:
  int kicks = 0, lookups = 0;
  // Failures the next calls return, in order (then success).
  std::deque<Error> kick_errors, session_errors;
  std::string_view name() const override { return "recording"; }
  Status kick(const std::string&, const std::string&) override {
    ++kicks;
    if (kick_errors.empty()) return {};
    Error e = kick_errors.front();
    kick_errors.pop_front();
    return e;
  }
  Result<int> sessions(const std::string&, const std::string&) override {
    ++lookups;
    if (session_errors.empty()) return 0;
    Error e = session_errors.front();
    session_errors.pop_front();
    return e;
  }
};

class LocalEnv : public MoveEnvironment {
 public:
  std::map<std::string, std::unique_ptr<Transport>> t;
  // Called at every journaled step boundary ("final_sync", kEnd), if set.
  std::function<void(const std::string&, StepPhase)> on_step;
  void step_boundary(const std::string& step, StepPhase phase) override {
    if (on_step) on_step(step, phase);
  }
  Result<Transport*> transport(const std::string& server) override {
    auto it = t.find(server);
    if (it == t.end()) return Error::invalid("unknown server " + server);
    return it->second.get();
  }
};

// Two local stores under root: "store1" and "store2", each with an empty
// example.org/, their [[server]] entries appended to config (no headroom, a
// minute of clock skew allowed), and a local transport of each in out.
// Throws std::runtime_error if a transport cannot be made.
inline void make_two_stores(const std::string& root, int streams, Config& config,
                            std::map<std::string, std::unique_ptr<Transport>>& out) {
  for (const char* s : {"store1", "store2"}) {
    std::filesystem::create_directories(root + "/" + s + "/example.org");
    ServerConfig sc;
    sc.name = s;
    sc.mail_root = root + "/" + s;
    config.servers.push_back(sc);
    auto t = make_local_transport(sc.mail_root, streams, s);
    if (!t.ok()) throw std::runtime_error(t.error().message());
    out[s] = std::move(*t);
  }
  config.move.headroom_bytes = 0;
  config.move.max_clock_skew_ms = 60'000;
}

// Every regular file under `dir`: relative path -> content "@" mtime (empty
// when `dir` does not exist). Two trees that compare equal hold the same
// bytes with the same mtimes.
inline std::map<std::string, std::string> tree_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      out[fs::relative(e.path(), dir).string()] = read_whole(e.path().string()) + "@" +
                                                  std::to_string(fs::last_write_time(e.path()).time_since_epoch().count());
  return out;
}

// Paths with "mailshard-incoming" (a move's staging) anywhere under `dir`.
inline std::vector<std::string> staging_names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.path().filename().string().find("mailshard-incoming") != std::string::npos) out.push_back(e.path());
  return out;
}

}  // namespace mailshard::testing
