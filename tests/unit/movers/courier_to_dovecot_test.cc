// Courier -> Dovecot conversion as a pure function: the files it writes, the
// names it changes, what a client would see, and the one-line refusals of
// bad input.
#include "movers/courier_to_dovecot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailshard {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
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

// Courier's ACLs are not converted: folders that share anything are named,
// with whom; the owner's and administrators' default rights are no share.
TEST(CourierToDovecot, NamesTheFoldersWhoseSharesTheMoveEnds) {
  auto in = sample();
  in.folders[0].acl = "owner aceilrstwx\nadministrators aceilrstwx\n";
  in.folders[1].acl = "owner aceilrstwx\nadministrators aceilrstwx\nuser=bob@example.org lr\n-user=eve w\nanyone l";
  auto r = convert_courier_to_dovecot(kUser, in);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_THAT(r->acls_left_out, ElementsAre("INBOX.Entwürfe (bob@example.org lr, -eve w, anyone l)"));

  in.folders[1].acl.reset();
  r = convert_courier_to_dovecot(kUser, in);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->acls_left_out.empty());
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

// The destination's LAYOUT= and UTF-8 (Dovecot's mailbox-list drivers
// "Maildir++" and "fs"; the UTF-8 flag keeps levels as UTF-8 on disk and in
// the subscriptions file).
TEST(CourierToDovecotLayout, FolderDirectoriesFollowTheDestinationsLayout) {
  const DovecotLayout maildirpp, fs{true, false}, utf8{false, true}, fs_utf8{true, true};
  EXPECT_EQ(*dovecot_folder_dir(".Entwürfe.2024", maildirpp), ".Entw&APw-rfe.2024");
  EXPECT_EQ(*dovecot_folder_dir(".Entwürfe.2024", fs), "Entw&APw-rfe/2024");
  EXPECT_EQ(*dovecot_folder_dir(".Entwürfe.2024", utf8), ".Entwürfe.2024");
  EXPECT_EQ(*dovecot_folder_dir(".Entwürfe.2024", fs_utf8), "Entwürfe/2024");
  EXPECT_EQ(*dovecot_folder_dir(".Lists.A&B", fs), "Lists/A&-B");
  EXPECT_EQ(*dovecot_folder_dir(".Lists.dovecot", fs), "Lists/dovecot") << "no file of a folder has that name";
  EXPECT_EQ(*dovecot_folder_dir(".courier.x", fs), "courier/x");
  EXPECT_EQ(*dovecot_folder_dir("", fs), "");
  EXPECT_FALSE(dovecot_folder_dir(".Caf\xe9", fs_utf8).ok()) << "UTF-8 is still checked";
  EXPECT_EQ(*dovecot_folder_dir(".a\tb", maildirpp), ".a&AAk-b") << "modified UTF-7 encodes a tab";
  EXPECT_FALSE(dovecot_folder_dir(".a\tb", utf8).ok()) << "UTF-8 names would carry it raw";
  // In LAYOUT=fs a level sits beside the folder's own cur/, new/, tmp/ and files.
  for (const char* bad : {".cur", ".A.new", ".A.tmp", ".subscriptions", ".maildirsize", ".dovecot-uidlist",
                          ".A.courierimapkeywords", ".dovecot-uidvalidity", ".courierimaphieracl"}) {
    auto r = dovecot_folder_dir(bad, fs);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported) << bad;
    EXPECT_THAT(r.error().message(), HasSubstr("LAYOUT=fs cannot tell")) << bad;
    EXPECT_TRUE(dovecot_folder_dir(bad, maildirpp).ok()) << bad << ": Maildir++ keeps it behind a '.'";
  }
}

TEST(CourierToDovecotLayout, ConversionNamesFoldersAndSubscriptionsByTheLayout) {
  auto fs = convert_courier_to_dovecot(kUser, sample(), DovecotLayout{true, false});
  ASSERT_TRUE(fs.ok()) << fs.error().message();
  std::vector<std::string> dirs;
  for (const auto& f : fs->folders) dirs.push_back(f.dst_dir);
  EXPECT_THAT(dirs, ElementsAre("", "Entw&APw-rfe", "Lists/A&-B"));
  EXPECT_EQ(fs->layout, (DovecotLayout{true, false}));
  // The subscriptions file is the same in both layouts: levels split by a tab.
  auto pp = convert_courier_to_dovecot(kUser, sample());
  ASSERT_TRUE(pp.ok());
  EXPECT_EQ(*fs->subscriptions, *pp->subscriptions);
  // With UTF-8, the names stay UTF-8 there too, and read back as Courier's.
  auto utf8 = convert_courier_to_dovecot(kUser, sample(), DovecotLayout{true, true});
  ASSERT_TRUE(utf8.ok()) << utf8.error().message();
  EXPECT_EQ(*utf8->subscriptions, "V\t2\n\nEntwürfe\nINBOX\nLists\tA&B\n");
  auto names = dovecot_subscription_names(*utf8->subscriptions, utf8->layout);
  ASSERT_TRUE(names.ok()) << names.error().message();
  EXPECT_EQ(*names, courier_subscription_names(*sample().subscribed));
  // Everything but the names is the same conversion.
  for (size_t i = 0; i < pp->folders.size(); ++i) {
    EXPECT_EQ(fs->folders[i].uidlist, pp->folders[i].uidlist);
    EXPECT_EQ(fs->folders[i].renames, pp->folders[i].renames);
    EXPECT_EQ(fs->folders[i].view, pp->folders[i].view);
  }
}

TEST(CourierToDovecotLayout, ADirectoryThatIsNoFolderIsRefusedForLayoutFsOnly) {
  auto m = sample();
  m.other_dirs = {"shared-folders"};
  auto fs = convert_courier_to_dovecot(kUser, m, DovecotLayout{true, false});
  ASSERT_FALSE(fs.ok());
  EXPECT_EQ(fs.error().message(),
            "user alice@example.org: Maildir/shared-folders: is a directory but no folder; Dovecot's LAYOUT=fs would "
            "list it as a folder (move it out of the Maildir, or use Dovecot's Maildir++ layout)");
  EXPECT_TRUE(convert_courier_to_dovecot(kUser, m).ok()) << "Maildir++ lists only '.' directories";
  auto level = sample();
  level.folders[2].dir = ".Lists.new";
  auto r = convert_courier_to_dovecot(kUser, level, DovecotLayout{true, false});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("user alice@example.org: Maildir/.Lists.new: folder '.Lists.new' has a "
                                             "level 'new'"));
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

// Found by the courier_files fuzzer: a file name starting with ':' has no base
// name, and the uidlist written for it read back as another message.
TEST(CourierToDovecotBadInput, AMessageNameWithoutABaseIsRefused) {
  CourierMailbox m;
  m.maildir = "Maildir";
  CourierFolder f;
  f.uiddb = "1 42 4\n3 :1.M1.h\n";
  f.cur = {":1.M1.h:2,S"};
  m.folders.push_back(f);
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_THAT(r.error().message(), ::testing::HasSubstr("Maildir/cur/:1.M1.h:2,S"));
  EXPECT_THAT(r.error().message(), ::testing::HasSubstr("has no base name"));
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


// ---------------------------------------------------------------------------
// POP3: courierpop3dsizelist -> P (UIDL) and O (order) fields of the INBOX's
// dovecot-uidlist.

// The INBOX's view after converting `sample()` with this sizelist.
Result<DovecotConversion> with_sizelist(const std::string& sizelist) {
  auto m = sample();
  m.pop3_sizelist = sizelist;
  return convert_courier_to_dovecot(kUser, m);
}

TEST(CourierToDovecotPop3, Version3HeaderAndLinesGiveUidUidvalidityUidls) {
  auto r = with_sizelist(
      "/3 20 1650000000\n"
      "1700000003.M3P1.h,S=300:2,S 300 6:1650000000:1\n"
      "1700000001.M1P1.h,S=100 100 4:1650000000:0\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  // POP3 order is the sizelist's (M3 first), IMAP UIDs stay Courier-IMAP's.
  EXPECT_EQ(*r->folders[0].uidlist,
            "3 V1700000000 N12\n"
            "3 PUID4-1650000000 O2 :1700000001.M1P1.h,S=100:2,Sab\n"
            "5 :1700000002.M2P1.h,S=200:2,FSc\n"
            "7 PUID6-1650000000 O1 :1700000003.M3P1.h,S=300:2,\n");
}

TEST(CourierToDovecotPop3, Version2AndVersion1Lines) {
  auto v2 = with_sizelist("/2 20 1650000000\n1700000002.M2P1.h,S=200:2,FS 200 9:1650000000\n");
  ASSERT_TRUE(v2.ok()) << v2.error().message();
  EXPECT_THAT(v2->folders[0].view.pop3_uidls, ElementsAre(Pair(5, "UID9-1650000000")));
  EXPECT_THAT(v2->folders[0].view.pop3_order, ElementsAre(Pair(5, 1)));
  // uidv 0 in a line: "UID<uid>".
  auto v1 = with_sizelist("/1 20\n1700000002.M2P1.h,S=200 200 9\n1700000003.M3P1.h,S=300 300 10:0\n");
  ASSERT_TRUE(v1.ok()) << v1.error().message();
  EXPECT_THAT(v1->folders[0].view.pop3_uidls, ElementsAre(Pair(5, "UID9"), Pair(7, "UID10")));
  EXPECT_THAT(v1->folders[0].view.pop3_order, ElementsAre(Pair(5, 1), Pair(7, 2)));
}

TEST(CourierToDovecotPop3, Version0HasNoHeaderAndUsesTheBaseName) {
  auto r = with_sizelist("1700000001.M1P1.h,S=100:2,S 100\n1700000002.M2P1.h,S=200 200\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_THAT(r->folders[0].view.pop3_uidls,
              ElementsAre(Pair(3, "1700000001.M1P1.h,S=100"), Pair(5, "1700000002.M2P1.h,S=200")));
  EXPECT_THAT(r->folders[0].view.pop3_order, ElementsAre(Pair(3, 1), Pair(5, 2)));
}

TEST(CourierToDovecotPop3, NameUidlsEscapeWhatPop3CannotCarryAsPlusHex) {
  CourierMailbox m;
  CourierFolder inbox;
  const std::string odd = "17.M1P1.a+b'c\"d\x7f\xc3\xa9\x01";
  inbox.uiddb = "1 1700000000 2\n1 " + odd + "\n";
  inbox.cur = {odd + ":2,S"};
  m.folders.push_back(inbox);
  m.pop3_sizelist = odd + ":2,S 10\n";
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_THAT(r->folders[0].view.pop3_uidls, ElementsAre(Pair(1, "17.M1P1.a+2Bb+27c+22d+7F+C3+A9+01")));
}

// (a) an entry of a message expunged since is skipped; the others keep their
// line numbers as order. A listed message Courier-IMAP never numbered gets
// the next UID, in POP3 order. (c) an unlisted message gets no P field.
TEST(CourierToDovecotPop3, ExpungedSkippedUnnumberedNumberedUnlistedLeftAlone) {
  auto r = with_sizelist(
      "/3 20 1650000000\n"
      "1699999999.M0P1.h,S=50 50 1:1650000000:1\n"  // expunged
      "1700000005.M5P1.h,S=500 500 7:1650000000:1\n"  // in new/, no IMAP UID
      "1700000004.M4P1.h,S=400:2,S 400 6:1650000000:1\n"  // in cur/, no IMAP UID
      "1700000001.M1P1.h,S=100:2,S 100 2:1650000000:1\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r->folders[0].uidlist,
            "3 V1700000000 N14\n"
            "3 PUID2-1650000000 O4 :1700000001.M1P1.h,S=100:2,Sab\n"
            "5 :1700000002.M2P1.h,S=200:2,FSc\n"
            "7 :1700000003.M3P1.h,S=300:2,\n"
            "12 PUID7-1650000000 O2 :1700000005.M5P1.h,S=500\n"
            "13 PUID6-1650000000 O3 :1700000004.M4P1.h,S=400:2,S\n");
}

// Without a courierimapuiddb the INBOX gets a uidlist only to carry the
// UIDLs: the sizelist's UIDVALIDITY, the listed messages numbered from 1.
// With no UIDVALIDITY anywhere there is nothing to number by: refused.
TEST(CourierToDovecotPop3, NoUiddbUsesTheSizelistsUidvalidityOrIsRefused) {
  auto m = sample();
  m.folders[0].uiddb.reset();
  m.pop3_sizelist = "/2 5 1650000000\n1700000002.M2P1.h,S=200 200 3:1650000000\n";
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r->folders[0].uidlist, "3 V1650000000 N2\n1 PUID3-1650000000 O1 :1700000002.M2P1.h,S=200:2,FSc\n");
  m.pop3_sizelist = "/1 5\n1700000002.M2P1.h,S=200 200 3\n";
  EXPECT_EQ(error_of(m), "user alice@example.org: Maildir/courierpop3dsizelist: POP3 UIDLs but no courierimapuiddb and "
                         "no UIDVALIDITY in this file's header, so no UIDs to carry them; open the INBOX once with "
                         "Courier-IMAP (it writes courierimapuiddb), then move again");
  // Only expunged entries: nothing to carry, nothing refused, no uidlist.
  m.pop3_sizelist = "/1 5\n1699999999.M0P1.h,S=50 50 3\n";
  auto none = convert_courier_to_dovecot(kUser, m);
  ASSERT_TRUE(none.ok()) << none.error().message();
  EXPECT_FALSE(none->folders[0].uidlist.has_value());
}

TEST(CourierToDovecotPop3, OnlyTheInboxIsPop3s) {
  auto r = with_sizelist("/1 20\n1700000010.M9P1.h:2,D 10 3\n");  // a Drafts message: not POP3's
  ASSERT_TRUE(r.ok()) << r.error().message();
  for (const auto& f : r->folders) EXPECT_TRUE(f.view.pop3_uidls.empty()) << f.dst_dir;
}

TEST(CourierToDovecotPop3BadInput, BrokenSizelistsAreRefusedInOneLine) {
  auto m = sample();
  const std::string at = "user alice@example.org: Maildir/courierpop3dsizelist: ";
  m.pop3_sizelist = "/4 20 1650000000\n";
  EXPECT_EQ(error_of(m), at + "line 1: unknown header '/4 20 1650000000' (want '/3 <nextuid> <uidvalidity>', "
                              "'/2 ...' or '/1 <nextuid>')");
  m.pop3_sizelist = "/2 20\n";
  EXPECT_EQ(error_of(m), at + "line 1: unknown header '/2 20' (want '/3 <nextuid> <uidvalidity>', '/2 ...' or "
                              "'/1 <nextuid>')");
  m.pop3_sizelist = "/3 20 1650000000\n1700000001.M1P1.h,S=100 100 4:1650000000:12\n";
  EXPECT_EQ(error_of(m), at + "line 2: malformed entry '1700000001.M1P1.h,S=100 100 4:1650000000:12' (want "
                              "'<file name> <size> [<uid>[:<uidvalidity>[:<n>]]]')");
  m.pop3_sizelist = "1700000001.M1P1.h,S=100\n";
  EXPECT_EQ(error_of(m), at + "line 1: malformed entry '1700000001.M1P1.h,S=100' (want '<file name> <size> "
                              "[<uid>[:<uidvalidity>[:<n>]]]')");
  m.pop3_sizelist = "/1 20\n1700000001.M1P1.h,S=100 100 4\n1700000002.M2P1.h,S=200 2";
  EXPECT_EQ(error_of(m), at + "truncated (the last line has no end)");
  m.pop3_sizelist = "/1 20\n1700000001.M1P1.h,S=100 100 4\n1700000001.M1P1.h,S=100:2,S 100 5\n";
  EXPECT_EQ(error_of(m), at + "line 3: message 1700000001.M1P1.h,S=100 appears twice");
  m.pop3_sizelist = "/1 20\n1700000001.M1P1.h,S=100 100 4\n1700000002.M2P1.h,S=200 200 4\n";
  EXPECT_EQ(error_of(m), at + "line 3: UIDL UID4 appears twice");
  // Empty: a version 0 list of no messages.
  m.pop3_sizelist = "";
  EXPECT_EQ(error_of(m), "(converted)");
}

// Verification reads the P and O fields back and names a wrong one.
TEST(CourierToDovecotPop3, VerificationReadsBackAndCatchesAWrongUidl) {
  auto in = sample();
  in.pop3_sizelist = "/3 20 1650000000\n1700000001.M1P1.h,S=100:2,S 100 4:1650000000:0\n";
  auto r = convert_courier_to_dovecot(kUser, in);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const DovecotFolder& inbox = r->folders[0];
  std::vector<std::string> cur = {"1700000001.M1P1.h,S=100:2,Sab", "1700000002.M2P1.h,S=200:2,FSc",
                                  "1700000003.M3P1.h,S=300:2,", "1700000004.M4P1.h,S=400:2,S"};
  auto seen = dovecot_folder_view(kUser, "Maildir", inbox.uidlist, inbox.keywords, cur, in.folders[0].new_);
  ASSERT_TRUE(seen.ok()) << seen.error().message();
  EXPECT_EQ(inbox.view, *seen);

  std::string wrong = *inbox.uidlist;
  wrong.replace(wrong.find("UID4-"), 5, "UID5-");
  wrong.replace(wrong.find(" O1 "), 4, " O2 ");
  auto bad = dovecot_folder_view(kUser, "Maildir", wrong, inbox.keywords, cur, in.folders[0].new_);
  ASSERT_TRUE(bad.ok()) << bad.error().message();
  EXPECT_THAT(compare_folder_views(inbox.view, *bad),
              ElementsAre("UID 3: POP3 UIDL UID4-1650000000 became UID5-1650000000", "UID 3: POP3 order 1 became 2"));
  // Dropped, or added where Courier had none.
  std::string plain = "3 V1700000000 N12\n3 :1700000001.M1P1.h,S=100:2,Sab\n5 Px :1700000002.M2P1.h,S=200:2,FSc\n"
                      "7 :1700000003.M3P1.h,S=300:2,\n";
  auto lost = dovecot_folder_view(kUser, "Maildir", plain, inbox.keywords, cur, in.folders[0].new_);
  ASSERT_TRUE(lost.ok()) << lost.error().message();
  EXPECT_THAT(compare_folder_views(inbox.view, *lost),
              ElementsAre("UID 3: POP3 UIDL UID4-1650000000 became none", "UID 5: POP3 UIDL none became x",
                          "UID 3: POP3 order 1 became none"));
}


// Short message names (a string kept inside its object, not on the heap):
// the uidlist must name each UID's own file after the renames are sorted.
// The fuzzer found a UID written with another message's name.
TEST(CourierToDovecot, ShortNamesKeepTheirOwnUidsWhenTheRenamesAreSorted) {
  CourierMailbox m;
  m.maildir = "Maildir";
  CourierFolder inbox;
  inbox.uiddb = std::string("1 1 7\n");
  inbox.cur = {"\xcf:2,a", "0:2,a", "b1:2,Sz", "a1:2,y"};
  m.pop3_sizelist = std::string("0 0\nb1 0\n");
  m.folders.push_back(inbox);
  auto r = convert_courier_to_dovecot(kUser, m);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const DovecotFolder& d = r->folders[0];
  ASSERT_TRUE(d.uidlist);
  EXPECT_THAT(*d.uidlist, HasSubstr(" :0:2,\n"));
  EXPECT_THAT(*d.uidlist, HasSubstr(" :b1:2,S\n"));
  std::vector<std::string> cur;
  for (std::string n : inbox.cur) {
    for (const auto& [from, to] : d.renames)
      if (from == "cur/" + n) n = to.substr(4);
    cur.push_back(n);
  }
  auto seen = dovecot_folder_view(kUser, "Maildir", d.uidlist, d.keywords, cur, {});
  ASSERT_TRUE(seen.ok()) << seen.error().message();
  EXPECT_THAT(compare_folder_views(d.view, *seen), ::testing::IsEmpty());
  EXPECT_EQ(d.view.uids.size(), 2u);
}

}  // namespace
}  // namespace mailshard
