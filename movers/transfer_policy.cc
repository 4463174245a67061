#include "movers/transfer_policy.h"

namespace mailshard {

namespace {
bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends(std::string_view s, std::string_view p) { return s.size() >= p.size() && s.substr(s.size() - p.size()) == p; }
}  // namespace

std::string_view transfer_method_name(TransferMethod m) {
  switch (m) {
    case TransferMethod::kWhole: return "whole";
    case TransferMethod::kTail: return "tail";
    case TransferMethod::kBlocks: return "blocks";
    case TransferMethod::kDelta: return "delta";
  }
  return "?";
}

bool fixed_layout(FileClass cls, std::string_view name) {
  if (cls == FileClass::kInPlace) return true;
  // dovecot.index, dovecot.list.index, dovecot.map.index: a header, then one
  // fixed-size record per message in UID order; Dovecot rewrites them through
  // a temp file and rename(), so the inode changes but records keep their
  // offsets (a flag change rewrites a record, a delivery appends one).
  return cls == FileClass::kRewritten && starts(name, "dovecot.") && ends(name, ".index");
}

uint32_t block_hashes_for(FileClass cls, std::string_view name, int64_t size) {
  return fixed_layout(cls, name) ? diff_block_size(size) : 0;
}

TransferMethod choose_transfer(const TransferFacts& f) {
  if (f.appended) return TransferMethod::kTail;  // only the new bytes travel
  // The state's block hashes describe the destination's copy only if they
  // cover exactly its length in whole blocks (plus one partial block).
  bool blocks_usable = f.state_block_size > 0 && f.basis_size >= 0 &&
                       f.state_blocks == static_cast<size_t>((f.basis_size + f.state_block_size - 1) / f.state_block_size);
  if (blocks_usable && fixed_layout(f.cls, f.name) && (f.frozen || f.cls == FileClass::kInPlace))
    return TransferMethod::kBlocks;
  if (f.basis_size >= kDeltaMinBytes && f.size >= kDeltaMinBytes) return TransferMethod::kDelta;
  return TransferMethod::kWhole;
}

}  // namespace mailshard
