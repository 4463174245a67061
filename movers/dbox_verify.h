// Dovecot's own view of a dbox copy (sdbox, mdbox) against its view of the
// source: the gate before the flip. dbox keeps flags, keywords and (mdbox)
// folder membership only in Dovecot's binary indexes, so a byte-exact copy
// is necessary but not the proof; the proof is the destination's Dovecot
// listing the same mailboxes, UIDVALIDITYs, UIDs and message GUIDs.
//
// Pure; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "core/mailbox_status.h"

namespace mailshard {

// The differences between `src` (the source's doveadm view, taken under the
// freeze before the final pass) and `dst` (the destination's, with the copy
// in place), one line each, in the source's mailbox order. Every source
// mailbox must be on the destination with the same UIDVALIDITY, mailbox GUID
// (when both report one) and a UIDNEXT at least the source's, and every
// source message there with the same UID and GUID. The destination may hold
// more only where the source could have grown after its view was taken (an
// MTA ignoring the freeze before the final pass copied): messages with a UID
// at or above the source's UIDNEXT, and mailboxes the source did not list.
std::vector<std::string> compare_mailbox_contents(const std::vector<MailboxContents>& src,
                                                  const std::vector<MailboxContents>& dst);

// Messages counted in `boxes`.
int64_t count_messages(const std::vector<MailboxContents>& boxes);

}  // namespace mailshard
