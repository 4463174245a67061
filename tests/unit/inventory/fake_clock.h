// A Clock whose time moves only when told (sleep_ms advances it), for tests.
#pragma once

#include <atomic>
#include <vector>
#include <mutex>

#include "core/clock.h"

namespace mailshard::testing {

class FakeClock final : public Clock {
 public:
  int64_t now_ms() const override { return now_.load(); }
  int64_t monotonic_ms() const override { return now_.load(); }
  void sleep_ms(int64_t ms) override {
    std::lock_guard lock(mu_);
    sleeps_.push_back(ms);
    now_ += ms;
  }
  void set(int64_t ms) { now_ = ms; }
  std::vector<int64_t> sleeps() const {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

 private:
  std::atomic<int64_t> now_{1'750'000'000'000};
  mutable std::mutex mu_;
  std::vector<int64_t> sleeps_;
};

}  // namespace mailshard::testing
