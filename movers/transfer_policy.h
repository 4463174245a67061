// How one changed metadata file travels to the destination: whole, as an
// appended tail, as changed blocks against the block hashes the state keeps of
// the destination's copy, or as a librsync delta against a signature of that
// copy. Pure functions of what the pass already knows; no I/O.
//
// Cost under the freeze, per changed file (notes/mover-notes.md §1, §3.4):
//   tail    reads the appended bytes (the prefix is hashed to prove it is one);
//   blocks  reads the source once (XXH3 per block); the destination is not
//           read, no signature travels: its block hashes are in the state;
//   delta   the destination reads and BLAKE2-hashes its whole copy for the
//           signature, which travels back; the source rolls BLAKE2 over its
//           file. Survives shifted content (removed uidlist lines, mbox).
// So a frozen pass prefers blocks for files whose records stay at fixed
// offsets (Dovecot's binary indexes and caches, rewritten in place or via a
// temp file + rename); a warm pass keeps deltas for them (no time pressure,
// fewer bytes when records shift), and records the block hashes the frozen
// pass will need.
#pragma once

#include <cstdint>
#include <string_view>

#include "movers/maildir_rules.h"

namespace mailshard {

enum class TransferMethod : uint8_t { kWhole, kTail, kBlocks, kDelta };
std::string_view transfer_method_name(TransferMethod m);

// What a pass knows about one changed metadata file when it picks a method.
struct TransferFacts {
  FileClass cls = FileClass::kRewritten;
  std::string_view name;    // the file's own name (last path component)
  bool frozen = false;      // the frozen (or metadata) pass: the user is waiting
  int64_t size = 0;         // the source file now
  int64_t basis_size = -1;  // the destination's copy (state or stat); -1 = none
  bool appended = false;    // grew, and its old length hashes to what the state recorded
  // Block hashes the state keeps of the destination's copy (0 / 0 = none).
  uint32_t state_block_size = 0;
  size_t state_blocks = 0;
};

// True for files whose content sits at fixed offsets, so that a block diff
// sends about one block per changed record even when the writer replaced the
// file whole (temp + rename): Dovecot's dovecot.index, dovecot.list.index,
// dovecot.map.index and their caches (and every kInPlace file).
bool fixed_layout(FileClass cls, std::string_view name);

// Block size (bytes) of the block hashes to record for the destination's copy
// of this file after a transfer; 0 = keep none (the file never uses blocks).
uint32_t block_hashes_for(FileClass cls, std::string_view name, int64_t size);

// The method to use (the caller falls back to kWhole when a delta finds no
// basis, and resends whole when the patched copy does not hash to the source).
TransferMethod choose_transfer(const TransferFacts& f);

}  // namespace mailshard
