// What the sync engine knows about mail storage files (design.md §5,
// notes/mover-notes.md §2): which names are immutable Maildir messages
// matched by base name, which are the mutable metadata set, which are
// append-only, which are rewritten in place, and which are never copied.
// Pure functions of names; no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/transport.h"

namespace mailshard {

enum class FileClass : uint8_t {
  kSkip,       // never copied, never deleted: tmp/ contents, *.lock, our temps
  kMessage,    // Maildir message in <folder>/cur or <folder>/new: immutable, matched by base name
  kImmutable,  // other write-once files (sdbox dbox-Mails/u.*): matched by name, never re-checked
  kAppendLog,  // append-only: dovecot.index.log*, dovecot.mailbox.log, maildirsize, mdbox m.*, uidlists
  kInPlace,    // rewritten in place (pwrite): dovecot.index.cache, *.cache
  kRewritten,  // every other regular file: replaced whole or edited (index, keywords, sieve, mbox)
};
std::string_view file_class_name(FileClass c);

// The base name of a Maildir message: the text before ":2," (or the whole
// name). "123.M1P2.host,S=5:2,FS" -> "123.M1P2.host,S=5".
std::string_view message_base(std::string_view name);

// The flags part of a Maildir message name: the text after ":2,", or
// nullopt when the name has none (a message in new/ as delivered).
// "123.M1P2.host,S=5:2,FS" -> "FS"; "123.M1P2.host,S=5" -> nullopt.
std::optional<std::string_view> message_flags(std::string_view name);

// Dovecot's dovecot-keywords file of a Maildir folder: "<index> <keyword>"
// lines; keyword index i is the flag letter 'a' + i in message names (26 at
// most fit). Lines that do not parse, or carry an index outside 0..25, are
// ignored (Dovecot itself skips them).
using KeywordTable = std::map<int, std::string>;  // index -> keyword name
KeywordTable parse_keywords_file(std::string_view text);

struct RemappedFlags {
  std::string flags;                  // for the destination's name: ASCII order, no duplicates
  std::vector<std::string> dropped;   // keywords left out ("$Label1", or "letter 'c'" when unnamed)
};
// The flags of a message name from one Maildir folder for a name in the
// same folder on another server. Standard flags (upper-case letters: D F P R
// S T) mean the same everywhere and are kept. A keyword letter (a-z) is an
// index into its folder's dovecot-keywords, and the two servers' files need
// not agree once the user has worked on either side: it is translated by
// keyword name, and dropped when either table (nullptr: no readable file)
// lacks it. A dropped keyword is lost on that message, which a wrong keyword
// would not make better. Anything after a ',' (an extension) is kept as is.
RemappedFlags remap_message_flags(std::string_view flags, const KeywordTable* src, const KeywordTable* dst);

// Describes one directory of a listing for classification.
struct DirInfo {
  bool maildir_sub = false;  // a cur/ or new/ directory of a Maildir folder
  bool maildir_tmp = false;  // a tmp/ directory of a Maildir folder
  bool dbox_mails = false;   // an sdbox "dbox-Mails" directory
};

// dir_name: the directory's own last component; parent_has_cur_new: its
// parent holds both cur/ and new/ directories (it is a Maildir folder).
DirInfo classify_dir(std::string_view dir_name, bool parent_has_cur_new);

// The class of a regular file `name` in a directory described by `dir`.
FileClass classify_file(const DirInfo& dir, std::string_view name);

// True for names the engine never copies or deletes in any directory.
bool is_skipped_name(std::string_view name);

// Block length for librsync signatures of this file: index-like files want
// small blocks (scattered record updates cost one block each); others take
// librsync's size-based recommendation (0).
uint32_t signature_block_len(std::string_view name, int64_t size);
// Block size for the state's block hashes of kInPlace files: 1 KiB (a
// header rewrite costs one block), doubled until a file has at most 64k
// blocks (1 MiB of hashes in the state).
uint32_t diff_block_size(int64_t size);
// Files below this are sent whole: the delta would not be smaller.
inline constexpr int64_t kDeltaMinBytes = 8 * 1024;

// An mdbox storage file: "m.<digits>" (append-only; purge writes new ones).
bool is_mdbox_storage_file(std::string_view name);

// Dovecot's mbox indexes: a path (relative) under a ".imap" directory, or
// a "dovecot.*" index file.
bool is_mbox_index_path(std::string_view rel);

// The uidlist-like files whose first line carries UIDVALIDITY/next UID/GUID.
bool is_uid_list(std::string_view name);

}  // namespace mailshard
