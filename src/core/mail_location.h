// Where and in which format a server keeps a user's mail: `[[server]]
// mail_location`, in Dovecot's syntax, FORMAT:PATH[:KEY=VALUE]..., with
// "courier:~/Maildir" for Courier-IMAP's Maildir++ (docs/config.md,
// `mail_location`, has the full table and examples).
//
// Formats: maildir (Dovecot), courier (Courier-IMAP), sdbox and mdbox
// (Dovecot's dbox), mbox. The path is inside the home: "~" or "~/PATH"
// (PATH plain, no variables).
//
// Options (maildir, sdbox, mdbox, mbox; Courier-IMAP has none):
//   trees, each a separate tree of the move when outside the home (a value
//   inside the home is copied with the home):
//     INDEX=    Dovecot's index files (INDEX=MEMORY: none on disk)
//     CONTROL=  dovecot-uidlist, dovecot-keywords, subscriptions
//     ALT=      sdbox/mdbox only: the alternate storage (doveadm altmove)
//     INBOX=    mbox only: an absolute path naming the user (/var/mail/%u) is
//               a spool file, a tree of one file (MailTree::file); a plain
//               ~/PATH inside the mail path is a file of the home's tree, and
//               then a naming option (below)
//   accepted as they are, since they change no place where mail lives
//   (they name things inside the trees, or hold only files Dovecot
//   recreates); a move needs them equal on both servers (mail_format.h):
//     LAYOUT=, UTF-8, DIRNAME=, FULLDIRNAME=, MAILBOXDIR=, SUBSCRIPTIONS=,
//     LISTINDEX= (a name, not a path), ITERINDEX, NO-NOSELECT, BROKENCHAR=,
//     VOLATILEDIR= (lock files: never copied)
//   refused, with a line saying why: ALT= on maildir, INBOX= elsewhere in
//   the home or not naming the user, INDEXPVT= and INDEXSHARED= (shared
//   mailboxes), any other key.
//
// A tree's value must name the user (~, %u, %n or %h): a directory shared
// by several users is not one user's to move.
//
// Variables, expanded for one user (expand_location_value): ~ (at the start:
// the home), %u %{user} (alice@example.org), %n %{username} (alice),
// %d %{domain} (example.org, "" without a domain), %h %{home}, %% (a %);
// the modifier L lowercases (%Ln, %Ld). "::" in a value is a literal ':'.
//
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.h"

namespace mailshard {

enum class MailFormat { kUnknown, kDovecot, kCourier, kSdbox, kMdbox, kMbox };

// "Dovecot Maildir", "Courier-IMAP Maildir++", "Dovecot sdbox", "Dovecot
// mdbox", "Dovecot mbox", "unknown".
std::string_view mail_format_name(MailFormat f);

// sdbox or mdbox: Dovecot's own formats, whose flags, keywords and (mdbox)
// folder membership live only in Dovecot's index files.
constexpr bool is_dbox(MailFormat f) { return f == MailFormat::kSdbox || f == MailFormat::kMdbox; }

// sdbox, mdbox and mbox: no file per message named with its flags, so a move
// of them is checked before the flip, and its late mail imported, through
// Dovecot's doveadm on both servers (Maildir's are checked and swept as files).
constexpr bool moved_through_doveadm(MailFormat f) { return is_dbox(f) || f == MailFormat::kMbox; }

struct MailLocation {
  MailFormat format = MailFormat::kUnknown;
  std::string maildir;  // relative to the home: "Maildir", or "" for the home itself
  // KEY=VALUE options as written (values unexpanded, "::" already ':'), in
  // order; a flag (UTF-8) has an empty value.
  std::vector<std::pair<std::string, std::string>> options;

  // The value of KEY, or nullptr.
  const std::string* option(std::string_view key) const;
  // The options that change names inside the trees (LAYOUT, UTF-8, DIRNAME,
  // ..., and mbox's INBOX file), sorted, as "KEY=VALUE:..." ("" when none): two servers whose
  // naming options differ would read a byte-exact copy differently.
  std::string naming_options() const;
};

// Error (kInvalidInput), one line naming the location: "'mdbox:~/mdbox': the
// format mdbox is not supported (maildir and courier are)",
// "'maildir:/var/mail/%u': the path must be inside the home (~/...)",
// "'maildir:~/Maildir:INDEX=/var/index/%z': INDEX: unknown variable %z",
// "'maildir:~/Maildir:FOO=1': unknown option FOO", ...
Result<MailLocation> parse_mail_location(std::string_view text);

// Who the variables stand for.
struct LocationUser {
  std::string user;  // the login, "alice@example.org"
  std::string home;  // from LDAP: absolute, or relative to the server's mail_root
};

// `value` with its variables replaced for `u`, and normalised (no "//", no
// trailing '/'). kInvalidInput: an unknown variable ("unknown variable %z"),
// "~" where the user has no home, or a result with "." or ".." as a part or a
// '/' brought in by a variable's value (a user name must not name another
// directory).
Result<std::string> expand_location_value(std::string_view value, const LocationUser& u);

enum class TreeKind : uint8_t { kHome, kIndex, kControl, kAlt, kInbox };

// "home", "index", "control", "alt", "inbox".
std::string_view tree_kind_name(TreeKind k);

// One tree of a user's mail on one server.
struct MailTree {
  TreeKind kind = TreeKind::kHome;
  std::string name;  // "home", "index", "control", "alt", or "index+control" when two name one directory
  std::string path;  // absolute, or relative to the mail root (as the home is)
  // What must be there before a move makes the tree: the option's value up
  // to the last '/' before its first variable ("/srv/sata" for
  // ALT=/srv/sata/%d/%n; a mount point, typically). "" for the home, and
  // for a value that starts with a variable or "~".
  std::string base;
  // One file, not a directory: mbox's INBOX spool (INBOX=/var/mail/%u). Its
  // directory holds other users' spools and is never part of the move.
  bool file = false;
};

// The user's trees under `loc`: the home first (the whole home is the mail
// tree, as it always was), then INDEX=, CONTROL=, ALT= and an mbox spool
// INBOX= where they lie outside the home (a value inside it is copied with
// the home; INDEX=MEMORY has no tree; equal directories are one tree, the
// INBOX file never shares one). kInvalidInput (expansion errors, or a
// tree that holds the home or another tree): "user alice@example.org: INDEX:
// ...". Relative and absolute paths are compared as written: confinement to
// a mail root is the caller's (tree_in_root).
Result<std::vector<MailTree>> location_trees(const MailLocation& loc, const LocationUser& u);

// `path` (absolute, or relative to `root`) relative to `root`. kInvalidInput
// when an absolute path is not strictly inside root ("'/var/index/x' is not
// inside the mail root '/srv/mail'").
Result<std::string> tree_in_root(const std::string& path, const std::string& root);

}  // namespace mailshard
