#include "freeze/command_freeze.h"

#include <fmt/format.h>

#include "util/strings.h"
#include "util/subprocess.h"

namespace mailshard {

Status run_gate_command(const std::vector<std::string>& argv, const std::string& what, int64_t timeout_ms) {
  auto r = run_process(argv, "", timeout_ms);
  if (!r.ok()) return std::move(r).error().context(what);
  if (r->timed_out) return Error::timeout(fmt::format("{}: '{}' did not finish within {} ms", what, printable(argv[0]), timeout_ms));
  if (r->exit_code != 0) {
    std::string line = std::string(trim(r->err.substr(0, r->err.find('\n'))));
    return Error::unavailable(fmt::format("{}: '{}' exited with status {}{}{}", what, printable(argv[0]), r->exit_code,
                                          line.empty() ? "" : ": ", printable(line, 200)));
  }
  return {};
}

Status CommandFreeze::freeze(const FreezeTarget& target, int64_t until_ms) {
  auto argv = command_;
  argv.insert(argv.end(), {"freeze", target.user, std::to_string(until_ms / 1000)});
  return run_gate_command(argv, fmt::format("freeze {}", printable(target.user)), timeout_ms_);
}

Status CommandFreeze::thaw(const FreezeTarget& target) {
  auto argv = command_;
  argv.insert(argv.end(), {"thaw", target.user});
  return run_gate_command(argv, fmt::format("thaw {}", printable(target.user)), timeout_ms_);
}

Status CommandKicker::kick(const std::string& user, const std::string& server) {
  auto argv = command_;
  argv.insert(argv.end(), {user, server});
  return run_gate_command(argv, fmt::format("kick {} on {}", printable(user), server), timeout_ms_);
}

Result<int> CommandKicker::sessions(const std::string&, const std::string&) {
  return Error::unsupported("the kick command cannot count sessions");
}

}  // namespace mailshard
