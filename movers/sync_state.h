// SyncState: what the destination home holds, as this engine wrote it: every
// directory and entry with the source attributes it was copied with, content
// hashes, and block hashes of in-place files. An incremental pass diffs a
// readdir-only listing of the source against it, so it never stats the 100k
// unchanged messages. The move keeps it between passes (in memory, or
// serialised as a blob in the journal; `mailshard sync --state FILE`).
//
// The state is updated only for operations that succeeded, so after a failed
// pass it still describes the destination (plus, at most, temp files that
// the next pass removes: `dirty`).
//
// Thread-safety: a value; not shared between threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/transport.h"
#include "util/hash.h"
#include "util/result.h"

namespace mailshard {

struct EntryState {
  EntryType type = EntryType::kFile;
  FileAttrs attrs;            // the source's attributes when copied (ino/nlink are the source's)
  std::string link_target;    // symlinks
  bool has_hash = false;
  Hash128 hash;               // content of the destination copy (== source when copied)
  uint32_t block_size = 0;    // kInPlace files: block hashes of the destination copy
  std::vector<Hash128> blocks;
};

struct DirState {
  FileAttrs attrs;  // the source directory's attributes as last applied
  std::unordered_map<std::string, EntryState> entries;
};

struct SyncState {
  static constexpr uint32_t kVersion = 1;

  uint64_t block_seed = 0;  // XXH3 seed of the block hashes (random per state)
  bool dirty = false;       // a pass started and did not finish: list the destination next time
  int64_t passes = 0;
  std::map<std::string, DirState> dirs;  // by path relative to the home; "" = the home
  // Files written by the last pass and their hashes: what verify() re-hashes.
  std::vector<std::pair<std::string, Hash128>> last_written;
  // Every other destination path the last pass changed: names renamed from
  // and to, removed, created (directories, symlinks), or given new attributes.
  // Kept in memory only: a state read back from the journal has
  // last_changes_known == false, and verify_frozen_copy() then lists the
  // whole destination instead of checking these names.
  bool last_changes_known = false;
  std::vector<std::string> last_changed;

  // A fresh state with a random block seed.
  static SyncState fresh();

  // Entries (files + symlinks) in all directories.
  size_t entry_count() const;

  std::string serialize() const;
  // Errors: kCorrupt for a malformed or truncated blob, kUnsupported for a
  // newer version.
  static Result<SyncState> deserialize(std::string_view blob);
};

}  // namespace mailshard
