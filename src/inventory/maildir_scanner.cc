#include "inventory/maildir_scanner.h"

namespace mailshard {

Result<MailboxSize> ScanMailboxSizer::size(const ServerConfig& server, const MailboxRef& mailbox) {
  int fd = MS_TRY(open_home(server.mail_root, mailbox.home_rel));
  if (fd < 0) {
    MailboxSize empty;
    empty.exists = false;
    empty.messages = 0;
    return empty;
  }
  return scan_tree(fd, mailbox.home_rel);
}

}  // namespace mailshard
