// Never a silent format change: which mail format a user's home holds, and
// whether a move would put it on a server that reads another one (a Courier
// Maildir++ under Dovecot gets new UIDVALIDITYs, loses its keywords and may
// have folders Dovecot cannot open; the other way round, the same).
#pragma once

#include <optional>
#include <string>

#include "core/config.h"
#include "core/mail_location.h"
#include "core/transport.h"
#include "movers/courier_to_dovecot.h"

namespace mailshard {

// The server's declared location: its mail_location, else Dovecot when it
// has a doveadm_url (the doveadm API is Dovecot's), else unknown; the
// Maildir's place inside the home is "" (not said) unless mail_location says it.
MailLocation server_location(const ServerConfig& server);

// What the files of `home` say. The UID lists decide: Courier when its
// Maildir holds courierimapuiddb and no dovecot-uidlist, Dovecot the other
// way round. Without either, the keyword files (courierimapkeywords/,
// dovecot-keywords) and then the subscription files (courierimapsubscribed,
// subscriptions) do. Unknown when nothing says (a new mailbox), or when a
// pair has both. Under an sdbox/mdbox location the directories of
// `loc.maildir` decide: storage/ is mdbox, mailboxes/ alone is sdbox, neither
// is unknown. The Maildir is `loc.maildir` inside
// the home when said, else Maildir/ and then the home itself are tried.
Result<MailFormat> detect_home_format(Transport& t, const std::string& home, const MailLocation& loc);

// The one line that refuses the move when the user's mail (as its files
// say, else as `from` declares) is in another format than `to` reads and
// mailshard cannot convert it (Dovecot -> Courier; Maildir <-> sdbox <->
// mdbox in any direction); nullopt when they agree,
// either is unknown, or the move converts (Courier -> Dovecot).
std::optional<std::string> format_change_refusal(const std::string& user, MailFormat files, const ServerConfig& from,
                                                 const ServerConfig& to);

// How a Courier -> Dovecot conversion names folders on a destination with
// location `to`: its LAYOUT= (Maildir++, Dovecot's default, or fs; any case)
// and UTF-8. kUnsupported, one line, for another layout or any other naming
// option (DIRNAME=, MAILBOXDIR=, ...).
Result<DovecotLayout> conversion_layout(const MailLocation& to);

// The one line that refuses a move between servers whose mail_location
// options name things differently (LAYOUT=, UTF-8, DIRNAME=, ...: the
// destination would read a byte-exact copy as other folders), or a Courier
// -> Dovecot conversion into a destination whose options it cannot write
// (conversion_layout); nullopt when they agree.
std::optional<std::string> location_options_refusal(const std::string& user, bool converts, const ServerConfig& from,
                                                    const ServerConfig& to);

// Whether the move converts Courier-IMAP Maildir++ to Dovecot Maildir: the
// mail is Courier's (its files, else `from`'s mail_location) and `to` reads
// Dovecot's format.
bool converts_courier_to_dovecot(MailFormat files, const ServerConfig& from, const ServerConfig& to);

}  // namespace mailshard
