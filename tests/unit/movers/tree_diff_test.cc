// tree_diff: pure diff of a readdir listing against the state. Maildir names
// are matched by base name: flag change = rename, unmatched source = new,
// unmatched state = expunged. Plus the Maildir file classes.
#include <gtest/gtest.h>

#include "movers/maildir_rules.h"
#include "movers/sync_state.h"
#include "movers/tree_diff.h"

namespace mailshard {
namespace {

DirListing dir(std::string path, std::vector<std::pair<std::string, EntryType>> entries) {
  DirListing d;
  d.path = std::move(path);
  d.attrs.type = EntryType::kDir;
  d.attrs.mode = 0700;
  for (auto& [n, t] : entries) d.entries.push_back({n, t});
  return d;
}

constexpr auto F = EntryType::kFile;
constexpr auto D = EntryType::kDir;
constexpr auto L = EntryType::kSymlink;

// The state as left by a pass that copied `listing` (no content details).
SyncState state_of(const TreeListing& listing) {
  SyncState s;
  for (const auto& d : listing) {
    DirState& ds = s.dirs[d.path];
    ds.attrs = d.attrs;
    for (const auto& e : d.entries)
      if (e.type != EntryType::kDir) ds.entries[e.name].type = e.type;
  }
  return s;
}

TreeListing maildir(std::vector<std::pair<std::string, EntryType>> cur, std::vector<std::pair<std::string, EntryType>> neu,
                    std::vector<std::pair<std::string, EntryType>> tmp = {}) {
  return {dir("", {{"Maildir", D}, {".dovecot.sieve", L}}),
          dir("Maildir", {{"cur", D}, {"new", D}, {"tmp", D}, {"dovecot-uidlist", F}, {"dovecot.index.cache", F}}),
          dir("Maildir/cur", std::move(cur)), dir("Maildir/new", std::move(neu)), dir("Maildir/tmp", std::move(tmp))};
}

TEST(TreeDiff, FlagChangesAreRenamesNewAndExpungedAreToldApart) {
  TreeListing before = maildir({{"1.a,S=5:2,S", F}, {"2.b,S=6:2,", F}, {"3.c,S=7:2,S", F}}, {{"4.d,S=8", F}});
  SyncState state = state_of(before);
  TreeListing after = maildir({{"1.a,S=5:2,FS", F}, {"2.b,S=6:2,", F}, {"4.d,S=8:2,S", F}}, {{"5.e,S=9", F}},
                              {{"6.f,S=1", F}});
  TreePlan p = diff_tree(after, state, nullptr, true);
  ASSERT_EQ(p.renames.size(), 2u);
  EXPECT_EQ(p.renames[0], std::make_pair(std::string("Maildir/cur/1.a,S=5:2,S"), std::string("Maildir/cur/1.a,S=5:2,FS")));
  EXPECT_EQ(p.renames[1], std::make_pair(std::string("Maildir/new/4.d,S=8"), std::string("Maildir/cur/4.d,S=8:2,S")));
  ASSERT_EQ(p.new_entries.size(), 1u);
  EXPECT_EQ(p.new_entries[0].path, "Maildir/new/5.e,S=9");
  EXPECT_EQ(p.new_entries[0].cls, FileClass::kMessage);
  ASSERT_EQ(p.deletes.size(), 1u);
  EXPECT_EQ(p.deletes[0].first, "Maildir/cur/3.c,S=7:2,S");
  EXPECT_EQ(p.kept_files, (std::vector<std::string>{"Maildir/cur/2.b,S=6:2,"}));
  EXPECT_EQ(p.mutable_files.size(), 2u);  // uidlist and cache are always re-checked
  EXPECT_EQ(p.symlinks, (std::vector<std::string>{".dovecot.sieve"}));
  EXPECT_EQ(p.skipped, 1u);  // the delivery in progress in tmp/
  EXPECT_TRUE(p.mkdirs.empty());
}

TEST(TreeDiff, EmptyStateMakesEverythingNewParentsFirst) {
  TreeListing l = maildir({{"1.a:2,S", F}}, {});
  TreePlan p = diff_tree(l, SyncState{}, nullptr);
  ASSERT_EQ(p.mkdirs.size(), 5u);
  EXPECT_EQ(p.mkdirs[0].path, "");
  EXPECT_EQ(p.mkdirs[1].path, "Maildir");
  EXPECT_EQ(p.new_entries.size(), 4u);  // message, uidlist, cache, symlink
  EXPECT_TRUE(p.kept_files.empty());
}

TEST(TreeDiff, RemovedFolderAndTypeChanges) {
  TreeListing before = {dir("", {{"Maildir", D}, {"x", F}, {"y", D}}), dir("Maildir", {{".Old", D}}),
                        dir("Maildir/.Old", {{"cur", D}, {"new", D}}), dir("Maildir/.Old/cur", {{"1:2,S", F}}),
                        dir("Maildir/.Old/new", {}), dir("y", {{"inner", F}})};
  SyncState state = state_of(before);
  TreeListing after = {dir("", {{"Maildir", D}, {"x", D}, {"y", F}}), dir("Maildir", {}), dir("x", {})};
  TreePlan p = diff_tree(after, state, nullptr);
  // x: file -> directory, y: directory -> file: removed before creating.
  ASSERT_EQ(p.early_deletes.size(), 3u);
  EXPECT_EQ(p.early_deletes[0], std::make_pair(std::string("x"), F));
  EXPECT_EQ(p.early_deletes[1], std::make_pair(std::string("y/inner"), F));
  EXPECT_EQ(p.early_deletes[2], std::make_pair(std::string("y"), D));
  // The folder: its message, then its directories, deepest first.
  std::vector<std::pair<std::string, EntryType>> want = {
      {"Maildir/.Old/cur/1:2,S", F}, {"Maildir/.Old/new", D}, {"Maildir/.Old/cur", D}, {"Maildir/.Old", D}};
  EXPECT_EQ(p.deletes, want);
}

TEST(TreeDiff, DestinationExtrasAreAdoptedOrRemoved) {
  TreeListing l = maildir({{"1.a:2,S", F}}, {});
  DstExtras extras = {{"Maildir/cur/1.a:2,S", F}, {"Maildir/cur/9.z:2,S", F}};
  TreePlan p = diff_tree(l, SyncState{}, &extras);
  bool adopted = false;
  for (const auto& e : p.new_entries)
    if (e.path == "Maildir/cur/1.a:2,S") adopted = e.on_dst;
  EXPECT_TRUE(adopted);
  ASSERT_EQ(p.deletes.size(), 1u);
  EXPECT_EQ(p.deletes[0].first, "Maildir/cur/9.z:2,S");
}

// Two names with one base in a folder are matched by their full names and
// never paired by base: pairing could give one the other's content.
TEST(TreeDiff, DuplicateBaseNamesAreMatchedByFullNameOnly) {
  TreeListing l = maildir({{"1.M1.h:2,S", F}, {"1.M1.h:2,RS", F}}, {});
  SyncState state = state_of(l);
  TreePlan same = diff_tree(l, state, nullptr);
  EXPECT_TRUE(same.renames.empty());
  EXPECT_TRUE(same.new_entries.empty());
  EXPECT_TRUE(same.deletes.empty());
  // First pass: both are new.
  TreePlan first = diff_tree(l, SyncState{}, nullptr);
  int messages = 0;
  for (const auto& e : first.new_entries) messages += e.cls == FileClass::kMessage;
  EXPECT_EQ(messages, 2);
  // A flag change on one: which state name it was cannot be told by base.
  TreeListing changed = maildir({{"1.M1.h:2,S", F}, {"1.M1.h:2,RST", F}}, {});
  TreePlan p = diff_tree(changed, state, nullptr);
  EXPECT_TRUE(p.renames.empty());
  ASSERT_EQ(p.new_entries.size(), 1u);
  EXPECT_EQ(p.new_entries[0].path, "Maildir/cur/1.M1.h:2,RST");
  EXPECT_EQ(p.deletes, (std::vector<std::pair<std::string, EntryType>>{{"Maildir/cur/1.M1.h:2,RS", F}}));
  // Two state names left with one base and one source name: no rename either.
  TreeListing one = maildir({{"1.M1.h:2,T", F}}, {});
  TreePlan q = diff_tree(one, state, nullptr);
  EXPECT_TRUE(q.renames.empty());
  EXPECT_EQ(q.deletes.size(), 2u);
  ASSERT_EQ(q.new_entries.size(), 1u);
}

// A message that became a directory (and a stray file where a folder goes on
// the destination) is removed before the directory is made, and only then.
TEST(TreeDiff, TypeChangesInsideCurAndOnTheDestinationGoFirst) {
  TreeListing before = maildir({{"7.M7:2,S", F}}, {});
  SyncState state = state_of(before);
  TreeListing after = maildir({{"7.M7:2,S", D}}, {});
  after.push_back(dir("Maildir/cur/7.M7:2,S", {}));
  TreePlan p = diff_tree(after, state, nullptr);
  EXPECT_EQ(p.early_deletes, (std::vector<std::pair<std::string, EntryType>>{{"Maildir/cur/7.M7:2,S", F}}));
  EXPECT_TRUE(p.deletes.empty());
  ASSERT_EQ(p.mkdirs.size(), 1u);
  EXPECT_EQ(p.mkdirs[0].path, "Maildir/cur/7.M7:2,S");

  DstExtras extras = {{"Maildir", D}, {"Maildir/cur", F}, {"Maildir/new", L}, {"sieve", D}, {"sieve/x", F}};
  TreeListing home = maildir({}, {});
  home[0].entries.push_back({"sieve", F});
  TreePlan q = diff_tree(home, SyncState{}, &extras);
  EXPECT_EQ(q.early_deletes, (std::vector<std::pair<std::string, EntryType>>{
                                 {"Maildir/cur", F}, {"Maildir/new", L}, {"sieve/x", F}, {"sieve", D}}));
  EXPECT_TRUE(q.deletes.empty());
}

TEST(MaildirRules, ClassesAndBaseNames) {
  DirInfo cur = classify_dir("cur", true);
  DirInfo tmp = classify_dir("tmp", true);
  DirInfo plain = classify_dir("Maildir", false);
  EXPECT_EQ(classify_file(cur, "1.M2P3.host,S=4:2,FS"), FileClass::kMessage);
  EXPECT_EQ(classify_file(tmp, "1.M2P3.host"), FileClass::kSkip);
  EXPECT_EQ(classify_file(plain, "dovecot-uidlist.lock"), FileClass::kSkip);
  EXPECT_EQ(classify_file(plain, ".mailshard-tmp-0a1b2c3d-4"), FileClass::kSkip);
  EXPECT_EQ(classify_file(plain, "dovecot.index.log"), FileClass::kAppendLog);
  EXPECT_EQ(classify_file(plain, "dovecot.index.log.2"), FileClass::kAppendLog);
  EXPECT_EQ(classify_file(plain, "maildirsize"), FileClass::kAppendLog);
  EXPECT_EQ(classify_file(plain, "dovecot-uidlist"), FileClass::kAppendLog);
  EXPECT_EQ(classify_file(plain, "m.17"), FileClass::kAppendLog);
  EXPECT_EQ(classify_file(plain, "m.x"), FileClass::kRewritten);
  EXPECT_EQ(classify_file(plain, "dovecot.index.cache"), FileClass::kInPlace);
  EXPECT_EQ(classify_file(plain, "dovecot.index"), FileClass::kRewritten);
  EXPECT_EQ(classify_file(classify_dir("dbox-Mails", false), "u.12"), FileClass::kImmutable);
  // cur/ only counts inside a Maildir folder (a parent with cur/ and new/).
  EXPECT_EQ(classify_file(classify_dir("cur", false), "x"), FileClass::kRewritten);
  EXPECT_EQ(message_base("1.M2P3.host,S=4:2,FS"), "1.M2P3.host,S=4");
  EXPECT_EQ(message_base("1.M2P3.host,S=4"), "1.M2P3.host,S=4");
  EXPECT_EQ(signature_block_len("dovecot.index", 2 << 20), 512u);
  EXPECT_EQ(signature_block_len("dovecot-uidlist", 20000), 256u);
  EXPECT_EQ(signature_block_len("INBOX", 1 << 30), 0u);  // mbox: librsync's sqrt rule
  EXPECT_EQ(signature_block_len("dovecot.index", -5), 256u);  // a corrupt size: no NaN cast (UBSan)
  EXPECT_EQ(diff_block_size(40 << 20), 1024u);
  EXPECT_EQ(diff_block_size(1ll << 30), 16384u);
}

// The blob lists a directory's entries by name in byte order (bytes as
// unsigned, a prefix first), whatever order they were added in: names that
// share their first 8 bytes, shorter names, bytes above 0x7f.
TEST(SyncState, EntriesAreWrittenInNameOrder) {
  const std::vector<std::string> sorted = {"1",         "1700000000.M1", "1700000000.M1P2", "1700000000.M2",
                                           "17000000Z", "a",             "abcdefg",         "abcdefgh",
                                           "abcdefgh2", "abcdefghZ",     "\x7f",            "\xc3\xa9t\xc3\xa9",
                                           "\xff"};
  auto blob_of = [](const std::vector<std::string>& names, size_t buckets) {
    SyncState s;
    s.dirs["cur"].entries.reserve(buckets);
    for (const auto& n : names) s.dirs["cur"].entries[n].attrs.size = static_cast<int64_t>(n.size());
    return s.serialize();
  };
  std::vector<std::string> reversed(sorted.rbegin(), sorted.rend());
  std::string blob = blob_of(sorted, 1);
  EXPECT_EQ(blob_of(reversed, 1000), blob);
  // Each name is written as a u32 length and its bytes, in this order.
  size_t at = 0;
  for (const auto& n : sorted) {
    std::string rec = std::string(1, static_cast<char>(n.size())) + std::string(3, '\0') + n;
    size_t found = blob.find(rec, at);
    ASSERT_NE(found, std::string::npos) << n;
    at = found + rec.size();
  }
}

TEST(SyncState, RoundTripAndCorruptBlobs) {
  SyncState s = SyncState::fresh();
  s.passes = 3;
  s.dirs[""].attrs.mode = 0700;
  EntryState e;
  e.attrs.size = 42;
  e.attrs.mtime_ns = -7;
  e.has_hash = true;
  e.hash = hash_bytes("x");
  e.block_size = 4096;
  e.blocks = {hash_bytes("a"), hash_bytes("b")};
  s.dirs["Maildir"].entries["dovecot.index.cache"] = e;
  s.last_written.emplace_back("Maildir/dovecot.index.cache", e.hash);
  std::string blob = s.serialize();
  auto back = SyncState::deserialize(blob);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->serialize(), blob);
  EXPECT_EQ(back->dirs["Maildir"].entries["dovecot.index.cache"].blocks.size(), 2u);
  auto cut = SyncState::deserialize(blob.substr(0, blob.size() - 3));
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(cut.error().message(), "sync state: truncated payload");
  EXPECT_EQ(SyncState::deserialize("nonsense").error().message(), "sync state: bad magic");
  std::string newer = blob;
  newer[4] = 9;
  EXPECT_EQ(SyncState::deserialize(newer).error().message(),
            "sync state version 9 is not supported (this mailshard reads 1)");
}

}  // namespace
}  // namespace mailshard
