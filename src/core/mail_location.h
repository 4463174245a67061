// Where and in which format a server keeps a user's mail: `[[server]]
// mail_location`, in Dovecot's syntax ("maildir:~/Maildir"), with
// "courier:~/Maildir" for Courier-IMAP's Maildir++.
//
// What mailshard supports today (anything else is a one-line error naming it):
//   maildir:~/PATH   Dovecot's Maildir inside the home (PATH may be empty: the home is the Maildir)
//   courier:~/PATH   Courier-IMAP's Maildir++ inside the home
// The whole home is what a move copies; the location tells where the Maildir
// is inside it and whose metadata files (dovecot-uidlist or courierimapuiddb)
// it holds. Options after the path (INDEX=, CONTROL=, ALT=, LAYOUT=, ...) and
// the formats sdbox, mdbox and mbox are refused, not ignored.
// Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "util/result.h"

namespace mailshard {

enum class MailFormat { kUnknown, kDovecot, kCourier };

// "Dovecot Maildir", "Courier-IMAP Maildir++", "unknown".
std::string_view mail_format_name(MailFormat f);

struct MailLocation {
  MailFormat format = MailFormat::kUnknown;
  std::string maildir;  // relative to the home: "Maildir", or "" for the home itself
};

// Error (kInvalidInput): "'mdbox:~/mdbox': the format mdbox is not supported
// (maildir and courier are)", "'maildir:~/Maildir:INDEX=/x': options after the
// path (INDEX=/x) are not supported", "'maildir:/var/mail/%u': the path must
// be inside the home (~/...)".
Result<MailLocation> parse_mail_location(std::string_view text);

}  // namespace mailshard
