// Clock: the one source of time for everything that has deadlines (freeze
// expiry, grace periods, kick waits), injected so tests can move time instead
// of sleeping. Times are Unix epoch milliseconds (UTC).
//
// Thread-safety: SystemClock is stateless and safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace mailshard {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time now, Unix epoch ms. Used for journal stamps and expiries.
  virtual int64_t now_ms() const = 0;
  // Monotonic milliseconds for measuring durations (lockout, phases).
  virtual int64_t monotonic_ms() const = 0;
  // Blocks for ms (a fake clock just advances).
  virtual void sleep_ms(int64_t ms) = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t monotonic_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void sleep_ms(int64_t ms) override { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
};

// ISO-8601 UTC ("2026-11-27T02:47:11.123Z") for reports and JSON.
std::string format_time_ms(int64_t epoch_ms);

}  // namespace mailshard
