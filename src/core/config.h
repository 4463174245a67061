// What the operator configured: the typed form of mailshard.toml. The TOML
// loader lives in src/config/; backends take the section they need from here,
// so they never depend on the loader.
//
// Every attribute name is configurable (real directories differ). Secrets are
// held as Secret and never printed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/secret.h"

namespace mailshard {

// Exactly one of `path` (SQLite, the default) and `url` (PostgreSQL, for
// several controllers sharing one journal).
struct JournalConfig {
  std::string path = "/var/lib/mailshard/journal.sqlite";  // "" when url is set
  std::string url;                  // "postgresql://user@host:port/db"; never holds a password
  std::string password_file;        // or $MAILSHARD_JOURNAL_PASSWORD, or libpq's PGPASSFILE
  Secret password;                  // loaded from the file or the environment
  // How far this host's clock may be from the database's (PostgreSQL only):
  // beyond it mailshard refuses to start, since lease and step times from two
  // controllers would no longer compare.
  int64_t max_clock_skew_ms = 5'000;
};

struct LdapConfig {
  std::string uri;                  // ldap://, ldaps:// or ldapi://
  std::string bind_dn;              // "" = anonymous
  std::string bind_password_file;   // or $MAILSHARD_LDAP_PASSWORD
  Secret bind_password;             // loaded from the file or the environment
  std::string base_dn;
  std::string filter = "(objectClass=*)";
  std::string user_attribute = "mail";
  std::string host_attribute = "mailHost";
  std::string home_attribute = "mailMessageStore";
  std::string activity_attribute;   // optional per-user load figure; "" = none
  bool starttls = false;
  std::string ca_file;              // CA bundle for ldaps/StartTLS; "" = system default
  int64_t timeout_ms = 10'000;      // per operation and for connecting
  int page_size = 500;              // paged-results page size (slapd's default size limit)
  int line = 0;                     // where [ldap] starts in the config file
};

enum class TransportKind { kLocal, kAgent };
// How a move's file contents reach this server when it is the destination.
enum class PeerTransport {
  kAuto,           // direct when the source has a peer_command and both are agents, else via the controller
  kDirect,         // this server's agent pulls from the source's (the source must have peer_command)
  kViaController,  // through the controller's process
};

struct ServerConfig {
  std::string name;                 // the host attribute value
  std::string mail_root;            // absolute path on that server
  int64_t capacity_bytes = 0;       // 0 = from metrics or statvfs
  std::string metrics_url;          // node_exporter /metrics; "" = statvfs(mail_root)
  std::string doveadm_url;          // doveadm HTTP API base, e.g. http://host:8080/doveadm/v1
  std::string ca_file;              // CA bundle for https metrics_url/doveadm_url; "" = the system CAs
  std::string doveadm_user = "doveadm";
  std::string doveadm_password_file;  // or $MAILSHARD_DOVEADM_PASSWORD
  Secret doveadm_password;
  TransportKind transport = TransportKind::kLocal;
  std::string agent_command;        // e.g. "ssh -T store1 mailshard agent --stdio --root /srv/mail"
  // How another server's agent reaches this one for the direct data path
  // (run on that server), e.g. "ssh -T store1 mailshard agent --stdio --root
  // /srv/mail"; "" = no direct copies from this server.
  std::string peer_command;
  PeerTransport peer_transport = PeerTransport::kAuto;
  std::string server_class = "std";
  bool draining = false;
  double load_capacity = 0;         // 0 = number of CPUs reported by metrics, else 1
  // Moves at once with this server as the source / as the destination. The
  // nightly run halves them while the server is over its load limits.
  int max_moves_out = 2;
  int max_moves_in = 2;
  // (The older key max_concurrent_moves sets both.)
  int sync_streams = 2;             // parallel copy streams one sync opens here (agent processes / threads)
  // Where a proxy sends this server's users (`mailshard auth-http` answers
  // nginx with them): "IP:PORT" or "[IPv6]:PORT"; "" = not served.
  std::string imap_address;
  std::string pop3_address;
  // Where and in which format the users' mail is (core/mail_location.h):
  // "maildir:~/Maildir" (Dovecot), "courier:~/Maildir" (Courier-IMAP); ""
  // = not said (Dovecot when doveadm_url is set, else read from the files).
  std::string mail_location;
  // [router] method = "director": servers with the same storage_group are
  // director backends over one mail root (NFS, a cluster filesystem), so a
  // move between them is a `doveadm director move`, no copy. "" = storage of
  // its own. director_host is the IP the director knows this backend by (an
  // entry of its director_mail_servers).
  std::string storage_group;
  std::string director_host;
  int line = 0;
};

enum class FreezeMethod { kLdapAttribute, kHttp, kCommand, kNone };

struct FreezeConfig {
  FreezeMethod method = FreezeMethod::kLdapAttribute;
  std::string attribute = "mailAccountStatus";
  std::string frozen_value = "frozen";
  std::string active_value = "active";
  int64_t max_duration_ms = 10 * 60'000;  // a freeze always expires
  // ldap-attribute: write the deadline into the value ("frozen;until=
  // 20261205T013000Z"), so routers let the user in after it by themselves.
  bool until_in_value = false;
  // ldap-attribute: write the move that froze the user into the value
  // ("frozen;move=42.9f3a1c2b"), so a mailshard never refreshes or lifts a
  // freeze another move (another controller's) holds. Every router must treat
  // a value starting with "frozen;" as frozen.
  bool owner_in_value = true;
  std::string url;                  // http: POST {"user","action","until"} here
  std::string token_file;           // http: bearer token file, or $MAILSHARD_FREEZE_TOKEN
  Secret token;
  // command: argv of one program, run without a shell as
  //   <command...> freeze USER EXPIRY_EPOCH_SECONDS   and   <command...> thaw USER
  std::vector<std::string> command;
  int line = 0;
};

// [thaw]: a hook run after every successful thaw (move, rollback, resume, the
// freeze guard), e.g. `postqueue -f` so an MTA retries the mail it deferred
// while the user was frozen. Its failure is logged; the move goes on.
struct ThawConfig {
  std::vector<std::string> command;  // argv, no shell; "{user}" in an argument becomes the user; empty = none
  int64_t timeout_ms = 30'000;       // the hook is killed after this long
  int line = 0;
};

enum class KickMethod { kDoveadm, kCommand, kNone };

struct KickConfig {
  KickMethod method = KickMethod::kDoveadm;
  std::vector<std::string> command;  // command: argv; run as <command...> USER SERVER
  int64_t wait_ms = 30'000;          // bound on waiting for sessions and tmp/ to drain
  int line = 0;
};

// [router]: what routes logins to the servers. "mailhost" (the default): a
// proxy that reads mailHost (nginx auth_http, a Dovecot proxy, perdition), so
// a move copies and flips mailHost. "director": a Dovecot director ring in
// front of backends that share storage (docs/operations.md, "Dovecot director").
enum class RouterMethod { kMailHost, kDirector };

struct RouterConfig {
  RouterMethod method = RouterMethod::kMailHost;
  // director: the doveadm HTTP API of one director of the ring, e.g.
  // http://director1:8080/doveadm/v1 (directorStatus, directorMove, directorKick).
  std::string director_url;
  std::string director_user = "doveadm";
  std::string director_password_file;  // or $MAILSHARD_DIRECTOR_PASSWORD
  Secret director_password;
  std::string ca_file;                 // CA bundle for an https director_url; "" = the system CAs
  int64_t timeout_ms = 10'000;         // per doveadm request to the director
  int line = 0;
};

enum class SizeSource { kScan, kMaildirsize, kDoveadm };

struct InventoryConfig {
  SizeSource size_source = SizeSource::kScan;
  int threads = 4;                   // parallel mailbox scans
  int64_t metrics_timeout_ms = 5'000;
  int metrics_retries = 2;
  int line = 0;
};

struct MoveConfig {
  int precopy_max_passes = 5;
  int64_t precopy_threshold_bytes = 8ll << 20;  // stop warm passes below this
  int64_t headroom_bytes = 1ll << 30;           // free space kept on the destination
  int64_t max_clock_skew_ms = 1'000;            // Maildir names and caches depend on clocks
  int64_t grace_period_ms = 7ll * 86'400'000;   // source copy kept this long before purge
  // After the thaw: sweep, wait this long, sweep again (repeated while a
  // round finds mail, at most 3 rounds). Catches an MTA that looked up the
  // old host just before the flip and delivers there just after the first
  // sweep. 0 = one sweep only. Later stragglers wait for purge's last sweep.
  int64_t sweep_settle_ms = 2'000;
  int64_t bwlimit_bytes_per_s = 0;              // 0 = unlimited
  int line = 0;
};

struct PlanConfig {
  double band = 0.05;
  double hard_cap = 0.85;
  int64_t min_free_bytes = 0;
  double load_band = 0.20;             // load stays within mean x (1 + load_band)
  // Per-night budgets; 0 = unlimited.
  int64_t max_bytes = 0;
  int64_t max_moves = 0;
  int64_t max_moves_per_server = 0;
  int64_t max_move_bytes = 0;          // larger mailboxes never move
  int nights = 1;                      // a plan may span this many nights
  int line = 0;
};

// The nightly `mailshard rebalance`: which plan it may run, and the limits it
// watches while it runs.
struct RebalanceConfig {
  // Run only a plan someone approved (`mailshard plan approve`), never one
  // computed on the spot.
  bool require_approval = false;
  int64_t max_plan_age_ms = 36ll * 3'600'000;  // an older plan is refused: the fleet has changed since
  // A planned move is skipped when the mailbox has grown or shrunk by more
  // than this fraction of its planned size.
  double max_size_drift = 0.2;
  int64_t sample_interval_ms = 30'000;  // how often each busy server's load is read
  // Above either limit a server's move slots halve (down to a pause); below,
  // one comes back per sample_interval.
  double max_load_per_cpu = 1.5;        // node_load1 / CPUs
  double max_disk_busy = 0.8;           // fraction of time the mail root's disk is busy
  int max_server_failures = 3;          // a server whose moves fail this often is skipped; 0 = never
  // Worker threads of a run (each with one move setup: journal, LDAP,
  // transports); each carries its share of the moves in flight, a step at a
  // time. 0 = one thread per move in flight.
  int threads = 16;
  std::string metrics_file;             // node_exporter textfile written after the run; "" = none
  std::string report_dir;               // where the run's report is written; "" = none
  int line = 0;
};

// [auth_http]: `mailshard auth-http`, the nginx mail auth_http responder.
struct AuthHttpConfig {
  std::string listen = "127.0.0.1:9143";  // IP:PORT
  int workers = 16;                       // requests answered at once (each holds two LDAP connections)
  // A login is the value of any of these attributes; empty = [ldap] user_attribute.
  std::vector<std::string> login_attributes;
  // Values of the freeze attribute that mean "account disabled" (answered
  // with [CONTACTADMIN], no retry); none by default.
  std::vector<std::string> disabled_values;
  int64_t auth_wait_ms = 3'000;           // Auth-Wait of a refusal: nginx waits, the client may retry
  // When set, every request must carry `X-Auth-Key: <secret>` (nginx:
  // auth_http_header X-Auth-Key "<secret>"), so only the proxy may ask.
  std::string shared_secret_file;
  Secret shared_secret;
  int line = 0;
};

struct SecurityConfig {
  // Secret files (*_file) readable by their group are refused unless this is
  // set (files readable by others are always refused), as ssh does.
  bool allow_group_readable_secrets = false;
  // The group that may read what mailshard writes for itself (the journal,
  // plans, snapshots, sync state): those files are then 0640 in this group
  // instead of 0600. Empty: private. Resolved to file_gid when loaded.
  std::string file_group;
  int file_gid = -1;
  int line = 0;
  FileAccess private_files() const { return file_gid >= 0 ? FileAccess(0640, file_gid) : FileAccess(0600); }
};

struct Config {
  std::string path;  // the file it was read from
  JournalConfig journal;
  LdapConfig ldap;
  std::vector<ServerConfig> servers;
  FreezeConfig freeze;
  ThawConfig thaw;
  KickConfig kick;
  RouterConfig router;
  InventoryConfig inventory;
  MoveConfig move;
  PlanConfig plan;
  RebalanceConfig rebalance;
  AuthHttpConfig auth_http;
  SecurityConfig security;

  // nullptr if no server has this name.
  const ServerConfig* find_server(const std::string& name) const {
    for (const auto& s : servers)
      if (s.name == name) return &s;
    return nullptr;
  }

  // Whether a move from `from` to `to` is a director move: [router] method =
  // "director" and both servers are in the same (non-empty) storage group.
  bool same_storage_group(const std::string& from, const std::string& to) const {
    if (router.method != RouterMethod::kDirector) return false;
    const ServerConfig* a = find_server(from);
    const ServerConfig* b = find_server(to);
    return a && b && !a->storage_group.empty() && a->storage_group == b->storage_group;
  }
};

}  // namespace mailshard
