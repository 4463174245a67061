// MoveProgress: what a move's steps have learned and done so far, the part
// of its state that resume, abort and purge need back and that `status
// --json` shows as "detail". The runner journals it with the move record
// (MoveRecord::detail_json) at every save.
//
// Its JSON is the format of that journal column: to_json() writes it and
// parse() reads it, here and nowhere else. The keys are those the untyped
// JSON bag that preceded this record used, so journals written by earlier
// mailshard versions resume. Unknown keys are ignored.
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "movers/sync_engine.h"
#include "util/result.h"

namespace mailshard {

// A director move (movers/director_move.h): the user changes backends inside
// one storage group and nothing is copied. Journaled as "kind": "director".
struct DirectorProgress {
  std::string storage_group;
  std::string from_host, to_host;      // the backends' director_host
  std::optional<std::string> before;   // where the director had the user at preflight ("" = nowhere)
  std::optional<std::string> hashed;   // where its hash would put the user
  std::optional<bool> moved;           // the director move ran (false: the user was already there)
  std::optional<int64_t> move_ms;      // how long the director took
  bool operator==(const DirectorProgress&) const = default;
};

// What the quota_recalc step did at the destination.
enum class QuotaRecalc : uint8_t {
  kDone,     // doveadm quota recalc succeeded
  kSkipped,  // the destination has no doveadm_url, or no quota plugin
  kFailed,   // it failed; logged as a warning, the move completed (quota is advisory)
};
std::string_view quota_recalc_name(QuotaRecalc q);

// A tree of the user's mail outside the home (mail_location INDEX=,
// CONTROL=): copied, verified, staged and renamed into place like the home,
// each in its own place on each server. Journaled at preflight, so resume
// and rollback work from what the move decided, not from today's config.
struct ExtraTree {
  std::string name;           // "index", "control", "index+control", "alt", "inbox"
  std::string src;            // relative to the source mail root
  std::string dst;            // relative to the destination mail root
  // src and dst name one file, not a directory (an mbox spool INBOX): the
  // engine copies it into its staging directory, which the flip empties
  // (tree_file_staging), and nothing but the file itself is ever removed.
  bool file = false;
  bool empty_source = false;  // not on the source (yet): final_sync re-checks
  bool renamed = false;       // its staging copy has taken its place (flip)
  std::optional<int64_t> files_copied;      // by precopy and the final pass
  std::optional<int64_t> uidlists_checked;  // by verify
  bool operator==(const ExtraTree&) const = default;
};

struct MoveProgress {
  // preflight
  std::string src_home;                  // the home relative to both mail roots ("example.org/alice")
  std::vector<ExtraTree> trees;          // the trees outside the home, in mail_location's order
  // Each server's mail_location as configured when the move began ("": none
  // set); absent in moves journaled before it was. Later steps and resume
  // read the mail as it was laid out then, not as an edited config says.
  std::optional<std::string> src_location, dst_location;
  std::optional<std::string> new_home;   // the home attribute after the flip (absolute homes only)
  bool empty_source = false;             // no mailbox at the source: nothing to copy (final_sync re-checks)
  std::optional<int64_t> clock_skew_ms;  // source clock minus destination clock, once preflight checked them
  // preflight, when the destination has doveadm and a quota: its limits for
  // the user (absent: unlimited or not checked) and what the check counted
  std::optional<int64_t> quota_limit_kib;
  std::optional<int64_t> quota_message_limit;
  std::optional<int64_t> quota_need_bytes;  // the messages' sizes (virtual sizes where the names carry them)
  std::optional<int64_t> quota_need_messages;
  // precopy
  std::vector<PassStats> precopy;  // one per warm pass of the last precopy step, in order
  // freeze
  bool freeze_requested = false;  // the freeze backend was asked to freeze: a rollback thaws
  // Who the freeze names as its holder ("42.9f3a1c2b": move id and a random
  // part, core/freeze_value.h), chosen and journaled before the first freeze;
  // "" in moves journaled before owners were written.
  std::string freeze_owner;
  // preflight decides, convert does: "courier-to-dovecot" (movers/courier_conversion.h)
  std::optional<std::string> convert;
  std::optional<std::string> convert_maildir;  // the Maildir inside the home ("Maildir", "" = the home)
  std::optional<int64_t> converted_folders;    // folders whose UIDs and keywords verify compared
  // final_sync, verify
  std::optional<PassStats> final_pass;
  std::optional<VerifyReport> verify;
  std::optional<int64_t> doveadm_mailboxes_compared;  // doveadm's status of the source matched the copy
  // sdbox/mdbox: messages (UID + GUID) the destination's doveadm listed as the
  // source's did, with the copy in place, before the LDAP modify (flip)
  std::optional<int64_t> doveadm_messages_compared;
  // flip
  bool renamed = false;  // the copy has taken the home path on the destination
  // sweep, purge
  std::optional<int64_t> swept;        // late deliveries copied by every sweep step so far
  std::optional<int64_t> purge_swept;  // late deliveries copied by purge's last sweep
  // quota_recalc
  std::optional<QuotaRecalc> quota_recalc;
  std::optional<std::string> quota_recalc_error;  // why it was skipped or failed
  std::optional<int64_t> quota_storage_kib;       // the destination's STORAGE after the recalc
  std::optional<int64_t> quota_messages;          // and its MESSAGE count
  // a director move instead of a copy
  std::optional<DirectorProgress> director;

  bool operator==(const MoveProgress&) const = default;

  // The record as the journal stores it: a JSON object. A key is written
  // only for what has happened (no "renamed" before the flip renamed), except
  // src_home and empty_source, which preflight always sets. Phase timings of
  // pass stats come back from parse() ordered by phase name.
  std::string to_json() const;
  nlohmann::json to_json_object() const;

  // Reads a record that to_json() (or an earlier mailshard) wrote. An empty
  // text is an empty record. kCorrupt when the text is not a JSON object. A
  // field of the wrong type (or out of range) is left at its default and its
  // key path ("renamed", "precopy[1].bytes_sent") is appended to *ignored;
  // never throws.
  static Result<MoveProgress> parse(std::string_view text, std::vector<std::string>* ignored = nullptr);
};

}  // namespace mailshard
