// Fakes shared by the unit tests: a clock that moves only when told, a
// directory in memory, and moves that finish when the test says so (for the
// plan executor).
//
// Thread-safety: the clock and the moves are safe from any thread (the
// executor runs moves on worker threads and watches the clock from its own;
// the sync engine sleeps on the clock from each stream). The directory is
// for one thread at a time: the tests that use it read and change its fields
// between calls.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/directory.h"
#include "core/journal.h"
#include "movers/plan_executor.h"

namespace mailshard::testing {

// Time moves only by sleep_ms (which also runs on_sleep: what the world does
// meanwhile), advance() and set().
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'800'000'000'000) : now_(start_ms) {}
  int64_t now_ms() const override { return now_.load(); }
  int64_t monotonic_ms() const override { return now_.load(); }
  void sleep_ms(int64_t ms) override {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu_);
      sleeps_.push_back(ms);
      hook = on_sleep_;
    }
    now_ += ms;
    if (hook) hook();
  }
  void advance(int64_t ms) { now_ += ms; }
  void set(int64_t ms) { now_ = ms; }
  void on_sleep(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    on_sleep_ = std::move(fn);
  }
  std::vector<int64_t> sleeps() const {
    std::lock_guard lock(mu_);
    return sleeps_;
  }
  int64_t slept() const {
    std::lock_guard lock(mu_);
    int64_t s = 0;
    for (int64_t v : sleeps_) s += v;
    return s;
  }

 private:
  std::atomic<int64_t> now_;
  mutable std::mutex mu_;
  std::vector<int64_t> sleeps_;
  std::function<void()> on_sleep_;
};

// The directory in memory: `accounts`, looked up by user (find_account) or
// by dn (flip, set_attribute, get_attribute). for_each_account lists them all,
// then reports `anomalies`, or fails with `list_error`. flip is a
// compare-and-swap like LDAP's, with injectable faults; set_attribute and
// get_attribute work on the account's status (the freeze attribute).
class FakeDirectory final : public Directory {
 public:
  enum class FlipFault {
    kNone,
    kLostReplyAfterApply,  // applied, then a timeout: the caller cannot tell
    kUnreachable,          // fails as unavailable, and from then on so does find_account
    kConflict,             // fails as if the entry had changed
  };

  std::vector<Account> accounts;
  std::vector<DirectoryAnomaly> anomalies;  // reported after the accounts
  std::optional<Error> list_error;          // for_each_account fails with this
  FlipFault flip_fault = FlipFault::kNone;
  bool find_fails = false;  // find_account fails as unavailable (LDAP is down)
  int flips = 0;            // flip calls, whatever their outcome

  // The account of `user`, to set up or check; throws std::out_of_range if none.
  Account& account(const std::string& user) {
    for (Account& a : accounts)
      if (a.user == user) return a;
    throw std::out_of_range("FakeDirectory: no account " + user);
  }

  Status for_each_account(const std::function<Status(Account&&)>& fn, std::vector<DirectoryAnomaly>* out) override {
    if (list_error) return *list_error;
    for (Account a : accounts) MS_CHECK(fn(std::move(a)));
    if (out) out->insert(out->end(), anomalies.begin(), anomalies.end());
    return {};
  }
  Result<Account> find_account(const std::string& user) override {
    if (find_fails) return Error::unavailable("LDAP ldap://fake: cannot connect");
    for (const Account& a : accounts)
      if (a.user == user) return a;
    return Error::not_found("no entry");
  }
  Status flip(const std::string& dn, const FlipExpectation& expected, const std::string& new_host,
              const std::optional<std::string>& new_home) override {
    ++flips;
    if (flip_fault == FlipFault::kUnreachable) {
      find_fails = true;
      return Error::unavailable("LDAP ldap://fake: Can't contact LDAP server");
    }
    Account* a = by_dn(dn);
    if (!a) return Error::not_found("no entry " + dn);
    if (flip_fault == FlipFault::kConflict || a->host != expected.host || a->home != expected.home)
      return Error::conflict("entry changed underneath us");
    a->host = new_host;
    if (new_home) a->home = *new_home;
    if (flip_fault == FlipFault::kLostReplyAfterApply) return Error::timeout("LDAP modify: timed out");
    return {};
  }
  // The assertion is honoured in the two forms the freeze writes:
  // "(attr=value)" (RFC 4515 escapes) and "(!(attr=*))" (an empty status).
  Status set_attribute(const std::string& dn, const std::string& attribute, const std::string& value,
                       const std::optional<std::string>& assertion) override {
    Account* a = by_dn(dn);
    if (!a) return Error::not_found("no entry " + dn);
    if (assertion) {
      bool holds;
      if (*assertion == "(!(" + attribute + "=*))") {
        holds = a->status.empty();
      } else {
        const std::string head = "(" + attribute + "=";
        if (assertion->rfind(head, 0) != 0 || assertion->back() != ')')
          throw std::logic_error("FakeDirectory: an assertion it cannot read: " + *assertion);
        std::string want;
        for (size_t i = head.size(); i + 1 < assertion->size(); ++i) {
          if ((*assertion)[i] == '\\' && i + 2 < assertion->size()) {
            want += static_cast<char>(std::stoi(assertion->substr(i + 1, 2), nullptr, 16));
            i += 2;
          } else {
            want += (*assertion)[i];
          }
        }
        holds = !a->status.empty() && a->status == want;
      }
      if (!holds) return Error::conflict("LDAP modify " + dn + ": assertion failed");
    }
    a->status = value;
    return {};
  }
  // An empty status is an absent attribute.
  Result<std::optional<std::string>> get_attribute(const std::string& dn, const std::string&) override {
    Account* a = by_dn(dn);
    if (!a) return Error::not_found("no entry " + dn);
    if (a->status.empty()) return std::optional<std::string>();
    return std::optional<std::string>(a->status);
  }

 private:
  Account* by_dn(const std::string& dn) {
    for (Account& a : accounts)
      if (a.dn == dn) return &a;
    return nullptr;
  }
};

// Moves for the plan executor. By default a move is done at once. A user in
// `gated` waits until release(user) (or release_all, or cancel: a hard stop,
// which rolls it back). `outcome` sets what a user's move returns.
class FakeMoves {
 public:
  struct Outcome {
    MoveState state = MoveState::kDone;
    std::optional<Error> error;  // the move never started (a precheck or an unreachable server)
    int64_t duration_ms = 0;     // the fake clock advances by this much (ungated moves)
    int64_t bytes = 1000;
    int64_t lockout_ms = 100;
  };

  explicit FakeMoves(FakeClock* clock = nullptr) : clock_(clock) {}

  std::map<std::string, Outcome> outcome;  // set before the run
  std::set<std::string> gated;             // set before the run

  MoveFnFactory factory() {
    return [this]() -> Result<MoveFn> {
      return MoveFn([this](const std::string& user, const std::string& to, const MoveOptions& o) { return run(user, to, o); });
    };
  }

  void release(const std::string& user) {
    std::lock_guard lock(mu_);
    released_.insert(user);
    cv_.notify_all();
  }
  void release_all() {
    std::lock_guard lock(mu_);
    release_all_ = true;
    cv_.notify_all();
  }
  // A hard stop: gated moves that are waiting roll back.
  void cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

  // Waits (real time) until n moves have started; false after timeout_ms.
  bool wait_started(size_t n, int timeout_ms = 10'000) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return started_.size() >= n; });
  }
  // Waits until the executor had time to start anything else it would
  // (nothing starts within settle_ms real time).
  void settle(int settle_ms = 100) {
    size_t n;
    do {
      {
        std::lock_guard lock(mu_);
        n = started_.size();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
      std::lock_guard lock(mu_);
      if (started_.size() == n) return;
    } while (true);
  }

  std::vector<std::string> started() const {
    std::lock_guard lock(mu_);
    return started_;
  }
  std::set<std::string> running() const {
    std::lock_guard lock(mu_);
    return running_;
  }
  // The most moves that ran at once with `server` as source (out) / destination (in).
  int max_out(const std::string& server) const {
    std::lock_guard lock(mu_);
    auto it = max_out_.find(server);
    return it == max_out_.end() ? 0 : it->second;
  }
  int max_in(const std::string& server) const {
    std::lock_guard lock(mu_);
    auto it = max_in_.find(server);
    return it == max_in_.end() ? 0 : it->second;
  }
  std::vector<MoveOptions> options_seen() const {
    std::lock_guard lock(mu_);
    return options_;
  }

 private:
  Result<MoveRecord> run(const std::string& user, const std::string& to, const MoveOptions& o) {
    Outcome out;
    bool gate;
    {
      std::unique_lock lock(mu_);
      auto it = outcome.find(user);
      if (it != outcome.end()) out = it->second;
      gate = gated.count(user) > 0;
      started_.push_back(user);
      running_.insert(user);
      options_.push_back(o);
      max_out_[o.expected_from] = std::max(max_out_[o.expected_from], ++out_[o.expected_from]);
      max_in_[to] = std::max(max_in_[to], ++in_[to]);
      cv_.notify_all();
      if (gate) cv_.wait(lock, [&] { return release_all_ || cancelled_ || released_.count(user) > 0; });
      if (gate && cancelled_ && !release_all_ && !released_.count(user)) {
        out.state = MoveState::kRolledBack;
        out.error.reset();
      }
    }
    if (!gate && clock_ && out.duration_ms > 0) clock_->advance(out.duration_ms);
    std::lock_guard lock(mu_);
    running_.erase(user);
    --out_[o.expected_from];
    --in_[to];
    cv_.notify_all();
    if (out.error) return *out.error;
    MoveRecord r;
    r.id = ++next_id_;
    r.user = user;
    r.from_server = o.expected_from;
    r.to_server = to;
    r.state = out.state;
    r.bytes_transferred = out.state == MoveState::kDone ? out.bytes : 0;
    r.lockout_ms = out.state == MoveState::kDone ? out.lockout_ms : -1;
    if (out.state != MoveState::kDone) r.error = "fake: " + std::string(move_state_name(out.state));
    return r;
  }

  FakeClock* clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> started_;
  std::set<std::string> running_;
  std::set<std::string> released_;
  bool release_all_ = false, cancelled_ = false;
  std::map<std::string, int> out_, in_, max_out_, max_in_;
  std::vector<MoveOptions> options_;
  int64_t next_id_ = 0;
};

}  // namespace mailshard::testing
