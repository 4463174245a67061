// The Courier -> Dovecot conversion applied to a move (the move's "convert"
// step, between the frozen pass and verify): reads the Courier metadata of
// the frozen source through its Transport, converts it
// (movers/courier_to_dovecot.h) and applies the result to the destination's
// staging copy, which the sync engine made a mirror of the source.
//
// Apply is idempotent and may be cut anywhere (a kill -9): its input is the
// source, which the freeze holds still, never the half-converted copy; each
// folder is found under its Dovecot name or its Courier name, each message
// under its new name or its old one, and the metadata files are written
// whole (temp + rename). Running it again ends in the same tree.
//
// After it the staging copy no longer mirrors the source name for name, so
// the engine's own check (verify_frozen_copy) runs before it, and the verify
// step compares what clients will see instead: per folder UIDVALIDITY, next
// UID, every UID and the keywords of every message, the INBOX's POP3 UIDLs
// and order (courierpop3dsizelist -> P and O fields), from Courier's files on
// the source against Dovecot's files in the copy (verify_conversion).
//
// Thread-safety: functions of their arguments and the transports.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "core/transport.h"
#include "movers/courier_to_dovecot.h"

namespace mailshard {

// The Courier Maildir at `maildir` (relative to the transport's root) and
// the metadata of each folder. `label` is the Maildir's name in errors
// ("Maildir"). A folder is the Maildir itself or a ".name" directory in it
// that holds cur/. The INBOX's courierpop3dsizelist is read when present.
// `listing`, when given, is the Maildir's listing taken a moment ago (under
// the same freeze), used instead of listing it again.
Result<CourierMailbox> read_courier_mailbox(Transport& t, const std::string& maildir, const std::string& label,
                                            std::optional<TreeListing> listing = std::nullopt);

// The part of `listing` (of a home) under `dir`, relative to `dir`; `dir` ""
// is the whole listing. Empty when `dir` is not in it.
TreeListing sub_listing(TreeListing listing, const std::string& dir);

struct ConversionStats {
  int64_t folders = 0;
  int64_t folders_renamed = 0;
  int64_t messages_renamed = 0;
  int64_t files_written = 0;
  int64_t files_removed = 0;  // a Courier source's stray Dovecot indexes (they number messages otherwise)
};

// Applies `conv` to the copy's Maildir at `maildir` on `dst`, in its layout
// (conv.layout; with LAYOUT=fs, Courier's courierimapkeywords/ and
// courierimaphieracl/ directories are removed, since Dovecot would list them
// as folders). Errors name the
// file; a message that is in neither its old nor its new name is kNotFound
// (the copy lost it).
Result<ConversionStats> apply_conversion(Transport& dst, const std::string& maildir, const DovecotConversion& conv);

// What each Courier folder of `conv` shows against what Dovecot's files in
// the copy at `maildir` show, and the subscriptions. kVerifyFailed naming
// the first differences; the number of folders compared on success.
Result<int64_t> verify_conversion(const std::string& user, Transport& dst, const std::string& maildir,
                                  const DovecotConversion& conv);

// What each folder of the Maildir at `maildir` (relative to the transport's
// root) shows a client, from its own metadata files: Courier's
// (courierimapuiddb, courierimapkeywords/) when `courier`, else Dovecot's
// (dovecot-uidlist; `nested`: LAYOUT=fs, any directory with cur/ is a folder).
// Keyed by the folder's directory relative to the Maildir ("" = INBOX); a
// folder without a UID list has uidvalidity 0. A file that changes while it
// is read (a live Dovecot appending) is read again, twice at most.
Result<std::map<std::string, FolderView>> read_folder_views(const std::string& user, Transport& t,
                                                           const std::string& maildir, bool courier, bool nested);

// How a folder's UIDs changed from `was` to `now`, one line each, at most
// `max`: each message of `was` whose base name is in `only` that `now` shows
// under another UID, and a changed UIDVALIDITY (when `was` had one and `now`
// still has one of those messages). Messages gone since, or new since, are
// not changes. `checked` counts the messages compared.
std::vector<std::string> uid_changes(const FolderView& was, const FolderView& now, const std::set<std::string>& only,
                                     int64_t& checked, size_t max = 5);

// Source folder path -> destination folder path (relative to the home), for
// the folders whose name changes: where the sweep puts a late delivery.
std::map<std::string, std::string> converted_folder_paths(const std::string& maildir_rel, const DovecotConversion& conv);

// The same for any source folder path, computed from its name alone (the
// sweep after a resume has no conversion at hand): a ".name" folder in the
// Maildir at `maildir_rel` gets its Dovecot name under `layout`; anything
// else, or a name the conversion would have refused, stays as it is.
std::function<std::string(const std::string&)> converted_folder_namer(const std::string& maildir_rel,
                                                                     const DovecotLayout& layout);

}  // namespace mailshard
