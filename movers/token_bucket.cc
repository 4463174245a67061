#include "movers/token_bucket.h"

#include <algorithm>

namespace mailshard {

TokenBucket::TokenBucket(int64_t bytes_per_s, Clock& clock)
    : rate_(bytes_per_s), clock_(clock), tokens_(static_cast<double>(bytes_per_s) / 10), last_ms_(clock.monotonic_ms()) {}

void TokenBucket::consume(int64_t bytes) {
  int64_t wait_ms = 0;
  {
    std::lock_guard lock(mu_);
    int64_t now = clock_.monotonic_ms();
    double burst = static_cast<double>(rate_) / 10;
    tokens_ = std::min(burst, tokens_ + static_cast<double>(now - last_ms_) * static_cast<double>(rate_) / 1000.0);
    last_ms_ = now;
    tokens_ -= static_cast<double>(bytes);
    if (tokens_ < 0) wait_ms = static_cast<int64_t>(-tokens_ * 1000.0 / static_cast<double>(rate_)) + 1;
  }
  if (wait_ms > 0) {
    // Other streams keep spending meanwhile; the debt they add is theirs to sleep off.
    clock_.sleep_ms(wait_ms);
    std::lock_guard lock(mu_);
    slept_ms_ += wait_ms;
  }
}

}  // namespace mailshard
