#include "cli/connect_check.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace mailshard::cli {

std::vector<ConnectCheck> run_connect_checks(const Config& config) {
  std::vector<ConnectCheck> out;
  // LDAP, metrics and doveadm checks are added with the directory and
  // inventory backends; until then they report that they cannot run.
  out.push_back({"ldap", false, "LDAP check not implemented yet"});
  for (const auto& s : config.servers) {
    struct stat st;
    if (::stat(s.mail_root.c_str(), &st) != 0)
      out.push_back({s.name + " mail_root", false, fmt::format("'{}': {}", s.mail_root, std::strerror(errno))});
    else if (!S_ISDIR(st.st_mode))
      out.push_back({s.name + " mail_root", false, fmt::format("'{}' is not a directory", s.mail_root)});
    else
      out.push_back({s.name + " mail_root", true, fmt::format("'{}' is a directory", s.mail_root)});
  }
  return out;
}

}  // namespace mailshard::cli
