// Sizing a mailbox home by walking it, the way `du -s --apparent-size -B1`
// counts it (files, directories and symlinks by st_size, each inode once),
// but without a stat per message: Dovecot and Courier put the message size
// in the Maildir file name (",S=<bytes>"), so readdir alone sizes cur/ and
// new/. fstatat(AT_SYMLINK_NOFOLLOW) is used only for names without S=, for
// files outside cur/ and new/ (indexes, uidlists, tmp/), for symlinks and
// when the filesystem does not report d_type.
//
// Safety: symlinks are never followed (every directory is opened with
// O_NOFOLLOW relative to its parent, starting from the mail root), so a
// symlink loop or a link pointing out of the mail root is counted as a link
// and nothing more. Names are handled as bytes (non-UTF-8 is fine) and paths
// never go through PATH_MAX (openat on each level).
//
// It lives in core because it is the one way a home is counted, wherever the
// mail is: the inventory runs it on this machine for local mail roots
// (ScanMailboxSizer, src/inventory/maildir_scanner.h), the agent runs it on
// its server for the SIZE request (docs/agent-protocol.md), so both give the
// same figures by construction.
//
// Thread-safety: free functions with no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/mailbox_sizer.h"

namespace mailshard {

// Directory levels below the home the scan descends; deeper is an error.
// Maildir++ folders are flat (".A.B"), so real homes are < 10 levels deep.
constexpr int kMaxScanDepth = 100;

// The S= size in a Maildir file name ("1700000000.M1P2.host,S=1234,W=1260:2,S"
// -> 1234), looking only before the ":2," info part; nullopt when there is none.
std::optional<int64_t> maildir_name_size(std::string_view name);

// Opens <mail_root>/<home_rel> one component at a time with O_NOFOLLOW.
// Success: an open directory fd, or -1 when some component does not exist
// (the home was never created). Errors: kNotFound (mail_root missing),
// kInvalidInput ("'x/y' is a symbolic link (never followed)" or "is not a
// directory"), kPermission.
Result<int> open_home(const std::string& mail_root, const std::string& home_rel);

// Scans the directory tree at `dir_fd` (takes ownership). `shown` names it in
// errors. Errors: kPermission/kNotFound/kInternal for an unreadable directory
// ("scan 'example.org/alice/Maildir/cur': Permission denied"), kInvalidInput
// for nesting deeper than kMaxScanDepth.
Result<MailboxSize> scan_tree(int dir_fd, const std::string& shown);

}  // namespace mailshard
