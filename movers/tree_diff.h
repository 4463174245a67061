// The diff of one pass: a readdir-only listing of the source home against
// the SyncState (what the destination holds). Pure: no I/O, deterministic.
//
// Maildir messages (<folder>/cur, <folder>/new) are matched by base name
// inside their folder, so a flag change or new/ -> cur/ move is a rename,
// an unmatched source name is new, an unmatched state name is expunged.
// Names whose base another name in the folder shares (on the source, or
// among the state's unmatched names) are matched by full name only.
// Everything else is matched by name. Mutable files known to the state are
// always listed for a re-check (size, mtime, ctime, hash); immutable ones are
// trusted (the warm-pass audit re-checks them).
#pragma once

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/transport.h"
#include "movers/maildir_rules.h"
#include "movers/sync_state.h"

namespace mailshard {

struct TreePlan {
  struct Dir {
    std::string path;  // relative to the home
    FileAttrs attrs;   // the source's
  };
  struct Entry {
    std::string path;
    EntryType type = EntryType::kFile;
    FileClass cls = FileClass::kRewritten;
    bool on_dst = false;  // the destination already has a same-typed entry the state does not know
  };
  std::vector<Dir> mkdirs;                                      // not in the state; parents first
  std::vector<std::pair<std::string, std::string>> renames;     // from -> to (messages)
  std::vector<Entry> new_entries;                               // files and symlinks not in the state
  std::vector<Entry> mutable_files;                             // metadata files in the state: re-check
  std::vector<std::string> symlinks;                            // symlinks in the state: re-check
  std::vector<std::string> kept_files;                          // unchanged immutable files (for an audit)
  std::vector<std::pair<std::string, EntryType>> early_deletes;  // type changed: remove before creating
  std::vector<std::pair<std::string, EntryType>> deletes;        // expunged; kDir = rmdir (deepest last)
  std::vector<Dir> dirs;                                         // every source directory, parents first
  size_t entries = 0;                                            // source entries considered
  size_t skipped = 0;                                            // tmp/ contents, locks, temps
};

// Entries on the destination that the state does not know (path -> type),
// from a destination listing; nullptr when the destination was not listed.
using DstExtras = std::unordered_map<std::string, EntryType>;

// with_kept: also list the unchanged immutable files (for an audit; costs a
// string per file, so a plain pass skips it).
TreePlan diff_tree(const TreeListing& src, const SyncState& state, const DstExtras* extras, bool with_kept = false);

// Folder path of a Maildir message path ("Maildir/.Sent/cur/x" -> "Maildir/.Sent"),
// and the classification context of each directory of a listing.
struct ListingIndex {
  // DirInfo per listing directory (same order as the listing), and whether it
  // lies below a Maildir tmp/ (skipped with everything in it).
  std::vector<DirInfo> info;
  std::vector<bool> skipped;
};
ListingIndex index_listing(const TreeListing& listing);

}  // namespace mailshard
