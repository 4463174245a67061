// SqliteJournal: the Journal on one SQLite file in WAL mode.
//
// The schema is versioned with PRAGMA user_version and migrated forward only;
// a file with a newer schema than this build knows is refused, never touched.
// docs/journal.md describes the tables.
//
// Thread-safety: one instance per thread. Several processes may share the
// file (SQLite locking; a 10 s busy timeout).
#pragma once

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/journal.h"
#include "util/fs.h"

struct sqlite3;

namespace mailshard {

class SqliteJournal final : public Journal {
 public:
  // The schema version this build writes.
  static constexpr int kSchemaVersion = 2;

  // Opens (creating the file and its directory if needed) and migrates.
  // Errors: kPermission / kNotFound when the file cannot be opened,
  // kUnsupported for a newer schema, kCorrupt for a damaged file.
  // Creates the file with `access` (private by default), or narrows an
  // existing one's mode to it.
  static Result<std::unique_ptr<SqliteJournal>> open(const std::string& path, Clock& clock, FileAccess access = {});
  ~SqliteJournal() override;

  int schema_version() const { return version_; }

  Result<int64_t> begin_run(const std::string& kind, const std::string& args_json) override;
  Status finish_run(int64_t run_id, const std::string& status, const std::string& summary_json) override;
  Result<std::vector<RunRecord>> list_runs(int limit) override;
  Result<std::vector<RunRecord>> running_runs(const std::string& kind) override;
  Status request_stop(int64_t run_id) override;
  Result<bool> stop_requested(int64_t run_id) override;
  // flock() on "<journal path>.locks/run-<kind>.lock"; the holder is written
  // into that file for the conflict message.
  Result<std::unique_ptr<RunLease>> lease_run(const std::string& kind) override;
  Result<std::unique_ptr<RunLease>> lease_run_shared(const std::string& kind) override;
  Result<int64_t> record_snapshot(int64_t run_id, int64_t taken_at_ms, const std::string& path,
                                  const std::string& summary_json) override;
  Result<int64_t> store_plan(const PlanRecord& plan) override;
  Result<PlanRecord> find_plan(const std::string& hash) override;
  Status set_plan_status(int64_t plan_id, const std::string& status) override;
  Status approve_plan(int64_t plan_id, const std::string& by) override;
  Result<std::vector<PlanRecord>> list_plans(int limit) override;
  Result<std::optional<PlanRecord>> latest_plan(bool approved_only) override;
  Result<int64_t> claim_move(const MoveRecord& move) override;
  Result<SlotClaim> claim_move_in_slots(const MoveRecord& move, const SlotLimits& limits) override;
  Status update_move(const MoveRecord& move) override;
  Result<MoveRecord> get_move(int64_t id) override;
  Result<std::vector<MoveRecord>> list_moves(const MoveFilter& filter) override;
  // flock() on "<journal path>.locks/move-<id>.lock".
  Result<std::unique_ptr<MoveLease>> lease_move(int64_t move_id) override;
  Status log_step(int64_t move_id, const std::string& step, StepPhase phase, const std::string& detail) override;
  Result<std::vector<StepRecord>> list_steps(int64_t move_id) override;
  Status put_blob(int64_t move_id, const std::string& key, const std::string& value) override;
  Result<std::optional<std::string>> get_blob(int64_t move_id, const std::string& key) override;

 private:
  SqliteJournal(sqlite3* db, std::string path, Clock& clock) : db_(db), path_(std::move(path)), clock_(clock) {}
  Status migrate();
  Result<std::unique_ptr<RunLease>> take_run_lease(const std::string& kind, bool shared);
  Status exec(const char* sql);
  Error db_error(std::string_view what) const;

  sqlite3* db_;
  std::string path_;
  Clock& clock_;
  int version_ = 0;
};

}  // namespace mailshard
