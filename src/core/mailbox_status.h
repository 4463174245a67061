// MailboxStatusSource: the mail server's own view of a user's mailboxes
// (messages, UIDVALIDITY, UIDNEXT per folder), used by a move to check the
// destination copy against what the server reported for the source.
//
// Contract: a read-only call on the given server; it never touches another
// server. Errors: kUnavailable / kTimeout (server down), kNotFound (unknown
// user), kUnsupported (the server has no API configured).
// Thread-safety: one instance per thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/result.h"

namespace mailshard {

struct MailboxStatusInfo {
  std::string mailbox;  // "INBOX", "Archive/2024", ... (the server's names)
  int64_t messages = -1;
  int64_t uidvalidity = -1;
  int64_t uidnext = -1;
};

class MailboxStatusSource {
 public:
  virtual ~MailboxStatusSource() = default;
  virtual Result<std::vector<MailboxStatusInfo>> mailbox_status(const std::string& user,
                                                                const std::string& server) = 0;
};

}  // namespace mailshard
