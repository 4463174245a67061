// The reachability checks behind `mailshard config check --connect`.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace mailshard::cli {

struct ConnectCheck {
  std::string target;  // "ldap", "store1 metrics", "store1 doveadm", "store1 mail_root"
  bool ok = false;
  std::string detail;  // what was seen, or the one-line error
};

// Runs every check; never stops at the first failure.
std::vector<ConnectCheck> run_connect_checks(const Config& config);

}  // namespace mailshard::cli
