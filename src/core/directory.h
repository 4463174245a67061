// Directory: where the fleet's user -> server mapping lives (LDAP in
// production, see src/directory/ldap_directory.h). It lists the mail accounts,
// reads one, and performs the one write a move depends on: the flip of the
// host (and optionally home) attribute as a single compare-and-swap.
//
// Values read from the directory are never trusted: an account whose host is
// missing or unknown, whose home escapes its server's mail root, or whose
// values are not clean UTF-8 is reported as a DirectoryAnomaly and never
// handed to the caller as an Account.
//
// Thread-safety: implementations serialise calls internally, so one Directory
// may be shared by several threads; calls do not run in parallel.
// Blocking: every call does network I/O, bounded by the configured timeout.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace mailshard {

// One mail account as the directory describes it (validated).
struct Account {
  std::string dn;
  std::string user;      // value of user_attribute (what USER means on the command line)
  std::string host;      // value of host_attribute: a configured server name
  std::string home;      // value of home_attribute, exactly as stored (for the flip's assertion)
  std::string home_rel;  // home relative to the server's mail_root, normalised ("example.org/alice")
  std::string status;    // value of the freeze attribute ("" when absent)
  double activity = 0;   // value of activity_attribute; 0 when unknown or not configured
};

// An entry that was skipped because it cannot be trusted.
struct DirectoryAnomaly {
  std::string dn;      // printable form (non-UTF-8 bytes shown as \xNN)
  std::string reason;  // one line, e.g. "mailHost 'store9' is not a configured server"
};

// The expected current values for a flip; all must still hold.
struct FlipExpectation {
  std::string host;
  std::string home;
  // An extra RFC 4515 filter ANDed into the assertion, already escaped, e.g.
  // FreezeBackend::flip_assertion(until) "(mailAccountStatus=frozen)"; "" = none.
  std::string also;
};

class Directory {
 public:
  virtual ~Directory() = default;

  // Streams every account matching the configured filter to `fn`, in
  // directory order, without holding the whole result (paged). Entries that
  // fail validation go to `anomalies` (may be nullptr) instead of `fn`.
  // If `fn` returns an error the iteration stops and that error is returned.
  // Errors: kUnavailable (server down or unreachable), kTimeout,
  // kPermission (bind refused: wrong DN or password), kInvalidInput (the
  // server rejected the filter or base DN).
  virtual Status for_each_account(const std::function<Status(Account&&)>& fn,
                                  std::vector<DirectoryAnomaly>* anomalies) = 0;

  // The one account whose user_attribute equals `user` (the value is escaped
  // per RFC 4515 before it goes into the filter).
  // Errors: kNotFound (no such account), kInvalidInput (the entry is an
  // anomaly, with the reason, or several entries carry this user), plus the
  // connection errors of for_each_account.
  virtual Result<Account> find_account(const std::string& user) = 0;

  // Sets host_attribute to `new_host` (and home_attribute to `new_home` when
  // given) on `dn` in ONE modify carrying a critical Assertion control
  // (RFC 4528) that requires the entry to still hold `expected`.
  // Success: the entry now holds the new values. Idempotent: when the
  // assertion fails because the entry already holds exactly the new values
  // (a retry after a lost reply), it succeeds without writing.
  // Errors: kConflict ("entry changed underneath us: ...", naming the values
  // now stored), kNotFound (no such dn), kPermission (not allowed to write),
  // kUnavailable/kTimeout (nothing is known about whether it was applied:
  // re-read before retrying).
  virtual Status flip(const std::string& dn, const FlipExpectation& expected, const std::string& new_host,
                      const std::optional<std::string>& new_home) = 0;

  // Replaces `attribute` on `dn` with `value`. When `assertion_filter` is
  // given (an RFC 4515 filter, already escaped by the caller) it is sent as a
  // critical Assertion control, making the write a compare-and-swap.
  // Idempotent. Errors: kConflict (assertion failed), kNotFound, kPermission,
  // kUnavailable, kTimeout.
  virtual Status set_attribute(const std::string& dn, const std::string& attribute, const std::string& value,
                               const std::optional<std::string>& assertion_filter) = 0;

  // The first value of `attribute` on `dn`; nullopt when the entry lacks it.
  // Errors: kNotFound (no such dn), kUnavailable, kTimeout, kPermission.
  virtual Result<std::optional<std::string>> get_attribute(const std::string& dn, const std::string& attribute) = 0;
};

}  // namespace mailshard
