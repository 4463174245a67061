// A client for Dovecot's doveadm HTTP API (doveadm_url, e.g.
// http://store1:8080/doveadm/v1): POSTs a JSON command array
//   [["<command>", {<parameters>}, "<tag>"]]
// with Basic auth and parses the reply
//   [["doveadmResponse", <payload>, "<tag>"]]  or  [["error", {...}, "<tag>"]].
//
// The commands mailshard needs: kick (end a user's sessions before the final
// sync), who, quotaGet (mailbox size, the destination's limits), quotaRecalc
// (after a move) and mailboxStatus (messages,
// UIDVALIDITY, UIDNEXT per mailbox, for verification).
//
// Thread-safety: a DoveadmClient is immutable after construction; its methods
// may be called from several threads at once.
// Blocking: one HTTP round trip per call, bounded by the timeout.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/mailbox_status.h"
#include "util/result.h"
#include "util/secret.h"

namespace mailshard {

struct DoveadmOptions {
  std::string url;                 // the API base; commands are POSTed here
  std::string user = "doveadm";    // Basic auth user
  Secret password;
  std::string ca_file;             // https: the CA bundle to trust ("" = the system CAs)
  int64_t timeout_ms = 10'000;
};

struct DoveadmSession {
  std::string user;
  std::string service;   // "imap", "pop3", ...
  int connections = 0;
  std::vector<std::string> ips;
};

struct DoveadmQuota {
  std::string root;        // quota root name ("User quota")
  int64_t storage_kib = -1;  // STORAGE value in KiB (Dovecot reports kilobytes); -1 = not reported
  int64_t storage_limit_kib = -1;  // -1 = unlimited or not reported
  int64_t messages = -1;
  int64_t message_limit = -1;
};

struct DoveadmMailboxStatus {
  std::string mailbox;  // "INBOX", "Sent", ...
  int64_t messages = -1;
  int64_t uidvalidity = -1;
  int64_t uidnext = -1;
  int64_t vsize = -1;   // virtual size (CRLF), bytes; -1 = not reported
  std::string guid;
};

struct DoveadmKickResult {
  bool had_sessions = false;         // false: doveadm answered exit code 68 (nobody to kick)
  std::vector<std::string> kicked;   // what doveadm listed as kicked, if anything
};

class DoveadmClient {
 public:
  explicit DoveadmClient(DoveadmOptions options);
  // From a [[server]] table: doveadm_url, doveadm_user, doveadm_password.
  // Errors: kInvalidInput when the server has no doveadm_url.
  static Result<DoveadmClient> for_server(const ServerConfig& server, int64_t timeout_ms);

  // Runs one command and returns the doveadmResponse payload.
  // Errors: those of http_request / check_http_status (kUnavailable,
  // kTimeout, kPermission for a 401), and those of parse_doveadm_response.
  Result<nlohmann::json> run(const std::string& command, const nlohmann::json& parameters) const;

  // Ends every session of `user` (the mask is the exact user name).
  // Success also when there was nothing to kick (had_sessions = false).
  // Idempotent.
  Result<DoveadmKickResult> kick(const std::string& user) const;
  // Sessions; `mask` "" = everyone.
  Result<std::vector<DoveadmSession>> who(const std::string& mask = {}) const;
  // Errors: kNotFound (doveadm exit code 67: unknown user).
  Result<std::vector<DoveadmQuota>> quota_get(const std::string& user) const;
  // doveadm quota recalc -u user: recounts the quota from the mail (for
  // Maildir++ quota Dovecot rewrites maildirsize). Idempotent.
  // Errors: as quota_get.
  Status quota_recalc(const std::string& user) const;
  // Status of every mailbox matching `masks` ("*" = all).
  Result<std::vector<DoveadmMailboxStatus>> mailbox_status(const std::string& user,
                                                          const std::vector<std::string>& masks = {"*"}) const;

  // doveadm fetch: `fields` ("mailbox", "uid", "guid", ...) of every message
  // matching `query` (search query words: {"mailbox", "INBOX", "uid",
  // "5:*"}; {"all"} = every message of every mailbox). One JSON object per
  // message, field name -> value.
  Result<std::vector<nlohmann::json>> fetch(const std::string& user, const std::vector<std::string>& fields,
                                            const std::vector<std::string>& query) const;
  // mailboxStatus (guid, messages, uidvalidity, uidnext) of every mailbox,
  // and fetch of mailbox, uid and guid of every message, grouped by mailbox.
  // kCorrupt when a fetched message names a mailbox the status did not list.
  Result<std::vector<MailboxContents>> mailbox_contents(const std::string& user) const;
  // doveadm import: copies the messages matching `query` from the mail
  // storage at `source_location` (read as this server's Dovecot reads it,
  // as the user) into the user's mailboxes of the same names under
  // `dest_parent` ("" = the top). Flags, keywords and INTERNALDATE come
  // along; the messages get new UIDs. Not idempotent: import twice, have
  // twice.
  Status import(const std::string& user, const std::string& source_location, const std::string& dest_parent,
                const std::vector<std::string>& query) const;

  const std::string& url() const { return options_.url; }

 private:
  DoveadmOptions options_;
};

// Parses a reply body and returns the payload of the entry tagged `tag`.
// Errors: kCorrupt (not JSON, not the expected shape, no entry with this
// tag: "doveadm reply: ..."), and for ["error", {...}] entries:
//   exitCode 67 -> kNotFound "unknown user", 68 -> kNotFound "not found",
//   75 -> kUnavailable "temporary failure", 77 -> kPermission,
//   64/65 -> kInvalidInput, other exit codes -> kInternal,
//   a non-exitCode type (e.g. "unknownMethod") -> kInvalidInput.
// Every error message carries the command and the exit code or type:
//   "doveadm quotaGet: exit code 67 (unknown user)".
Result<nlohmann::json> parse_doveadm_response(std::string_view body, std::string_view command, std::string_view tag);

// Payload parsers (exposed for unit tests). kCorrupt on a malformed payload.
Result<std::vector<DoveadmSession>> parse_who(const nlohmann::json& payload);
Result<std::vector<DoveadmQuota>> parse_quota(const nlohmann::json& payload);
Result<std::vector<DoveadmMailboxStatus>> parse_mailbox_status(const nlohmann::json& payload);
// One fetched message ({"uid": "3", "guid": "..."}); kCorrupt without a
// positive uid.
Result<MailboxMessage> parse_fetched_message(const nlohmann::json& o);
// A mailboxStatus payload and a fetch payload (fields mailbox, uid, guid)
// as one list of mailboxes with their messages, ascending UID.
Result<std::vector<MailboxContents>> parse_mailbox_contents(const nlohmann::json& status,
                                                           const std::vector<nlohmann::json>& fetched);

}  // namespace mailshard
