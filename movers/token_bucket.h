// TokenBucket: the --bwlimit of a sync, shared by all its copy streams.
// Bytes may be spent ahead (a 1 MiB chunk at 100 KiB/s); the debt is then
// paid by sleeping on the injected clock, so the average rate holds and
// tests can run on a fake clock.
// Thread-safety: consume() is safe from several threads.
#pragma once

#include <cstdint>
#include <mutex>

#include "core/clock.h"
#include "core/transport.h"

namespace mailshard {

class TokenBucket final : public Throttle {
 public:
  // bytes_per_s > 0. A burst of up to a tenth of a second is allowed.
  TokenBucket(int64_t bytes_per_s, Clock& clock);
  void consume(int64_t bytes) override;
  int64_t slept_ms() const { return slept_ms_; }

 private:
  std::mutex mu_;
  int64_t rate_;
  Clock& clock_;
  double tokens_;
  int64_t last_ms_;
  int64_t slept_ms_ = 0;
};

}  // namespace mailshard
