// FreezeBackend: holds a user's logins and deliveries while the final pass of
// a move runs, and lets them in again afterwards. SessionKicker: ends the
// user's live sessions on one server (proxies never drain them by themselves).
//
// Contracts:
//  - freeze() and thaw() are idempotent: freezing a frozen user refreshes the
//    expiry, thawing an active user succeeds. resume depends on this.
//  - Every freeze carries an expiry (epoch ms) so a dead mover can never lock
//    a user out for good; backends pass it on where the gate can honour it.
//  - Errors: kUnavailable (gate unreachable, retry), kPermission, kInvalidInput
//    (bad configuration). Both calls block for at most the backend's timeout.
// Thread-safety: one instance per thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace mailshard {

struct FreezeTarget {
  std::string user;  // user_attribute value, as on the command line
  std::string dn;    // the LDAP entry
  // The move that freezes (core/freeze_value.h: "42.9f3a1c2b"); "" for a
  // freeze that names no move (a move journaled before owners were written).
  std::string owner = {};
};

class FreezeBackend {
 public:
  virtual ~FreezeBackend() = default;
  virtual std::string_view name() const = 0;
  // Holds logins and deliveries until until_ms (or until thaw).
  virtual Status freeze(const FreezeTarget& target, int64_t until_ms) = 0;
  virtual Status thaw(const FreezeTarget& target) = 0;
  // An LDAP filter that is true exactly while this backend holds the user
  // with the freeze `target` made until `until_ms` (ldap-attribute:
  // "(mailAccountStatus=frozen;move=42.9f3a1c2b)", "(mailAccountStatus=frozen)").
  // The flip asserts it, so a flip can never happen after the freeze was
  // lifted or taken by someone else. "" when the backend cannot be observed in LDAP.
  virtual std::string flip_assertion(const FreezeTarget& target, int64_t until_ms) const {
    (void)target;
    (void)until_ms;
    return {};
  }
};

class SessionKicker {
 public:
  virtual ~SessionKicker() = default;
  virtual std::string_view name() const = 0;
  // Ends every session of `user` on `server`. Idempotent: no session is success.
  virtual Status kick(const std::string& user, const std::string& server) = 0;
  // Live sessions of `user` on `server`; kUnsupported when the backend cannot tell.
  virtual Result<int> sessions(const std::string& user, const std::string& server) = 0;
};

}  // namespace mailshard
