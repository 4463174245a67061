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
  int64_t vsize = -1;  // its messages' virtual size in bytes (-1: not known)
};

// One message as the server names it: its IMAP UID and its GUID (Dovecot's
// message GUID; for dbox written in the mail file itself, so a byte-exact
// copy has the same).
struct MailboxMessage {
  int64_t uid = 0;
  std::string guid;
  bool operator==(const MailboxMessage&) const = default;
};

// A mailbox with its status, its own GUID and every message's UID and GUID.
struct MailboxContents {
  MailboxStatusInfo status;
  std::string guid;                     // the mailbox's GUID
  std::vector<MailboxMessage> messages;  // ascending UID
};

class MailboxStatusSource {
 public:
  virtual ~MailboxStatusSource() = default;
  virtual Result<std::vector<MailboxStatusInfo>> mailbox_status(const std::string& user,
                                                                const std::string& server) = 0;
  // Every mailbox of `user` on `server` with its status and its messages'
  // UIDs and GUIDs (doveadm mailboxStatus + fetch). Read-only for the mail.
  // kUnsupported when the source cannot list messages (the default).
  virtual Result<std::vector<MailboxContents>> mailbox_contents(const std::string& user, const std::string& server) {
    return Error::unsupported("mailbox contents are not available from " + server);
  }
  // The messages of `mailbox` with a UID of at least `from_uid` (doveadm
  // fetch uid guid, query "mailbox M uid N:*"), ascending UID. Read-only.
  // kUnsupported by default.
  virtual Result<std::vector<MailboxMessage>> messages_from(const std::string& user, const std::string& server,
                                                            const std::string& mailbox, int64_t from_uid) {
    return Error::unsupported("messages are not available from " + server);
  }
  // Dovecot's own copy into the user's mailbox of the same name on
  // `server` (doveadm import; the mailbox is made when missing): the
  // messages of `mailbox` with the UIDs `uid_set` ("3,7:9") in the mail
  // storage at `source_location`, a path `server`'s Dovecot reads. Flags,
  // keywords and INTERNALDATE come along; the copies get new UIDs. Not
  // idempotent: the caller keeps track of what it imported.
  virtual Status import_messages(const std::string& user, const std::string& server,
                                 const std::string& source_location, const std::string& mailbox,
                                 const std::string& uid_set) {
    return Error::unsupported("no import on " + server);
  }
};

}  // namespace mailshard
