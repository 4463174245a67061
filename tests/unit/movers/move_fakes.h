// Fakes of the move's collaborators that record effects: one LDAP account
// whose flip and set_attribute are compare-and-swaps (with injectable flip
// faults), a recording freeze backend and kicker, and an environment of real
// local transports. The clock is testing::FakeClock (tests/support/fakes.h).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/directory.h"
#include "core/freeze_backend.h"
#include "movers/move_runner.h"
#include "transport/transport_factory.h"

namespace mailshard::testing {

// One account; flip and set_attribute are compare-and-swaps like LDAP's.
class FakeDirectory : public Directory {
 public:
  Account account;
  enum class FlipFault { kNone, kLostReplyAfterApply, kUnreachable, kConflict } flip_fault = FlipFault::kNone;
  bool find_fails = false;
  int flips = 0;

  Status for_each_account(const std::function<Status(Account&&)>& fn, std::vector<DirectoryAnomaly>*) override {
    Account a = account;
    return fn(std::move(a));
  }
  Result<Account> find_account(const std::string& user) override {
    if (find_fails) return Error::unavailable("LDAP ldap://fake: cannot connect");
    if (user != account.user) return Error::not_found("no entry");
    return account;
  }
  Status flip(const std::string& dn, const FlipExpectation& expected, const std::string& new_host,
              const std::optional<std::string>& new_home) override {
    ++flips;
    if (flip_fault == FlipFault::kUnreachable) {
      find_fails = true;
      return Error::unavailable("LDAP ldap://fake: Can't contact LDAP server");
    }
    if (flip_fault == FlipFault::kConflict || account.host != expected.host || account.home != expected.home)
      return Error::conflict("entry changed underneath us");
    account.host = new_host;
    if (new_home) account.home = *new_home;
    if (flip_fault == FlipFault::kLostReplyAfterApply) return Error::timeout("LDAP modify: timed out");
    return {};
  }
  Status set_attribute(const std::string&, const std::string&, const std::string& value,
                       const std::optional<std::string>&) override {
    account.status = value;
    return {};
  }
  Result<std::optional<std::string>> get_attribute(const std::string&, const std::string&) override {
    return std::optional<std::string>(account.status);
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
  int kicks = 0;
  std::string_view name() const override { return "recording"; }
  Status kick(const std::string&, const std::string&) override {
    ++kicks;
    return {};
  }
  Result<int> sessions(const std::string&, const std::string&) override { return 0; }
};

class LocalEnv : public MoveEnvironment {
 public:
  std::map<std::string, std::unique_ptr<Transport>> t;
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

}  // namespace mailshard::testing
