// Builds a MoveRunner from the config: the one place where the move's
// concrete backends are chosen (LDAP directory, freeze and kick backends from
// their tables, doveadm status and quota, server transports, the journal).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "cli/cli.h"
#include "core/transport.h"
#include "core/director_router.h"
#include "doveadm/doveadm_fleet.h"
#include "movers/director_move.h"
#include "movers/move_runner.h"

namespace mailshard::cli {

// The CLI's MoveEnvironment: transports opened once per server, progress as
// log lines, the freeze guard process, and the MAILSHARD_TEST_CRASH_AT hook.
class CliMoveEnvironment final : public MoveEnvironment {
 public:
  CliMoveEnvironment(const Config& config, std::string config_path, bool guard);
  Result<Transport*> transport(const std::string& server) override;
  void arm_freeze_guard(int64_t move_id, int64_t until_ms) override;
  void progress(const std::string& user, const std::string& line) override;
  void step_boundary(const std::string& step, StepPhase phase) override;

 private:
  const Config& config_;
  std::string config_path_;
  bool guard_;
  std::string test_point_, test_action_;
  std::map<std::string, std::unique_ptr<Transport>> transports_;
};

// Everything a move-related command needs, alive for the command's duration.
struct MoveSetup {
  std::unique_ptr<Directory> directory;
  std::unique_ptr<FreezeBackend> freeze;
  std::unique_ptr<SessionKicker> kicker;
  std::unique_ptr<DoveadmFleet> status;  // doveadm per server: mailbox status and quota
  std::unique_ptr<CliMoveEnvironment> env;
  std::unique_ptr<MoveRunner> runner;
  // [router] method = "director": the director and the moves inside a storage group.
  std::unique_ptr<DirectorRouter> director;
  std::unique_ptr<DirectorMove> director_move;

  // A move as the config wants it: under [router] method = "director" a director move (which
  // refuses a destination outside the user's storage group), else the copy move.
  Result<MoveRecord> move(const std::string& user, const std::string& to, const MoveOptions& options);
  // resume / abort of a journaled move, by its kind (director or copy).
  Result<MoveRecord> resume(const MoveRecord& m);
  Result<MoveRecord> abort(const MoveRecord& m);
};

struct MoveSetupOptions {
  bool no_freeze = false;    // use the "none" freeze backend whatever the config says
  bool freeze_guard = true;  // start a guard process after each freeze
};

// Errors: the config's (exit 2), the journal's, LDAP connect/bind errors.
Result<std::unique_ptr<MoveSetup>> make_move_setup(Context& ctx, const MoveSetupOptions& options);

// One line for a move: "move 12 alice@example.org store1 -> store2: done, 45.1 MiB, lockout 0.42s".
std::string describe_move(const MoveRecord& m);
// The JSON object of a move (status --json, move --json).
nlohmann::json move_json(const MoveRecord& m);
// Exit code of a finished move record: 0 done/dry_run ok, 1 otherwise, 130 interrupted.
int exit_code_for_move(const MoveRecord& m);

}  // namespace mailshard::cli
