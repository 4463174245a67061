// The other MailboxSizer implementations and the name -> sizer table:
//  - "scan":        ScanMailboxSizer (maildir_scanner.h);
//  - "maildirsize": the Maildir++ quota file <home>/Maildir/maildirsize
//                   (message bytes and count as the delivery agent last
//                   recorded them; indexes and directories are not in it).
//                   A home without the file, or with a malformed one, is
//                   scanned instead and the note says so;
//  - "doveadm":     doveadm quotaGet over the HTTP API (STORAGE is reported in
//                   KiB, so sizes are multiples of 1024; with quota_vsizes it
//                   is the CRLF size). Needs doveadm_url on the server.
// Thread-safety: every sizer may be used from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/config.h"
#include "core/mailbox_sizer.h"

namespace mailshard {

// The Maildir directory inside a home (Dovecot's mail_location = maildir:~/Maildir).
constexpr const char* kMaildirDirName = "Maildir";

struct MaildirsizeTotals {
  int64_t bytes = 0;
  int64_t messages = 0;
};

// Parses a maildirsize file: a quota definition line, then "<bytes> <count>"
// lines (negative for expunges) that add up. Errors: kCorrupt
// ("maildirsize line 4: expected '<bytes> <count>', got 'x'").
Result<MaildirsizeTotals> parse_maildirsize(std::string_view text);

class MaildirsizeSizer final : public MailboxSizer {
 public:
  Result<MailboxSize> size(const ServerConfig& server, const MailboxRef& mailbox) override;
};

class DoveadmSizer final : public MailboxSizer {
 public:
  explicit DoveadmSizer(int64_t timeout_ms) : timeout_ms_(timeout_ms) {}
  // Errors: kInvalidInput (server without doveadm_url), and the doveadm
  // client's errors (kNotFound for an unknown user, kUnavailable, ...).
  Result<MailboxSize> size(const ServerConfig& server, const MailboxRef& mailbox) override;

 private:
  int64_t timeout_ms_;
};

// The sizer for `source`; `timeout_ms` bounds each doveadm request.
std::unique_ptr<MailboxSizer> make_mailbox_sizer(SizeSource source, int64_t timeout_ms);
std::string_view size_source_name(SizeSource source);

}  // namespace mailshard
