// The pure name rules the sweep uses to carry a late message's flags: the
// flags part of a name, Dovecot's keywords file, and keyword letters
// translated by name between two folders' keyword files.
#include "movers/maildir_rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailshard {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(MessageFlags, TheTextAfterColonTwoComma) {
  EXPECT_EQ(message_flags("1.M1P1.h,S=5:2,FS"), "FS");
  EXPECT_EQ(message_flags("1.M1P1.h,S=5:2,"), "");
  EXPECT_EQ(message_flags("1.M1P1.h,S=5"), std::nullopt);
  EXPECT_EQ(message_base("1.M1P1.h,S=5:2,FS"), "1.M1P1.h,S=5");
}

TEST(KeywordsFile, IndexAndNamePerLineBadLinesIgnored) {
  KeywordTable t = parse_keywords_file("0 $Forwarded\n1 Junk\r\nbad line\n26 TooFar\n3 \n x 4\n2 $Label1 with space\n");
  EXPECT_EQ(t, (KeywordTable{{0, "$Forwarded"}, {1, "Junk"}, {2, "$Label1 with space"}}));
  EXPECT_THAT(parse_keywords_file(""), IsEmpty());
}

TEST(RemapFlags, StandardFlagsKeptAndSortedKeywordsMappedByName) {
  KeywordTable src{{0, "$Forwarded"}, {1, "Junk"}, {2, "$Label1"}};
  KeywordTable dst{{0, "Junk"}, {1, "$Label1"}, {2, "$Forwarded"}};
  // a=$Forwarded -> c, b=Junk -> a, c=$Label1 -> b; output in ASCII order.
  RemappedFlags r = remap_message_flags("SFabc", &src, &dst);
  EXPECT_EQ(r.flags, "FSabc");
  EXPECT_THAT(r.dropped, IsEmpty());
  r = remap_message_flags("Sa", &src, &dst);
  EXPECT_EQ(r.flags, "Sc");
  // Same table on both sides (the usual case: the final pass copied it).
  EXPECT_EQ(remap_message_flags("RSb", &src, &src).flags, "RSb");
  EXPECT_EQ(remap_message_flags("", &src, &dst).flags, "");
}

TEST(RemapFlags, AKeywordTheDestinationCannotNameIsDroppedNotGuessed) {
  KeywordTable src{{0, "$Forwarded"}, {1, "NewOnSource"}};
  KeywordTable dst{{0, "$Forwarded"}, {1, "SomethingElse"}};
  RemappedFlags r = remap_message_flags("Sab", &src, &dst);
  EXPECT_EQ(r.flags, "Sa");  // 'b' would have meant SomethingElse there
  EXPECT_THAT(r.dropped, ElementsAre("NewOnSource"));
  // A letter the source's file does not name, and no file on one side.
  r = remap_message_flags("Fd", &src, &dst);
  EXPECT_EQ(r.flags, "F");
  EXPECT_THAT(r.dropped, ElementsAre("letter 'd'"));
  r = remap_message_flags("Sa", nullptr, &dst);
  EXPECT_EQ(r.flags, "S");
  EXPECT_THAT(r.dropped, ElementsAre("letter 'a'"));
  r = remap_message_flags("Sa", &src, nullptr);
  EXPECT_EQ(r.flags, "S");
  EXPECT_THAT(r.dropped, ElementsAre("$Forwarded"));
}

TEST(RemapFlags, DuplicatesOnceAndAnExtensionAfterACommaKept) {
  KeywordTable t{{0, "Junk"}};
  EXPECT_EQ(remap_message_flags("SSaa", &t, &t).flags, "Sa");
  EXPECT_EQ(remap_message_flags("SF,X=1", &t, &t).flags, "FS,X=1");
}

}  // namespace
// mbox: what is an index (copied before the folder files) and what is mail.
TEST(MboxIndexPath, ImapDirectoriesAndDovecotFilesAreIndexesFolderFilesAreNot) {
  EXPECT_TRUE(is_mbox_index_path("mail/.imap/INBOX/dovecot.index.log"));
  EXPECT_TRUE(is_mbox_index_path(".imap/dovecot.list.index"));
  EXPECT_TRUE(is_mbox_index_path("mail/dovecot.index.cache"));
  EXPECT_FALSE(is_mbox_index_path("mail/inbox"));
  EXPECT_FALSE(is_mbox_index_path("mail/Archive/2024"));
  EXPECT_FALSE(is_mbox_index_path("mail/.subscriptions"));
  EXPECT_FALSE(is_mbox_index_path("mail/x.imap/y"));
}

}  // namespace mailshard
