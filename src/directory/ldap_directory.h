// LdapDirectory: the Directory on an LDAP server (OpenLDAP libldap).
//
// - Connects with ldap_initialize (ldap://, ldaps://, ldapi://), optional
//   StartTLS (ldap.starttls) and a CA bundle (ldap.ca_file); certificates are
//   always verified. LDAP_OPT_NETWORK_TIMEOUT and LDAP_OPT_TIMEOUT bound the
//   connect and every operation (ldap.timeout).
// - Simple bind as ldap.bind_dn (anonymous when empty). The password is sent
//   and never logged or shown.
// - Lists accounts with the paged-results control (RFC 2696, ldap.page_size),
//   because directories cap unpaged searches (slapd: 500 entries).
// - Writes (flip, set_attribute) carry a critical Assertion control
//   (RFC 4528, OID 1.3.6.1.1.12), which makes each a compare-and-swap.
// - A connection lost between operations is re-opened once per call.
//
// Thread-safety: calls are serialised on one connection by an internal mutex.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/directory.h"
#include "directory/account_validator.h"

typedef struct ldap LDAP;

namespace mailshard {

class LdapDirectory final : public Directory {
 public:
  // Connects and binds now, so bad credentials or a dead server surface here.
  // Errors: kUnavailable ("LDAP ldap://...: cannot connect: Can't contact LDAP
  // server"), kTimeout, kPermission ("LDAP bind as '<dn>' to <uri>: Invalid
  // credentials (check ...)"), kInvalidInput (bad URI or TLS options).
  static Result<std::unique_ptr<LdapDirectory>> connect(const Config& config);
  ~LdapDirectory() override;

  // Reads at most one entry matching the configured filter under base_dn
  // (for `config check --connect`). Returns its DN, or "" when the filter
  // matches nothing.
  Result<std::string> probe();

  Status for_each_account(const std::function<Status(Account&&)>& fn,
                          std::vector<DirectoryAnomaly>* anomalies) override;
  Result<Account> find_account(const std::string& user) override;
  // Like find_account, for a login name that may be the value of any of
  // `attributes` (e.g. mail or uid); several entries matching is kInvalidInput.
  Result<Account> find_login(const std::string& login, const std::vector<std::string>& attributes);
  Status flip(const std::string& dn, const FlipExpectation& expected, const std::string& new_host,
              const std::optional<std::string>& new_home) override;
  Status set_attribute(const std::string& dn, const std::string& attribute, const std::string& value,
                       const std::optional<std::string>& assertion_filter) override;
  Result<std::optional<std::string>> get_attribute(const std::string& dn, const std::string& attribute) override;

 private:
  LdapDirectory(LdapConfig ldap, AccountValidator validator);
  Status open();  // ldap_initialize + options + StartTLS + bind
  void close();
  // Runs op; if it failed because the connection dropped, reconnects and runs it once more.
  template <typename Op>
  auto with_reconnect(Op&& op) -> decltype(op());
  Status search_paged(const std::function<Status(Account&&)>& fn, std::vector<DirectoryAnomaly>* anomalies);
  Status modify(const std::string& dn, const std::vector<std::pair<std::string, std::string>>& replace,
                const std::optional<std::string>& assertion_filter);
  Result<std::vector<RawEntry>> search_entries(const std::string& base, int scope, const std::string& filter,
                                               int size_limit);
  Result<std::vector<std::string>> read_values(const std::string& dn, const std::string& attribute);

  LdapConfig cfg_;
  AccountValidator validator_;
  std::mutex mu_;
  LDAP* ld_ = nullptr;
};

// Checks users' passwords by binding as them (simple bind) on a connection of
// its own, so the directory's service connection keeps its identity. Opened
// on first use and re-opened once when the server dropped it.
// Thread-safety: none; one checker per thread.
class LdapPasswordChecker {
 public:
  explicit LdapPasswordChecker(LdapConfig ldap);
  ~LdapPasswordChecker();
  LdapPasswordChecker(const LdapPasswordChecker&) = delete;
  LdapPasswordChecker& operator=(const LdapPasswordChecker&) = delete;

  // true: `password` is the password of `dn`; false: it is not (invalid
  // credentials), or it is empty (never an unauthenticated bind).
  // Errors: kUnavailable, kTimeout (the server), kPermission (e.g. TLS
  // refused, or the server refuses binds on this connection).
  Result<bool> check(const std::string& dn, const std::string& password);

 private:
  LdapConfig cfg_;
  LDAP* ld_ = nullptr;
};

}  // namespace mailshard
