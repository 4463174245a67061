#include "inventory/mailbox_sizers.h"

#include <fcntl.h>
#include <cstring>
#include <unistd.h>

#include <fmt/format.h>

#include "doveadm/doveadm_client.h"
#include "inventory/maildir_scanner.h"
#include "util/fs.h"
#include "util/strings.h"

namespace mailshard {
namespace {

// Maildir++ asks writers to recalculate the file beyond 5120 bytes; a file
// much larger than that is not a maildirsize file.
constexpr size_t kMaxMaildirsizeBytes = 1u << 20;

Result<std::string> read_fd(int fd, size_t limit, const std::string& shown) {
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, fmt::format("read '{}'", printable(shown)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) return Error::corrupt(fmt::format("'{}' is larger than {} bytes", printable(shown), limit));
  }
  return out;
}

}  // namespace

std::string_view size_source_name(SizeSource source) {
  switch (source) {
    case SizeSource::kScan: return "scan";
    case SizeSource::kMaildirsize: return "maildirsize";
    case SizeSource::kDoveadm: return "doveadm";
  }
  return "?";
}

Result<MaildirsizeTotals> parse_maildirsize(std::string_view text) {
  MaildirsizeTotals t;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (++line_no == 1 || line.empty()) continue;  // line 1: the quota definition ("1073741824S,0C")
    auto fields = split(line, ' ');
    std::vector<std::string> f;
    for (auto& x : fields)
      if (!x.empty()) f.push_back(x);
    auto bytes = f.size() == 2 ? parse_int(f[0]) : Result<int64_t>(Error::invalid(""));
    auto count = f.size() == 2 ? parse_int(f[1]) : Result<int64_t>(Error::invalid(""));
    if (!bytes.ok() || !count.ok())
      return Error::corrupt(
          fmt::format("maildirsize line {}: expected '<bytes> <count>', got '{}'", line_no, printable(line, 60)));
    t.bytes += *bytes;
    t.messages += *count;
  }
  if (line_no == 0) return Error::corrupt("maildirsize is empty");
  if (t.bytes < 0 || t.messages < 0)
    return Error::corrupt(fmt::format("maildirsize adds up to {} bytes / {} messages", t.bytes, t.messages));
  return t;
}

Result<MailboxSize> MaildirsizeSizer::size(const ServerConfig& server, const MailboxRef& mailbox) {
  ScanMailboxSizer scan;
  int home = MS_TRY(open_home(server.mail_root, mailbox.home_rel));
  if (home < 0) return scan.size(server, mailbox);  // no home: 0 bytes either way
  UniqueFd home_fd(home);
  const std::string shown = mailbox.home_rel + "/" + kMaildirDirName + "/maildirsize";
  std::string why;
  UniqueFd md(openat(home_fd.get(), kMaildirDirName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  UniqueFd f(md.valid() ? openat(md.get(), "maildirsize", O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1);
  if (!f.valid()) {
    why = fmt::format("no usable '{}' ({})", printable(shown), std::strerror(errno));
  } else {
    auto text = read_fd(f.get(), kMaxMaildirsizeBytes, shown);
    if (text.ok()) {
      auto totals = parse_maildirsize(*text);
      if (totals.ok()) {
        MailboxSize out;
        out.bytes = totals->bytes;
        out.messages = totals->messages;
        return out;
      }
      why = totals.error().message();
    } else {
      why = text.error().message();
    }
  }
  auto scanned = scan.size(server, mailbox);
  if (scanned.ok()) scanned->notes.push_back(fmt::format("{}; scanned instead", why));
  return scanned;
}

Result<MailboxSize> DoveadmSizer::size(const ServerConfig& server, const MailboxRef& mailbox) {
  auto client = MS_TRY(DoveadmClient::for_server(server, timeout_ms_));
  auto roots = MS_TRY(client.quota_get(mailbox.user));
  for (const auto& q : roots) {
    if (q.storage_kib < 0) continue;
    MailboxSize out;
    out.bytes = q.storage_kib * 1024;
    out.messages = q.messages;
    if (roots.size() > 1) out.notes.push_back(fmt::format("{} quota roots; used '{}'", roots.size(), printable(q.root)));
    return out;
  }
  return Error::corrupt(fmt::format("doveadm quotaGet {}: no STORAGE quota reported (is the quota plugin on?)",
                                    printable(mailbox.user)));
}

std::unique_ptr<MailboxSizer> make_mailbox_sizer(SizeSource source, int64_t timeout_ms) {
  switch (source) {
    case SizeSource::kScan: return std::make_unique<ScanMailboxSizer>();
    case SizeSource::kMaildirsize: return std::make_unique<MaildirsizeSizer>();
    case SizeSource::kDoveadm: return std::make_unique<DoveadmSizer>(timeout_ms);
  }
  return std::make_unique<ScanMailboxSizer>();
}

}  // namespace mailshard
