// Courier -> Dovecot conversion as a pure function: the files it writes, the
// names it changes, what a client would see, and the one-line refusals of
// bad input.
#include "movers/courier_to_dovecot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailshard {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

const std::string kUser = "alice@example.org";

// INBOX: four messages Courier knows (one expunged since), one in cur/ it
// has not numbered yet, one in new/; keywords in :list and in updates.
CourierMailbox sample() {
  CourierMailbox m;
  m.maildir = "Maildir";
  CourierFolder inbox;
  inbox.dir = "";
  inbox.uiddb =
      "1 1700000000 12\n"
      "3 1700000001.M1P1.h,S=100\n"
      "5 1700000002.M2P1.h,S=200\n"
      "7 1700000003.M3P1.h,S=300\n"
      "9 1699999999.M0P1.h,S=50\n";  // expunged: no file
  inbox.cur = {"1700000001.M1P1.h,S=100:2,S", "1700000002.M2P1.h,S=200:2,FS", "1700000003.M3P1.h,S=300:2,",
               "1700000004.M4P1.h,S=400:2,S"};
  inbox.new_ = {"1700000005.M5P1.h,S=500"};
  inbox.keyword_files[":list"] =
      "$Label1\n"
      "Work\n"
      "$Junk\n"
      "\n"
      "1700000001.M1P1.h,S=100:0 1\n"
      "1700000003.M3P1.h,S=300:2\n";
  // Updates: message 3 loses its keywords; message 2 gets "Later" (.2 beats .1).
  inbox.keyword_files["1700000003.M3P1.h,S=300"] = "";
  inbox.keyword_files[".1.1700000002.M2P1.h,S=200"] = "Work\n";
  inbox.keyword_files[".2.1700000002.M2P1.h,S=200"] = "Later\n";
  m.folders.push_back(inbox);

  CourierFolder drafts;
  drafts.dir = ".Entwürfe";
  drafts.uiddb = "1 1700000100 3\n1 1700000010.M9P1.h:2,D\n2 1700000011.M9P2.h\n";
  drafts.cur = {"1700000010.M9P1.h:2,D", "1700000011.M9P2.h:2,"};
  m.folders.push_back(drafts);

  CourierFolder sub;
  sub.dir = ".Lists.A&B";  // Courier 5: literal '&' in a UTF-8 name
  m.folders.push_back(sub);

  m.subscribed = "INBOX\nINBOX.Entwürfe\nINBOX.Lists.A&B\nshared.announce\n";
  return m;
}

TEST(CourierToDovecot, WritesUidlistKeywordsSubscriptionsAndRenames) {
  auto r = convert_courier_to_dovecot(kUser, sample());
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->folders.size(), 3u);

  const DovecotFolder& inbox = r->folders[0];
  EXPECT_EQ(inbox.src_dir, "");
  EXPECT_EQ(inbox.dst_dir, "");
  // Same UIDVALIDITY, UIDs and next UID; the expunged line is dropped; the
  // unnumbered messages are left for Dovecot to number from 12 on, as Courier would.
  EXPECT_EQ(*inbox.uidlist,
            "3 V1700000000 N12\n"
            "3 :1700000001.M1P1.h,S=100:2,Sab\n"
            "5 :1700000002.M2P1.h,S=200:2,FSc\n"
            "7 :1700000003.M3P1.h,S=300:2,\n");
  // Letters in :list order for keywords in use ($Junk's only message lost it),
  // then keywords only the updates name.
  EXPECT_EQ(*inbox.keywords, "0 $Label1\n1 Work\n2 Later\n");
  EXPECT_THAT(inbox.renames, ElementsAre(Pair("cur/1700000001.M1P1.h,S=100:2,S", "cur/1700000001.M1P1.h,S=100:2,Sab"),
                                         Pair("cur/1700000002.M2P1.h,S=200:2,FS", "cur/1700000002.M2P1.h,S=200:2,FSc")));

  const DovecotFolder& drafts = r->folders[1];
  EXPECT_EQ(drafts.src_dir, ".Entwürfe");
  EXPECT_EQ(drafts.dst_dir, ".Entw&APw-rfe");
  EXPECT_EQ(*drafts.uidlist, "3 V1700000100 N3\n1 :1700000010.M9P1.h:2,D\n2 :1700000011.M9P2.h:2,\n");
  EXPECT_FALSE(drafts.keywords.has_value());
  EXPECT_TRUE(drafts.renames.empty());

  const DovecotFolder& lists = r->folders[2];
  EXPECT_EQ(lists.dst_dir, ".Lists.A&-B");
  EXPECT_FALSE(lists.uidlist.has_value()) << "no courierimapuiddb: Dovecot numbers the folder itself";

  EXPECT_EQ(*r->subscriptions, "V\t2\n\nEntw&APw-rfe\nINBOX\nLists\tA&-B\n");
  EXPECT_THAT(r->left_out, ElementsAre("shared.announce"));
}

TEST(CourierToDovecot, WhatDovecotWillSeeIsWhatCourierShowed) {
  auto in = sample();
  auto r = convert_courier_to_dovecot(kUser, in);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const DovecotFolder& inbox = r->folders[0];
  EXPECT_EQ(inbox.view.uidvalidity, 1700000000);
  EXPECT_EQ(inbox.view.next_uid, 12);
  EXPECT_THAT(inbox.view.uids, ElementsAre(Pair(3, "1700000001.M1P1.h,S=100"), Pair(5, "1700000002.M2P1.h,S=200"),
                                           Pair(7, "1700000003.M3P1.h,S=300")));
  EXPECT_EQ(inbox.view.keywords.size(), 2u);
  EXPECT_EQ(inbox.view.keywords.at("1700000002.M2P1.h,S=200"), std::set<std::string>{"Later"});

  // Read back the way verification reads the destination: the names after the renames.
  std::vector<std::string> cur;
  for (const auto& n : in.folders[0].cur) {
    std::string name = "cur/" + n;
    for (const auto& [from, to] : inbox.renames)
      if (from == name) name = to;
    cur.push_back(name.substr(4));
  }
  auto seen = dovecot_folder_view(kUser, "Maildir", inbox.uidlist, inbox.keywords, cur, in.folders[0].new_);
  ASSERT_TRUE(seen.ok()) << seen.error().message();
  EXPECT_TRUE(compare_folder_views(inbox.view, *seen).empty());
  EXPECT_EQ(inbox.view, *seen);

  // And the comparison notices what a careless copy does.
  auto plain = dovecot_folder_view(kUser, "Maildir", std::string("3 V1800000000 N5\n1 :1700000001.M1P1.h,S=100\n"),
                                   std::nullopt, in.folders[0].cur, in.folders[0].new_);
  ASSERT_TRUE(plain.ok());
  EXPECT_THAT(compare_folder_views(inbox.view, *plain, 3),
              ElementsAre("UIDVALIDITY 1700000000 became 1800000000", "next UID 12 became 5",
                          "UID 3 (1700000001.M1P1.h,S=100) is missing"));
}

TEST(CourierToDovecot, AKeywordOnAMessageStillInNewMovesItToCur) {
  CourierMailbox m;
  m.maildir = "Maildir";
  CourierFolder f;
  f.uiddb = "1 42 2\n1 100.M1.h\n";
  f.new_ = {"100.M1.h"};
  f.keyword_files["100.M1.h"] = "$Important\n";
  m.folders.push_back(f);
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_THAT(r->folders[0].renames, ElementsAre(Pair("new/100.M1.h", "cur/100.M1.h:2,a")));
  EXPECT_EQ(*r->folders[0].uidlist, "3 V42 N2\n1 :100.M1.h:2,a\n");
}

// Lowercase letters in a Courier file name's flags mean nothing to Courier
// (another program put them there); Dovecot would read them as keywords. They
// go, also from a message without keywords, and from one with its own.
TEST(CourierToDovecot, StrayLowercaseFlagLettersAreDropped) {
  CourierMailbox m;
  m.maildir = "Maildir";
  CourierFolder f;
  f.uiddb = "1 42 4\n1 100.M1.h\n2 101.M2.h\n3 102.M3.h\n";
  f.cur = {"100.M1.h:2,Sab", "101.M2.h:2,Fz", "102.M3.h:2,S"};
  f.keyword_files["101.M2.h"] = "$Important\n";
  m.folders.push_back(f);
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_THAT(r->folders[0].renames,
              ElementsAre(Pair("cur/100.M1.h:2,Sab", "cur/100.M1.h:2,S"), Pair("cur/101.M2.h:2,Fz", "cur/101.M2.h:2,Fa")));
  EXPECT_EQ(*r->folders[0].uidlist, "3 V42 N4\n1 :100.M1.h:2,S\n2 :101.M2.h:2,Fa\n3 :102.M3.h:2,S\n");
  // What Dovecot then shows is what Courier showed: $Important on message 2 only.
  auto seen = dovecot_folder_view(kUser, "Maildir", r->folders[0].uidlist, r->folders[0].keywords,
                                  {"100.M1.h:2,S", "101.M2.h:2,Fa", "102.M3.h:2,S"}, {});
  ASSERT_TRUE(seen.ok()) << seen.error().message();
  EXPECT_TRUE(compare_folder_views(r->folders[0].view, *seen).empty());
}

TEST(CourierToDovecot, ModifiedUtf7) {
  EXPECT_EQ(*utf8_to_mutf7("Entwürfe"), "Entw&APw-rfe");
  EXPECT_EQ(*utf8_to_mutf7("A&B"), "A&-B");
  EXPECT_EQ(*utf8_to_mutf7("日本語"), "&ZeVnLIqe-");
  EXPECT_EQ(*utf8_to_mutf7("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");  // RFC 3501's example
  EXPECT_EQ(*utf8_to_mutf7("😀"), "&2D3eAA-");  // outside the BMP: a surrogate pair
  for (const char* s : {"Entwürfe", "A&B", "日本語", "😀 x", "plain", "Ünïcödé & more"})
    EXPECT_EQ(*mutf7_to_utf8(*utf8_to_mutf7(s)), s) << s;
  EXPECT_FALSE(utf8_to_mutf7("bad\xff").ok());
  EXPECT_FALSE(utf8_to_mutf7("\xc3").ok());          // truncated sequence
  EXPECT_FALSE(utf8_to_mutf7("\xc0\xaf").ok());      // overlong '/'
  EXPECT_FALSE(utf8_to_mutf7("\xed\xa0\x80").ok());  // a surrogate
  EXPECT_FALSE(mutf7_to_utf8("&AGE-").ok()) << "ASCII must stand for itself";
  EXPECT_FALSE(mutf7_to_utf8("&ZeVn").ok()) << "unterminated";
}

TEST(CourierToDovecot, SubscriptionNamesReadBackFromBothSides) {
  auto r = convert_courier_to_dovecot(kUser, sample());
  ASSERT_TRUE(r.ok());
  auto dovecot = dovecot_subscription_names(*r->subscriptions);
  ASSERT_TRUE(dovecot.ok()) << dovecot.error().message();
  EXPECT_THAT(*dovecot, ElementsAre("Entwürfe", "INBOX", "Lists.A&B"));
  EXPECT_EQ(*dovecot, courier_subscription_names(*sample().subscribed));
}

// ---------------------------------------------------------------------------
// Bad input: one line naming the user and the file.

std::string error_of(const CourierMailbox& m) {
  auto r = convert_courier_to_dovecot(kUser, m);
  return r.ok() ? std::string("(converted)") : r.error().message();
}

TEST(CourierToDovecotBadInput, TruncatedUiddb) {
  auto m = sample();
  m.folders[1].uiddb = "1 1700000100 3\n1 1700000010.M9P1.h:2,D\n2 1700000011.M9";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/.Entw\\xc3\\xbcrfe/courierimapuiddb: truncated (the last line "
                         "has no end)");
  m.folders[1].uiddb = "";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/.Entw\\xc3\\xbcrfe/courierimapuiddb: truncated (empty, no "
                         "header line)");
  m.folders[0].uiddb = "1 1700000000\n";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/courierimapuiddb: malformed header '1 1700000000' (want "
                         "'<version> <uidvalidity> <nextuid>')");
}

TEST(CourierToDovecotBadInput, DuplicateUid) {
  auto m = sample();
  m.folders[0].uiddb = "1 1700000000 12\n3 1700000001.M1P1.h,S=100\n3 1700000002.M2P1.h,S=200\n";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/courierimapuiddb: line 3: UID 3 appears twice");
  m.folders[0].uiddb = "1 1700000000 12\n3 1700000001.M1P1.h,S=100\n4 1700000001.M1P1.h,S=100\n";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/courierimapuiddb: line 3: message 1700000001.M1P1.h,S=100 "
                         "appears twice");
  m.folders[0].uiddb = "1 1700000000 12\n12 1700000001.M1P1.h,S=100\n";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/courierimapuiddb: line 2: UID 12 is not between 1 and the "
                         "next UID 12");
  m.folders[0].uiddb = "1 1700000000 12\nseven 1700000001.M1P1.h,S=100\n";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/courierimapuiddb: line 2: malformed entry 'seven "
                         "1700000001.M1P1.h,S=100' (want '<uid> <file name>')");
}

// Courier-IMAP leaves keyword entries of expunged messages behind (in :list
// and as update files) until it next rewrites the list: they are dropped, and
// the messages present keep theirs.
TEST(CourierToDovecot, KeywordEntriesOfExpungedMessagesAreDropped) {
  auto clean = convert_courier_to_dovecot(kUser, sample());
  ASSERT_TRUE(clean.ok()) << clean.error().message();
  auto m = sample();
  m.folders[0].keyword_files[":list"] += "1600000000.Mgone.h:0\n";
  m.folders[0].keyword_files[".4.1600000000.Mgone.h"] = "Work\n";
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->folders[0].view, clean->folders[0].view);
  EXPECT_EQ(r->folders[0].keywords, clean->folders[0].keywords);
  EXPECT_EQ(r->folders[0].renames, clean->folders[0].renames);
  EXPECT_EQ(r->folders[0].view.keywords.count("1600000000.Mgone.h"), 0u);
}

TEST(CourierToDovecotBadInput, KeywordIndexOutOfRange) {
  auto m = sample();
  m.folders[0].keyword_files[":list"] = "Work\n\n1700000001.M1P1.h,S=100:3\n";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/courierimapkeywords/:list: line 3: keyword index '3' is not "
                         "among the 1 names");
}

TEST(CourierToDovecotBadInput, FolderNameThatIsNotUtf8) {
  auto m = sample();
  m.folders[2].dir = ".Lists.Caf\xe9";  // Latin-1, not UTF-8
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/.Lists.Caf\\xe9: folder name '.Lists.Caf\\xe9' is not valid "
                         "UTF-8");
}

TEST(CourierToDovecotBadInput, MoreThan26KeywordsInUseAreRefusedNotLost) {
  CourierMailbox m;
  m.maildir = "Maildir";
  CourierFolder f;
  f.dir = ".Tagged";
  std::string list;
  for (int i = 0; i < 27; ++i) {
    f.cur.push_back("1700000" + std::to_string(100 + i) + ".M.h:2,");
    list += "kw" + std::to_string(i) + "\n";
  }
  list += "\n";
  for (int i = 0; i < 27; ++i) list += "1700000" + std::to_string(100 + i) + ".M.h:" + std::to_string(i) + "\n";
  f.keyword_files[":list"] = list;
  m.folders.push_back(f);
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(r.error().message(), "user alice@example.org: Maildir/.Tagged/courierimapkeywords: 27 keywords are in use "
                                 "in this folder; Dovecot Maildir keeps at most 26 (as file name letters a-z), so the "
                                 "rest would be lost; not converting");
}

TEST(CourierToDovecot, TwentySixKeywordsFit) {
  CourierMailbox m;
  CourierFolder f;
  std::string names, lines;
  for (int i = 0; i < 26; ++i) {
    f.cur.push_back(std::to_string(100 + i) + ".M.h:2,S");
    names += "kw" + std::to_string(i) + "\n";
    lines += std::to_string(100 + i) + ".M.h:" + std::to_string(i) + "\n";
  }
  // A 27th name that no message uses does not count.
  f.keyword_files[":list"] = names + "unused\n\n" + lines;
  m.folders.push_back(f);
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->folders[0].renames.back().second, "cur/125.M.h:2,Sz");
  EXPECT_EQ(r->folders[0].keywords->substr(0, 6), "0 kw0\n");
  EXPECT_EQ(r->folders[0].keywords->find("unused"), std::string::npos);
}

}  // namespace
}  // namespace mailshard
