// The inventory: one pass over the directory, the servers' metrics and the
// mailboxes, producing the fleet report that `mailshard inventory` prints and
// the Snapshot that the planner reads (`plan` and `rebalance` call this too).
//
// What a run does, in order:
//  1. fetch every server's disk and load (MetricsSource), in parallel;
//  2. check each mail root can be opened (when sizes come from the disk):
//     here for a local root, by starting the agent for a server behind it;
//  3. stream the directory's accounts (anomalies are skipped and reported;
//     a user name seen twice keeps its first entry);
//  4. size every mailbox on a bounded thread pool: per user with the
//     MailboxSizer, except size_source = "scan" on a server behind the
//     agent: one SIZE request per kSizeChunk homes over one agent channel
//     (Transport::size_homes), the same scanner run on that server;
//  5. add up per server and per class, and build the Snapshot.
// A server whose metrics or mail root fail is marked failed, reported, and
// left out of the Snapshot with its users (it is excluded from planning). A
// user whose mailbox cannot be sized stays in the Snapshot, pinned, with
// size 0, so nothing plans to move it. Only a directory failure (or Ctrl-C)
// makes the whole run fail.
//
// Thread-safety: take_inventory may run concurrently with itself; the
// backends passed in must tolerate calls from `config.inventory.threads`
// threads (all of ours do).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/directory.h"
#include "core/mailbox_sizer.h"
#include "core/metrics_source.h"
#include "core/snapshot.h"
#include "core/transport.h"
#include "util/result.h"

namespace mailshard {

// Classes the benchmark tools (gen_fleet.py / metrics.py) know; other class
// names work in mailshard but such a snapshot is not readable by them.
inline constexpr const char* kBenchmarkClasses[] = {"std", "ssd"};

// Homes per SIZE request to an agent: a request is a few hundred KB, and
// its answer streams back in frames of 256 homes.
inline constexpr size_t kSizeChunk = 5000;

// Starts the transport of a server behind the agent (for size_source =
// "scan"); the configured one is make_server_transport(server, 1).
using TransportOpener = std::function<Result<std::unique_ptr<Transport>>(const ServerConfig& server)>;

struct InventoryOptions {
  bool size_mailboxes = true;  // false: directory + metrics only; users get size 0
  bool progress = true;        // draw progress on a TTY
};

struct ServerReport {
  std::string name;
  std::string server_class;
  bool draining = false;
  bool failed = false;
  std::string error;            // why it failed; "" otherwise
  ServerMetrics metrics;        // raw figures as the source reported them
  bool capacity_overridden = false;  // capacity_bytes set in the config
  int64_t capacity_bytes = 0;   // override, else the filesystem size
  int64_t used_bytes = 0;       // fs size - avail; with an override: the mail bytes
  int64_t free_bytes = 0;       // capacity - used (never more than the filesystem has available)
  int64_t other_used_bytes = 0; // used - mail bytes, >= 0 (what planning cannot move)
  double utilisation = 0;       // used / capacity
  double load_capacity = 1;     // config, else the CPUs the metrics report, else 1
  int64_t users = 0;
  int64_t mail_bytes = 0;
  int64_t messages = 0;         // -1 when the size source does not count messages
  int64_t user_errors = 0;
  int32_t snapshot_id = -1;     // index in Inventory::snapshot.servers; -1 when failed
};

struct UserReport {
  std::string user;
  std::string dn;
  std::string home_rel;
  int32_t server = -1;      // index into Inventory::servers
  std::string status;       // freeze attribute value
  double activity = 0;
  bool exists = true;       // false: the home does not exist yet (0 bytes)
  int64_t size_bytes = 0;
  int64_t messages = -1;    // -1 = unknown
  std::string error;        // "" = sized; else why not (the user is pinned in the snapshot)
};

struct ClassSummary {
  std::string name;
  int servers = 0;              // servers that did not fail
  double mean_utilisation = 0;  // sum(used) / sum(capacity of non-draining servers)
  double stddev_utilisation = 0;  // population std. deviation over non-draining servers
};

struct Inventory {
  int64_t taken_at_ms = 0;
  int64_t elapsed_ms = 0;
  std::string size_source;      // "scan", "maildirsize", "doveadm" or "none"
  std::vector<ServerReport> servers;  // config order
  std::vector<UserReport> users;      // directory order
  std::vector<DirectoryAnomaly> anomalies;
  std::vector<std::string> notes;     // one line each
  std::vector<ClassSummary> classes;  // sorted by name
  Snapshot snapshot;

  int failed_servers() const;
  int64_t user_errors() const;
  // No failed server and no user error (anomalies do not count: they are data problems).
  bool complete() const { return failed_servers() == 0 && user_errors() == 0; }
};

// The pass described above, with the given backends.
// Errors: the directory's (kUnavailable, kPermission, kTimeout, kInvalidInput)
// with context "LDAP", and kInterrupted after Ctrl-C.
// `open_agent` starts the transport of each server behind the agent when
// sizes come from a scan; without it such a server fails ("no agent
// transport to size mailboxes over").
Result<Inventory> take_inventory(const Config& config, Directory& directory, MetricsSource& metrics,
                                 MailboxSizer& sizer, Clock& clock, const InventoryOptions& options,
                                 const TransportOpener& open_agent = nullptr);

// Same with the configured backends: LdapDirectory, ServerMetricsSource,
// the sizer named by [inventory] size_source and the servers' agent commands.
Result<Inventory> take_inventory(const Config& config, Clock& clock, const InventoryOptions& options);

// The JSON document extra to meta.json for a saved snapshot: how it was taken
// (config, size source, failures, anomalies).
std::string snapshot_meta_json(const Inventory& inventory, const Config& config);

}  // namespace mailshard
