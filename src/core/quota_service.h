// QuotaService: a mail server's quota for one user, as the move needs it:
// the limits the destination will enforce (preflight refuses a mailbox that
// does not fit) and a recalculation once the move has put mail there
// behind the server's back (the final pass and the sweep write files, so
// Dovecot's quota bookkeeping, Maildir++ `maildirsize` included, is stale).
//
// Contract: calls go to the named server only. Errors: kUnsupported (the
// server has no API configured, or no quota), kUnavailable / kTimeout
// (server down), kNotFound (the server does not know the user), kPermission.
// Thread-safety: one instance per thread. Blocking: one round trip per call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/result.h"

namespace mailshard {

// One quota root ("User quota"); -1 = not reported / unlimited.
struct QuotaRoot {
  std::string root;
  int64_t storage_kib = -1;        // STORAGE used, KiB (Dovecot counts in kilobytes)
  int64_t storage_limit_kib = -1;  // STORAGE limit, KiB; -1 = unlimited
  int64_t messages = -1;           // MESSAGE used
  int64_t message_limit = -1;      // MESSAGE limit; -1 = unlimited
};

class QuotaService {
 public:
  virtual ~QuotaService() = default;
  // The user's quota roots on `server` (doveadm quota get). Read-only from
  // the quota's point of view; note that Dovecot opens the user's mail
  // storage to answer, which creates an empty home if there is none.
  virtual Result<std::vector<QuotaRoot>> quota(const std::string& user, const std::string& server) = 0;
  // Recounts the user's quota on `server` from the mail itself (doveadm
  // quota recalc; for Maildir++ quota Dovecot rewrites maildirsize).
  // Idempotent.
  virtual Status recalc_quota(const std::string& user, const std::string& server) = 0;
};

}  // namespace mailshard
