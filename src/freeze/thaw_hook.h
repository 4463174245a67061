// ThawHook: runs the operator's [thaw] command after every successful thaw of
// the wrapped backend (a move's thaw, a rollback's, resume's, the freeze
// guard's), e.g. `postqueue -f` so mail a router deferred while the user was
// frozen is retried now instead of at its next queue run.
//
// The hook is advice to the mail system, not part of the move: a hook that
// fails or times out is logged as a warning and thaw() still succeeds, so the
// move completes. freeze() and flip_assertion() pass through unchanged.
// Thread-safety: as the wrapped backend (one instance per thread).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/freeze_backend.h"

namespace mailshard {

class ThawHook final : public FreezeBackend {
 public:
  // command: argv run without a shell after each successful thaw; every
  // "{user}" inside an argument is replaced by the user. Bounded by timeout_ms.
  ThawHook(std::unique_ptr<FreezeBackend> inner, std::vector<std::string> command, int64_t timeout_ms)
      : inner_(std::move(inner)), command_(std::move(command)), timeout_ms_(timeout_ms) {}
  std::string_view name() const override { return inner_->name(); }
  Status freeze(const FreezeTarget& target, int64_t until_ms) override { return inner_->freeze(target, until_ms); }
  // The inner thaw's result; the hook runs only when it succeeded.
  Status thaw(const FreezeTarget& target) override;
  std::string flip_assertion(const FreezeTarget& target, int64_t until_ms) const override {
    return inner_->flip_assertion(target, until_ms);
  }

  // The hook's argv for `user` ({user} replaced).
  std::vector<std::string> hook_argv(const std::string& user) const;

 private:
  std::unique_ptr<FreezeBackend> inner_;
  std::vector<std::string> command_;
  int64_t timeout_ms_;
};

}  // namespace mailshard
