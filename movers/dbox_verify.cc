#include "movers/dbox_verify.h"

#include <map>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

std::vector<std::string> compare_mailbox_contents(const std::vector<MailboxContents>& src,
                                                  const std::vector<MailboxContents>& dst) {
  std::map<std::string, const MailboxContents*> there;
  for (const auto& d : dst) there[d.status.mailbox] = &d;
  std::vector<std::string> diffs;
  for (const auto& s : src) {
    const std::string box = printable(s.status.mailbox);
    auto it = there.find(s.status.mailbox);
    if (it == there.end()) {
      diffs.push_back(fmt::format("mailbox '{}' ({} messages) is not on the destination", box, s.status.messages));
      continue;
    }
    const MailboxContents& d = *it->second;
    if (d.status.uidvalidity != s.status.uidvalidity) {
      diffs.push_back(fmt::format("'{}': UIDVALIDITY {} on the source, {} on the destination", box,
                                  s.status.uidvalidity, d.status.uidvalidity));
      continue;
    }
    if (!s.guid.empty() && !d.guid.empty() && s.guid != d.guid)
      diffs.push_back(fmt::format("'{}': mailbox GUID {} on the source, {} on the destination", box, printable(s.guid),
                                  printable(d.guid)));
    if (d.status.uidnext < s.status.uidnext)
      diffs.push_back(fmt::format("'{}': UIDNEXT {} on the source, {} on the destination", box, s.status.uidnext,
                                  d.status.uidnext));
    std::map<int64_t, const std::string*> dst_uids;
    for (const auto& m : d.messages) dst_uids[m.uid] = &m.guid;
    for (const auto& m : s.messages) {
      auto u = dst_uids.find(m.uid);
      if (u == dst_uids.end())
        diffs.push_back(fmt::format("'{}': UID {} (GUID {}) is not on the destination", box, m.uid, printable(m.guid)));
      else if (*u->second != m.guid)
        diffs.push_back(fmt::format("'{}': UID {} has GUID {} on the source, {} on the destination", box, m.uid,
                                    printable(m.guid), printable(*u->second)));
      if (u != dst_uids.end()) dst_uids.erase(u);
    }
    for (const auto& [uid, guid] : dst_uids)
      if (uid < s.status.uidnext)
        diffs.push_back(fmt::format("'{}': UID {} (GUID {}) is on the destination only", box, uid, printable(*guid)));
  }
  return diffs;
}

int64_t count_messages(const std::vector<MailboxContents>& boxes) {
  int64_t n = 0;
  for (const auto& b : boxes) n += static_cast<int64_t>(b.messages.size());
  return n;
}

}  // namespace mailshard
