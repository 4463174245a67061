// Freeze and kick through an operator's program, run without a shell:
//   <command...> freeze USER EXPIRY_EPOCH_SECONDS
//   <command...> thaw USER
//   <kick command...> USER SERVER
// Exit status 0 is success; anything else is an error carrying the first
// line of the program's stderr.
#pragma once

#include <string>
#include <vector>

#include "core/freeze_backend.h"

namespace mailshard {

class CommandFreeze final : public FreezeBackend {
 public:
  CommandFreeze(std::vector<std::string> command, int64_t timeout_ms = 30'000)
      : command_(std::move(command)), timeout_ms_(timeout_ms) {}
  std::string_view name() const override { return "command"; }
  Status freeze(const FreezeTarget& target, int64_t until_ms) override;
  Status thaw(const FreezeTarget& target) override;

 private:
  std::vector<std::string> command_;
  int64_t timeout_ms_;
};

class CommandKicker final : public SessionKicker {
 public:
  CommandKicker(std::vector<std::string> command, int64_t timeout_ms = 30'000)
      : command_(std::move(command)), timeout_ms_(timeout_ms) {}
  std::string_view name() const override { return "command"; }
  Status kick(const std::string& user, const std::string& server) override;
  Result<int> sessions(const std::string& user, const std::string& server) override;

 private:
  std::vector<std::string> command_;
  int64_t timeout_ms_;
};

// Runs argv; a non-zero exit becomes kUnavailable "<what>: exit N: <stderr line>".
Status run_gate_command(const std::vector<std::string>& argv, const std::string& what, int64_t timeout_ms);

}  // namespace mailshard
