#include "freeze/thaw_hook.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "freeze/command_freeze.h"
#include "util/strings.h"

namespace mailshard {

std::vector<std::string> ThawHook::hook_argv(const std::string& user) const {
  static const std::string kUser = "{user}";
  std::vector<std::string> argv = command_;
  for (auto& a : argv)
    for (size_t at = a.find(kUser); at != std::string::npos; at = a.find(kUser, at + user.size()))
      a.replace(at, kUser.size(), user);
  return argv;
}

Status ThawHook::thaw(const FreezeTarget& target) {
  MS_CHECK(inner_->thaw(target));
  Status hook = run_gate_command(hook_argv(target.user), fmt::format("thaw hook for {}", printable(target.user)),
                                 timeout_ms_);
  if (!hook.ok()) spdlog::warn("{} (the thaw itself succeeded; the move goes on)", hook.error().message());
  return {};
}

}  // namespace mailshard
