// Freeze through an HTTP webhook: POST {"user","dn","action","until"} (JSON,
// until in epoch seconds) to freeze.url, with "Authorization: Bearer <token>"
// when a token is configured. Any 2xx is success.
#pragma once

#include "core/config.h"
#include "core/freeze_backend.h"

namespace mailshard {

class HttpFreeze final : public FreezeBackend {
 public:
  explicit HttpFreeze(const FreezeConfig& config, int64_t timeout_ms = 10'000)
      : config_(config), timeout_ms_(timeout_ms) {}
  std::string_view name() const override { return "http"; }
  Status freeze(const FreezeTarget& target, int64_t until_ms) override;
  Status thaw(const FreezeTarget& target) override;

 private:
  Status post(const FreezeTarget& target, std::string_view action, int64_t until_ms);
  const FreezeConfig& config_;
  int64_t timeout_ms_;
};

}  // namespace mailshard
