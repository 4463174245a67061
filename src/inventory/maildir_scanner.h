// The MailboxSizer for size_source = "scan" on a mail root mounted on this
// machine: the Maildir scanner of core/maildir_scanner.h (readdir only, no
// stat per message; symlinks never followed) run under server.mail_root.
// Servers behind the agent are scanned by their agent instead (the SIZE
// request), with the same scanner.
//
// Thread-safety: ScanMailboxSizer may be used from several threads at once.
#pragma once

#include "core/mailbox_sizer.h"
#include "core/maildir_scanner.h"

namespace mailshard {

// open_home + scan_tree.
class ScanMailboxSizer final : public MailboxSizer {
 public:
  Result<MailboxSize> size(const ServerConfig& server, const MailboxRef& mailbox) override;
};

}  // namespace mailshard
