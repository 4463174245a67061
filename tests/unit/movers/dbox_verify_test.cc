// The flip's gate for sdbox/mdbox: the destination's doveadm view of the
// copy against the source's under the freeze.
#include "movers/dbox_verify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailshard {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

MailboxContents box(const std::string& name, int64_t validity, int64_t next, std::vector<MailboxMessage> msgs,
                    const std::string& guid = "") {
  MailboxContents c;
  c.status = {name, static_cast<int64_t>(msgs.size()), validity, next};
  c.guid = guid;
  c.messages = std::move(msgs);
  return c;
}

const std::vector<MailboxContents> kSource = {box("INBOX", 100, 4, {{1, "g1"}, {3, "g3"}}, "mb1"),
                                              box("Sent", 101, 2, {{1, "s1"}}, "mb2")};

TEST(DboxVerify, AnEqualViewHasNoDifference) {
  EXPECT_THAT(compare_mailbox_contents(kSource, kSource), IsEmpty());
  EXPECT_EQ(count_messages(kSource), 3);
}

TEST(DboxVerify, LateMailAboveTheSourcesUidnextIsAllowed) {
  auto dst = kSource;
  dst[0].messages.push_back({4, "g4"});  // an MTA ignored the freeze before the final pass
  dst[0].status.uidnext = 5;
  dst.push_back(box("Lists", 102, 2, {{1, "l1"}}));  // a folder a delivery created meanwhile
  EXPECT_THAT(compare_mailbox_contents(kSource, dst), IsEmpty());
}

TEST(DboxVerify, EveryDifferenceIsNamed) {
  auto dst = kSource;
  dst[0].messages = {{1, "g1"}, {2, "gx"}, {3, "other"}};
  dst[1].status.uidvalidity = 999;
  EXPECT_THAT(compare_mailbox_contents(kSource, dst),
              ElementsAre("'INBOX': UID 3 has GUID g3 on the source, other on the destination",
                          "'INBOX': UID 2 (GUID gx) is on the destination only",
                          "'Sent': UIDVALIDITY 101 on the source, 999 on the destination"));
  dst = kSource;
  dst[0].messages.pop_back();
  dst[0].status.uidnext = 3;
  dst[0].guid = "mbX";
  dst.pop_back();
  EXPECT_THAT(compare_mailbox_contents(kSource, dst),
              ElementsAre("'INBOX': mailbox GUID mb1 on the source, mbX on the destination",
                          "'INBOX': UIDNEXT 4 on the source, 3 on the destination",
                          "'INBOX': UID 3 (GUID g3) is not on the destination",
                          "mailbox 'Sent' (1 messages) is not on the destination"));
}

}  // namespace
}  // namespace mailshard
