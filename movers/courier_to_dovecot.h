// Courier-IMAP Maildir++ -> Dovecot Maildir, keeping what clients see: per
// folder the UIDVALIDITY, every UID, the next UID, the flags, the keywords,
// and the subscriptions. A pure function of the Courier metadata files and
// the message names of each folder; the move applies its result to the
// staging copy (movers/courier_conversion.h).
//
// Formats (Courier: imap/imapscanclient.C and README.imapkeywords; Dovecot
// 2.3: src/lib-storage/index/maildir/maildir-uidlist.c, maildir-keywords.c,
// src/lib-storage/list/subscription-file.c):
//   courierimapuiddb        "<version> <uidvalidity> <nextuid>\n" (Courier
//                           writes version 1 or 2, same lines), then
//                           "<uid> <base name>\n" per message
//   courierimapkeywords/    ":list": keyword names one per line, an empty
//                           line, then "<base name>:<index> <index>...\n";
//                           updates "<base name>" or ".<n>.<base name>"
//                           (highest n wins; the plain name wins over all)
//                           holding the message's whole keyword set, one per line
//   courierimapsubscribed   IMAP names, "INBOX" or "INBOX.<a>.<b>", UTF-8
//   folder directories      Maildir++ ".<a>.<b>"; Courier 5 writes UTF-8
//   courierpop3dsizelist    INBOX only (POP3 sees the INBOX), as Dovecot's
//                           courier-dovecot-migrate.pl reads it: a header
//                           "/3 <nextuid> <uidvalidity>", "/2 <nextuid>
//                           <uidvalidity>" or "/1 <nextuid>", or none (version
//                           0: the first line is data); then per message
//                           "<file name> <size>[ <uid>[:<uidv>[:<digit>]]]".
//                           The UIDL: "UID<uid>-<uidv>", "UID<uid>" (uidv 0),
//                           or for uid 0 the base name with every byte outside
//                           0x21..0x7e and every ' " + written "+XX"; the
//                           line's number among the data lines is its POP3 order
//   dovecot-uidlist         "3 V<uidvalidity> N<nextuid>\n" then
//                           "<uid>[ P<uidl> O<order>] :<file name>\n" in
//                           ascending UID order (no G: Dovecot adds a mailbox
//                           GUID itself; P and O, Dovecot >= 2.0.13, only for
//                           messages in courierpop3dsizelist)
//   dovecot-keywords        "<index> <name>\n"; index 0..25 is letter a..z
//                           appended to the message's ":2," flags
//   subscriptions           "V\t2\n\n" then one name per line, hierarchy
//                           levels separated by a tab, modified UTF-7
//   folder directories      by the destination's layout (DovecotLayout):
//                           Maildir++ ".a.b" (Dovecot's default) or LAYOUT=fs
//                           "a/b" (Dovecot 2.3 maildir-storage.c: the INBOX is
//                           the Maildir itself in both), each level in
//                           modified UTF-7 (RFC 3501 5.1.3), or as UTF-8 with
//                           the UTF-8 option (the subscriptions file's levels
//                           too: Dovecot writes storage names there)
//
// Refused (kCorrupt / kUnsupported), as one line naming the user and the
// file: a truncated or malformed courierimapuiddb, a UID that appears twice
// or is not below the next UID, a keyword file naming a message that is not
// in the folder, a folder name that is not valid UTF-8, more than 26
// keywords in use in one folder (Dovecot Maildir keeps at most 26 in file
// names; the rest would be lost); a truncated or malformed
// courierpop3dsizelist (an unknown "/" header, a line of none of the four
// forms, a message or a UIDL listed twice), a UIDL a dovecot-uidlist field
// cannot carry (Dovecot ends a field at a space; POP3 allows 0x21..0x7e
// only; Courier's own UIDLs always fit, so this guards the rule rather than
// a case seen), and POP3 UIDLs in an INBOX that has neither a
// courierimapuiddb nor a UIDVALIDITY in the sizelist's header (nothing to
// number the messages by, so no uidlist line to carry a P field).
//
// POP3, decided:
//   - a sizelist entry whose message is gone (expunged since): skipped, as
//     Courier's pop3d forgets it at its next rewrite;
//   - a listed message with no UID in courierimapuiddb (delivered after
//     Courier-IMAP last looked): numbered from the next UID on, in POP3
//     order, as Dovecot's migration tool does; without a courierimapuiddb
//     the INBOX gets a uidlist with the sizelist's UIDVALIDITY and UIDs from
//     1 for the listed messages only;
//   - a message with no sizelist entry (never listed by POP3: pop3d rewrites
//     the list each session, so no client knows a UIDL for it): no P field;
//     Dovecot makes its UIDL from pop3_uidl_format, which must not be able to
//     repeat a carried one (docs/operations.md, "POP3 UIDLs").
//
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.h"

namespace mailshard {

// One Maildir++ folder as Courier left it.
struct CourierFolder {
  std::string dir;                                   // relative to the Maildir: "" = INBOX, ".Sent", ".Entwürfe.2024"
  std::optional<std::string> uiddb;                  // courierimapuiddb; nullopt when absent
  std::map<std::string, std::string> keyword_files;  // courierimapkeywords/<name> -> content (":list" too)
  std::vector<std::string> cur;                      // names in cur/
  std::vector<std::string> new_;                     // names in new/
  std::optional<std::string> acl;                    // courierimapacl; nullopt when absent
  bool operator==(const CourierFolder&) const = default;
};

struct CourierMailbox {
  std::string maildir;                    // where the Maildir is, for messages ("Maildir", "" = the home)
  std::vector<CourierFolder> folders;
  // Directories in the Maildir that are neither a folder nor inside one's
  // cur/, new/, tmp/ or courierimapkeywords/ ("shared-folders",
  // ".Lists/archive"): Dovecot's LAYOUT=fs would list each as a folder.
  std::vector<std::string> other_dirs;
  std::optional<std::string> subscribed;  // courierimapsubscribed
  std::optional<std::string> pop3_sizelist;  // courierpop3dsizelist in the INBOX; nullopt when absent
  bool operator==(const CourierMailbox&) const = default;
};

// What an IMAP client sees of one folder and what the conversion must keep.
struct FolderView {
  int64_t uidvalidity = 0;                 // 0: no UID list (the server assigns new UIDs)
  int64_t next_uid = 0;
  std::map<int64_t, std::string> uids;     // UID -> base name, messages present only
  std::map<std::string, std::set<std::string>> keywords;  // base name -> keywords (messages that have any)
  std::map<int64_t, std::string> pop3_uidls;  // UID -> POP3 UIDL (messages with one; INBOX only)
  std::map<int64_t, int64_t> pop3_order;      // UID -> POP3 order (1 = listed first)
  bool operator==(const FolderView&) const = default;
};

// How the destination Dovecot names folders on disk (its mail_location's
// LAYOUT= and UTF-8; movers/mail_format.h conversion_layout).
struct DovecotLayout {
  bool fs = false;    // LAYOUT=fs: "A/B" (nested directories); else Maildir++ ".A.B"
  bool utf8 = false;  // UTF-8: levels as UTF-8; else modified UTF-7
  bool operator==(const DovecotLayout&) const = default;
};

struct DovecotFolder {
  std::string src_dir;                   // Courier's directory (CourierFolder::dir)
  std::string dst_dir;                   // Dovecot's: the same levels, named as the layout names them
  std::optional<std::string> uidlist;    // dovecot-uidlist; nullopt when Courier had no courierimapuiddb
  std::optional<std::string> keywords;   // dovecot-keywords; nullopt when no message has a keyword
  // Messages whose name changes, relative to the folder: "cur/<old>" ->
  // "cur/<base>:2,<flags + keyword letters>" (a message in new/ with
  // keywords moves to cur/, as Courier would move it).
  std::vector<std::pair<std::string, std::string>> renames;
  FolderView view;                       // what Courier's files say a client sees
};

struct DovecotConversion {
  DovecotLayout layout;
  std::vector<DovecotFolder> folders;  // in Courier's directory order: a parent before its children
  std::optional<std::string> subscriptions;  // nullopt when Courier had no courierimapsubscribed
  std::vector<std::string> left_out;         // subscriptions outside INBOX (shared folders): Dovecot has no such folder
  // Folders whose courierimapacl grants rights to someone besides the owner
  // and Courier's "administrators" (shares): not converted (Dovecot's ACLs
  // are a plugin, configured apart), so the move says so. Each entry is
  // "INBOX.Lists (bob@example.org lr, anyone l)", Courier's IMAP name, as
  // the files have them (not escaped: print with printable()).
  std::vector<std::string> acls_left_out;
};

// The conversion, for a destination that names folders by `layout`. `user`
// names the mailbox in errors. With LAYOUT=fs, also refused: a folder level
// Dovecot or Courier already uses as a name inside a folder (cur, new, tmp,
// subscriptions, maildirsize, maildirfolder, dovecot-uidlist,
// dovecot-keywords, dovecot-uidvalidity, Courier's courierimap* and
// courierpop3dsizelist names), and any of in.other_dirs.
Result<DovecotConversion> convert_courier_to_dovecot(const std::string& user, const CourierMailbox& in,
                                                     const DovecotLayout& layout = {});

// What Courier's files say a client sees of one folder (the conversion's
// input side; also what verification expects).
Result<FolderView> courier_folder_view(const std::string& user, const std::string& maildir, const CourierFolder& folder);

// What Dovecot's files say a client sees of one folder (the P and O fields
// of the uidlist included): its dovecot-uidlist
// (nullopt: none), dovecot-keywords (nullopt: none) and message names.
// `where` names the folder in errors.
Result<FolderView> dovecot_folder_view(const std::string& user, const std::string& where,
                                       const std::optional<std::string>& uidlist,
                                       const std::optional<std::string>& keywords, const std::vector<std::string>& cur,
                                       const std::vector<std::string>& new_);

// Differences between what a folder should show and what it shows, one line
// each ("UIDVALIDITY 1700000000 became 1700000555", "UID 7 (1700.M1P2.h) is
// missing", ...); empty when they agree. At most `max` lines.
std::vector<std::string> compare_folder_views(const FolderView& expected, const FolderView& actual, size_t max = 5);

// Courier's directory name of a folder -> Dovecot's under `layout`
// (".Entwürfe.2024" -> ".Entw&APw-rfe.2024", with LAYOUT=fs
// "Entw&APw-rfe/2024", with UTF-8 the levels unchanged). kCorrupt when it is
// not valid UTF-8 or has an empty level; kUnsupported for a level LAYOUT=fs
// cannot have (convert_courier_to_dovecot).
Result<std::string> dovecot_folder_dir(std::string_view courier_dir, const DovecotLayout& layout = {});

// The subscriptions file's names (hierarchy levels joined by '.', decoded from
// modified UTF-7 to UTF-8 unless the layout is UTF-8, "INBOX" for the inbox),
// sorted.
Result<std::vector<std::string>> dovecot_subscription_names(std::string_view subscriptions,
                                                            const DovecotLayout& layout = {});
// courierimapsubscribed's names below INBOX ("INBOX", "Sent", "a.b"), sorted.
std::vector<std::string> courier_subscription_names(std::string_view subscribed);

// RFC 3501 modified UTF-7. kCorrupt for invalid input.
Result<std::string> utf8_to_mutf7(std::string_view utf8);
Result<std::string> mutf7_to_utf8(std::string_view mutf7);

}  // namespace mailshard
