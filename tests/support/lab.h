// tests/support/lab.h — the real mail lab (tests/lab/lab.sh), seen from a GoogleTest test.
//
// Integration tests talk to the slapd, Dovecot stores, nginx mail proxy and node exporter that
// `tests/lab/lab.sh start DIR` runs on 127.0.0.1; ctest starts one through the `lab` fixture and
// passes its directory in MAILSHARD_LAB_DIR. This library only drives the lab's own scripts and
// the ldap-utils / coreutils commands; it depends on nothing in src/ (POSIX + GoogleTest +
// nlohmann_json only).
//
// Errors: helpers that return data throw LabError (a std::runtime_error whose what() names the
// command, its exit status and stderr), so a broken lab fails the test loudly instead of
// skipping it. `run` and `run_script` never throw for a failing command: they return its status.
//
// Thread safety: after Lab::get() returned once, every const method may be called from several
// threads (run() blocks SIGPIPE only in the calling thread).
#pragma once

#include <optional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mailshard::testing {

class LabError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a finished command did.
struct RunResult {
  int rc = -1;             // exit status; 128+N if killed by signal N; 127 if exec failed
  std::string out;         // everything it wrote to stdout
  std::string err;         // everything it wrote to stderr
  bool timed_out = false;  // it ran past the timeout and was killed (rc is then 128+9)

  // "rc=3 stderr: ..." for assertion messages.
  std::string describe() const;
};

class Lab {
 public:
  // The lab named by $MAILSHARD_LAB_DIR, read once (its lab.env). Throws LabError, with the
  // command that would start one, if the variable is unset or the directory holds no lab.env:
  // a missing lab is a test failure, never a skip.
  static Lab& get();

  // The lab directory (absolute).
  const std::string& dir() const { return dir_; }

  // A value from DIR/lab.env (e.g. "LDAP_URI", "STORE2_IMAP_PORT"). Throws LabError if absent.
  std::string env(const std::string& key) const;
  // env("<STORE>_<suffix>"), e.g. store_env("store2", "MAIL_ROOT").
  std::string store_env(const std::string& store, const std::string& suffix) const;
  // The store names, from STORES ("store1", "store2", "store3").
  std::vector<std::string> stores() const;

  // Runs argv[0] (PATH lookup, no shell) with stdin_data on its stdin, captures stdout/stderr.
  // After timeout_s seconds the command's process group gets SIGKILL. Never throws for a
  // failing command; only for an empty argv or when fork/pipe fail.
  RunResult run(std::vector<std::string> argv, std::string stdin_data = {}, int timeout_s = 120) const;
  // /usr/bin/python3 <tests/lab>/<script> --lab DIR args... (the lab's python scripts).
  RunResult run_script(const std::string& script, std::vector<std::string> args, int timeout_s = 120) const;

  // deliver.py: COUNT messages to USER over LMTP, each to the store its mailHost names at that
  // moment. Success: every message was accepted (2xx); returns deliver.py's JSON summary
  // ({"delivered": N, "stores": {"store1": N}, "messages": [{"seq","message_id","store"}] ...}).
  nlohmann::json deliver(const std::string& user, int count, const std::string& tag,
                         std::vector<std::string> extra_args = {}) const;

  // imap_state.py: USER's IMAP state via "nginx" (default) or a store name. Success: the login
  // worked and every folder was read; returns {"store": where the session landed, "hash": ...,
  // "folders": {name: {uidvalidity, uidnext, messages, hash[, detail]}}[, "subscriptions"]}.
  // A refused login (e.g. [UNAVAILABLE] while frozen: exit 3) throws; to assert on a refusal,
  // use run_script("imap_state.py", {"--user", user}) and look at rc/err.
  nlohmann::json imap_state(const std::string& user, const std::string& via = "nginx",
                            bool detail = false) const;

  // ldapmodify as the LDAP admin of "dn: DN / changetype: modify / LDIF" where LDIF holds the
  // modifications, e.g. "replace: mailHost\nmailHost: store2\n". A non-empty assertion_filter
  // is sent as a critical RFC 4528 assertion control (-e '!assert=FILTER'), which makes the
  // modify a compare-and-swap. Returns ldapmodify's exit status, which is the LDAP result code:
  // 0 = modified, 122 = assertion failed (the entry no longer matches), 32 = no such entry.
  int ldap_modify_assert(const std::string& dn, const std::string& ldif,
                         const std::string& assertion_filter) const;

  // The first value of ATTR of the mail account whose mail or uid is USER (read as the reader
  // account); nullopt if the entry lacks ATTR. Throws LabError if no such user exists.
  std::optional<std::string> ldap_get(const std::string& user, const std::string& attr) const;
  // The DN of that account. Throws LabError if no such user exists.
  std::string user_dn(const std::string& user) const;

  // lab.sh populate: adds users userNNNNN (FIRST .. FIRST+N-1), mailHost round-robin over the
  // comma-separated STORES (default: all). Returns how many were added (existing ones are
  // skipped and not counted).
  int populate(int n, int first = 1, const std::string& stores = {}) const;
  // A user nobody else uses (a number no test of this process or an earlier run took yet),
  // placed on STORE, from user50000..user69999 (70000 and up are for blocks a test populates
  // itself). Returns its mail address, e.g. "user51234@example.org".
  std::string add_user(const std::string& store) const;

  // fill_mailbox.py: MESSAGES messages, folders, subscriptions, flags/keywords, UID gaps, hard
  // linked copies and a sieve script for USER, through IMAP on VIA (default: its mailHost).
  // Returns fill_mailbox.py's JSON summary. `extra`: more of its options (--leaf-folders).
  nlohmann::json fill_mailbox(const std::string& user, int messages, int seed = 1, const std::string& via = {},
                              const std::vector<std::string>& extra = {}) const;

  // Where USER's home is / would be on STORE: <STORE mail root>/<mailMessageStore>. Whether it
  // exists is not checked.
  std::string home_path(const std::string& store, const std::string& user) const;
  // home_path(...) + "/Maildir".
  std::string maildir_path(const std::string& store, const std::string& user) const;

  // The last decision `mailshard auth-http` logged for login USER (one "key=value ..." line, e.g.
  // "... decision=ok store=store2 port=12143"); empty if there is none.
  std::string last_auth_decision(const std::string& user) const;

 private:
  explicit Lab(std::string dir);
  void check_rc(const RunResult& r, const std::string& what) const;
  nlohmann::json run_json(const std::string& script, std::vector<std::string> args) const;

  std::string dir_;
  std::map<std::string, std::string> env_;
};

// GoogleTest expectations that two imap_state() results show a client the same mailbox: per
// folder UIDVALIDITY, UIDNEXT, message count, the (UID, flags, Message-ID) hash and, when taken
// with detail, every message's uid, flags, INTERNALDATE and size; and the subscriptions.
void expect_same_imap_state(const nlohmann::json& before, const nlohmann::json& after);

}  // namespace mailshard::testing
