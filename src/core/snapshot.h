// Snapshot: what the planner knows about the fleet at one instant. Written by
// `mailshard inventory --save DIR`, read by `mailshard plan --snapshot DIR`,
// and exactly the folder format of ../shared/bench/gen_fleet.py (a contract
// with the outside benchmarks):
//   servers.csv  server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining
//   users.csv    user_id,server_id,class,size_bytes,activity,pinned
//   meta.json    ids -> names, when and how the snapshot was taken, and the
//                servers' storage groups (director backends over one mail root)
//
// Users are stored column-wise so 10 M users fit in ~250 MB.
// Thread-safety: a value; read-only sharing is safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/result.h"

namespace mailshard {

struct SnapshotServer {
  std::string name;          // host attribute value; "" for generated fleets (the id is the name)
  std::string server_class;  // tier; users only move inside their class
  int64_t capacity_bytes = 0;
  int64_t other_used_bytes = 0;  // immovable bytes: OS, logs, what is not mail
  double load_capacity = 0;      // e.g. cores; load balance is activity / load_capacity
  bool draining = false;
  // Director backends over one mail root share this name ("" = storage of its
  // own): a move between two of them copies nothing (`doveadm director move`).
  std::string storage_group;
};

struct Snapshot {
  std::vector<SnapshotServer> servers;  // index = server_id

  // Users, column-wise; index = user_id.
  std::vector<int32_t> user_server;
  std::vector<int64_t> user_size;
  std::vector<double> user_activity;
  std::vector<uint8_t> user_pinned;
  std::vector<std::string> user_names;  // empty for generated fleets; else one per user

  // Provenance (meta.json): when (epoch ms, 0 = unknown) and how it was taken.
  int64_t taken_at_ms = 0;
  std::string source;                // "inventory", "gen_fleet.py v1", ...
  std::vector<std::string> notes;    // warnings found while reading (one line each)

  size_t user_count() const { return user_server.size(); }
  void reserve_users(size_t n);
  void add_user(int32_t server, int64_t size, double activity, bool pinned, std::string name = {});
  // Display name of a server / user: its name, or its numeric id.
  std::string server_label(int32_t id) const;
  std::string user_label(int64_t id) const;
};

// Reads a snapshot folder. Errors (kInvalidInput) name the file and line:
//   "users.csv:17: size_bytes '-5' is negative"
//   "users.csv:1: missing column 'activity' (expected user_id,server_id,class,size_bytes,activity,pinned)"
//   "users.csv:9: server_id 12 is not in servers.csv"
// A user whose class differs from its server's class cannot be moved safely:
// it is read as pinned and a note is added ("users.csv:5: user 4 is class
// 'ssd' but server 2 is 'std'; treated as pinned").
Result<Snapshot> read_snapshot(const std::string& dir);

// Writes servers.csv, users.csv and meta.json into dir (created if missing),
// each via temp file + rename. `extra_meta_json` is merged into meta.json
// (a JSON object text, may be empty).
Status write_snapshot(const Snapshot& snapshot, const std::string& dir, const std::string& extra_meta_json = {},
                      FileAccess access = {});

}  // namespace mailshard
