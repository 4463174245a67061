// Decides whether a directory entry can be trusted as a mail account, and
// turns it into an Account. Everything here is a pure function of the entry
// and the configuration, so every rule is unit-tested without a server.
//
// An entry is an anomaly (skipped, reported with the reason) when:
//  - it lacks the user, host or home attribute, or has several host/home values;
//  - its host is not a configured [[server]] name;
//  - its home contains a ".." component, is empty or names the mail root
//    itself, or is absolute and outside that server's mail_root;
//  - any value used is not valid UTF-8, contains control characters, or is
//    longer than kMaxValueBytes.
// Thread-safety: immutable after construction; safe from several threads.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/directory.h"
#include "util/result.h"

namespace mailshard {

// Longest value accepted (bytes): PATH_MAX - 1, so a home always fits a path.
constexpr size_t kMaxValueBytes = 4095;

// One entry as read, before validation: every value of the attributes asked for.
struct RawEntry {
  std::string dn;
  std::vector<std::string> user;
  std::vector<std::string> host;
  std::vector<std::string> home;
  std::vector<std::string> status;
  std::vector<std::string> activity;
};

bool is_valid_utf8(std::string_view s);

// The relative, normalised form of a home value for a server whose mail root
// is `mail_root`, or kInvalidInput with the reason ("'../x' contains '..'",
// "'/etc/x' is outside mail_root '/srv/mail'").
Result<std::string> relative_home(std::string_view home, std::string_view mail_root);

class AccountValidator {
 public:
  AccountValidator(const LdapConfig& ldap, const std::vector<ServerConfig>& servers, std::string status_attribute);

  // Success: the Account. Error (kInvalidInput): the anomaly's reason, one
  // line, values shown via printable().
  Result<Account> validate(RawEntry&& entry) const;

  const std::string& user_attribute() const { return user_attr_; }
  const std::string& host_attribute() const { return host_attr_; }
  const std::string& home_attribute() const { return home_attr_; }
  const std::string& status_attribute() const { return status_attr_; }
  const std::string& activity_attribute() const { return activity_attr_; }

 private:
  std::string user_attr_, host_attr_, home_attr_, status_attr_, activity_attr_;
  std::map<std::string, std::string, std::less<>> mail_roots_;  // server name -> mail_root
};

}  // namespace mailshard
