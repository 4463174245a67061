// The metadata transfer policy as a table: which method each kind of changed
// file gets in a warm and in a frozen pass (movers/transfer_policy.h).
#include <gtest/gtest.h>

#include "movers/transfer_policy.h"

namespace mailshard {
namespace {

TransferFacts facts(FileClass cls, std::string_view name, bool frozen, int64_t size, int64_t basis) {
  TransferFacts f;
  f.cls = cls;
  f.name = name;
  f.frozen = frozen;
  f.size = size;
  f.basis_size = basis;
  return f;
}

TransferFacts with_blocks(TransferFacts f) {
  f.state_block_size = diff_block_size(f.basis_size);
  f.state_blocks = static_cast<size_t>((f.basis_size + f.state_block_size - 1) / f.state_block_size);
  return f;
}

TEST(TransferPolicy, FixedLayoutFilesAreDovecotBinaryIndexesAndCaches) {
  EXPECT_TRUE(fixed_layout(FileClass::kRewritten, "dovecot.index"));
  EXPECT_TRUE(fixed_layout(FileClass::kRewritten, "dovecot.list.index"));
  EXPECT_TRUE(fixed_layout(FileClass::kRewritten, "dovecot.map.index"));
  EXPECT_TRUE(fixed_layout(FileClass::kInPlace, "dovecot.index.cache"));
  EXPECT_TRUE(fixed_layout(FileClass::kInPlace, "dovecot.list.index.cache"));
  // Shifting or append-only content: deltas and tails, never blocks.
  EXPECT_FALSE(fixed_layout(FileClass::kAppendLog, "dovecot.index.log"));
  EXPECT_FALSE(fixed_layout(FileClass::kAppendLog, "dovecot-uidlist"));
  EXPECT_FALSE(fixed_layout(FileClass::kRewritten, "dovecot-keywords"));
  EXPECT_FALSE(fixed_layout(FileClass::kRewritten, "INBOX"));  // an mbox folder
  EXPECT_FALSE(fixed_layout(FileClass::kRewritten, "dovecot.index.tmp"));
  EXPECT_FALSE(fixed_layout(FileClass::kMessage, "1.M1.h,S=5:2,S"));
}

TEST(TransferPolicy, BlockHashesAreKeptOnlyForFixedLayoutFiles) {
  EXPECT_EQ(block_hashes_for(FileClass::kRewritten, "dovecot.index", 700'000), 1024u);
  EXPECT_EQ(block_hashes_for(FileClass::kInPlace, "dovecot.index.cache", 200ll << 20), 4096u);  // <= 64k blocks
  EXPECT_EQ(block_hashes_for(FileClass::kAppendLog, "dovecot-uidlist", 4'000'000), 0u);
  EXPECT_EQ(block_hashes_for(FileClass::kRewritten, "mbox-folder", 1ll << 30), 0u);
}

TEST(TransferPolicy, AnAppendIsATailWhateverTheFile) {
  for (bool frozen : {false, true}) {
    for (auto [cls, name] : {std::pair{FileClass::kAppendLog, "dovecot.index.log"},
                             std::pair{FileClass::kRewritten, "dovecot.index"},
                             std::pair{FileClass::kInPlace, "dovecot.index.cache"}}) {
      TransferFacts f = with_blocks(facts(cls, name, frozen, 900'000, 800'000));
      f.appended = true;
      EXPECT_EQ(choose_transfer(f), TransferMethod::kTail) << name << " frozen=" << frozen;
    }
  }
}

// dovecot.index is rewritten through a temp file and rename(): under the
// freeze its changed blocks travel against the state's block hashes (only the
// source is read); a warm pass keeps the delta (records may have shifted).
TEST(TransferPolicy, IndexRewrittenViaRenameIsABlockDiffUnderTheFreezeAndADeltaWhenWarm) {
  TransferFacts f = with_blocks(facts(FileClass::kRewritten, "dovecot.index", false, 722'000, 721'848));
  EXPECT_EQ(choose_transfer(f), TransferMethod::kDelta);
  f.frozen = true;
  EXPECT_EQ(choose_transfer(f), TransferMethod::kBlocks);
  // Without block hashes in the state (a state from before they were kept): a delta.
  TransferFacts none = facts(FileClass::kRewritten, "dovecot.index", true, 722'000, 721'848);
  EXPECT_EQ(choose_transfer(none), TransferMethod::kDelta);
}

TEST(TransferPolicy, InPlaceCachesAreBlockDiffsInEveryPass) {
  for (bool frozen : {false, true}) {
    TransferFacts f = with_blocks(facts(FileClass::kInPlace, "dovecot.index.cache", frozen, 5'000'000, 5'000'000));
    EXPECT_EQ(choose_transfer(f), TransferMethod::kBlocks) << frozen;
  }
}

TEST(TransferPolicy, BlockHashesThatDoNotCoverTheDestinationsCopyAreNotUsed) {
  TransferFacts f = with_blocks(facts(FileClass::kRewritten, "dovecot.index", true, 722'000, 721'848));
  f.state_blocks -= 1;  // hashes of a shorter file: not the destination's copy
  EXPECT_EQ(choose_transfer(f), TransferMethod::kDelta);
  f = with_blocks(facts(FileClass::kInPlace, "dovecot.index.cache", true, 5000, 4000));
  f.basis_size = -1;  // no copy on the destination at all
  EXPECT_EQ(choose_transfer(f), TransferMethod::kWhole);
}

TEST(TransferPolicy, ShiftedContentIsADeltaAndSmallFilesGoWhole) {
  for (bool frozen : {false, true}) {
    // A uidlist rewritten without expunged lines (not an append), an mbox folder.
    EXPECT_EQ(choose_transfer(facts(FileClass::kAppendLog, "dovecot-uidlist", frozen, 4'700'000, 4'790'462)),
              TransferMethod::kDelta);
    EXPECT_EQ(choose_transfer(with_blocks(facts(FileClass::kRewritten, "INBOX", frozen, 1ll << 30, 1ll << 30))),
              TransferMethod::kDelta);
    // Below kDeltaMinBytes on either side: whole.
    EXPECT_EQ(choose_transfer(facts(FileClass::kRewritten, "dovecot-keywords", frozen, 73, 60)), TransferMethod::kWhole);
    EXPECT_EQ(choose_transfer(facts(FileClass::kRewritten, "dovecot.index", frozen, 100'000, 4000)),
              TransferMethod::kWhole);
    EXPECT_EQ(choose_transfer(facts(FileClass::kRewritten, "subscriptions", frozen, 80, -1)), TransferMethod::kWhole);
  }
}

// The threshold is inclusive on both sides: a delta needs a basis and a
// source of at least kDeltaMinBytes each.
TEST(TransferPolicy, DeltaNeedsBothSidesAtLeastTheMinimum) {
  for (bool frozen : {false, true}) {
    EXPECT_EQ(choose_transfer(facts(FileClass::kAppendLog, "dovecot-uidlist", frozen, kDeltaMinBytes, kDeltaMinBytes)),
              TransferMethod::kDelta);
    EXPECT_EQ(choose_transfer(facts(FileClass::kAppendLog, "dovecot-uidlist", frozen, kDeltaMinBytes - 1, 1 << 20)),
              TransferMethod::kWhole);
    EXPECT_EQ(choose_transfer(facts(FileClass::kAppendLog, "dovecot-uidlist", frozen, 1 << 20, kDeltaMinBytes - 1)),
              TransferMethod::kWhole);
  }
}

// Blocks do not depend on the size: a small index under the freeze still
// goes as changed blocks when the state has its block hashes (only the source
// is read), and whole when warm (too small for a delta).
TEST(TransferPolicy, SmallIndexIsBlocksUnderTheFreezeAndWholeWhenWarm) {
  TransferFacts f = with_blocks(facts(FileClass::kRewritten, "dovecot.index", true, 3000, 2900));
  EXPECT_EQ(choose_transfer(f), TransferMethod::kBlocks);
  f.frozen = false;
  EXPECT_EQ(choose_transfer(f), TransferMethod::kWhole);
}

// The debug log and the pass statistics name each method.
TEST(TransferPolicy, EveryMethodHasAName) {
  EXPECT_EQ(transfer_method_name(TransferMethod::kWhole), "whole");
  EXPECT_EQ(transfer_method_name(TransferMethod::kTail), "tail");
  EXPECT_EQ(transfer_method_name(TransferMethod::kBlocks), "blocks");
  EXPECT_EQ(transfer_method_name(TransferMethod::kDelta), "delta");
}

}  // namespace
}  // namespace mailshard
