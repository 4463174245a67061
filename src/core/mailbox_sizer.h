// MailboxSizer: how many bytes (and messages) one user's mailbox holds.
//
// Implementations (src/inventory/): a Maildir scan that reads sizes from the
// ",S=<bytes>" field of message file names (readdir only, no stat per
// message), the Maildir++ "maildirsize" quota file, and doveadm quotaGet over
// the HTTP API. The scan counts like `du -s --apparent-size -B1` of the home:
// files, directories and symlinks, each inode once.
//
// Thread-safety: size() may be called from several threads at once (the
// inventory runs a bounded pool of scans).
// Blocking: filesystem or network I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "util/result.h"

namespace mailshard {

// Which mailbox to size: the account's home, relative to server.mail_root
// (already validated: no "..", not absolute, not empty).
struct MailboxRef {
  std::string user;      // for doveadm and for messages
  std::string home_rel;  // "example.org/alice"
};

struct MailboxSize {
  int64_t bytes = 0;       // apparent bytes of the whole home
  int64_t messages = -1;   // message files (cur/ and new/); -1 = unknown to this source
  int64_t files = 0;       // every non-directory entry counted; 0 for non-scan sources
  int64_t stat_calls = 0;  // lstat-like calls the scan needed (names without S=, other files)
  bool exists = true;      // false: the home does not exist yet (no mail ever delivered): 0 bytes
  std::vector<std::string> notes;  // things worth a look that did not stop the sizing
};

class MailboxSizer {
 public:
  virtual ~MailboxSizer() = default;

  // Success: the size of `mailbox` on `server`. A home that does not exist
  // is a success with exists = false and 0 bytes (a user who never got mail).
  // Errors: kNotFound (mail_root itself is missing), kPermission (a directory
  // could not be read), kInvalidInput (the home, or a path inside it, is a
  // symlink, which is never followed), kUnavailable/kTimeout (doveadm),
  // kCorrupt (an unreadable maildirsize or doveadm reply). An error concerns
  // this user only; the caller goes on with the others.
  virtual Result<MailboxSize> size(const ServerConfig& server, const MailboxRef& mailbox) = 0;
};

}  // namespace mailshard
