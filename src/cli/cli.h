// The command-line front end: global options, the shared per-invocation
// context, and one register_* function per subcommand (one file each).
//
// Exit codes (docs/operations.md): 0 ok, 1 a move/plan/check failed,
// 2 usage or config error, 130 interrupted.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "config/config_loader.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/journal.h"
#include "util/result.h"

namespace mailshard::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

// Maps an error to the exit code a script can use.
int exit_code_for(const Error& e);

struct GlobalOptions {
  std::string config_path;   // -c; else $MAILSHARD_CONFIG; else /etc/mailshard/mailshard.toml
  std::string log_level = "info";
  bool json = false;         // machine-readable output on stdout
  bool syslog = false;
};

// Per-invocation state shared by the commands: lazily loaded config and
// journal, the clock, the environment.
class Context {
 public:
  GlobalOptions global;
  EnvLookup env = process_env();

  Clock& clock() { return clock_; }
  // Loads the config once. Errors are kInvalidInput (exit 2).
  Result<const Config*> config();
  // Opens the journal named in the config once.
  Result<Journal*> journal();

 private:
  SystemClock clock_;
  std::unique_ptr<Config> config_;
  std::unique_ptr<Journal> journal_;
};

// A registered subcommand: its CLI11 node and what to run when it was chosen.
// run returns the exit code, or an error that main prints as one line.
struct Command {
  CLI::App* app = nullptr;
  std::function<Result<int>()> run;
};

// Adds a subcommand that says "not implemented yet" and exits 2.
Command add_stub_command(CLI::App& root, const std::string& name, const std::string& description);

Command register_config(CLI::App& root, Context& ctx);
Command register_inventory(CLI::App& root, Context& ctx);
Command register_plan(CLI::App& root, Context& ctx);
Command register_move(CLI::App& root, Context& ctx);
Command register_rebalance(CLI::App& root, Context& ctx);
Command register_status(CLI::App& root, Context& ctx);
Command register_resume(CLI::App& root, Context& ctx);
Command register_abort(CLI::App& root, Context& ctx);
Command register_verify(CLI::App& root, Context& ctx);
Command register_purge(CLI::App& root, Context& ctx);
Command register_sync(CLI::App& root, Context& ctx);
Command register_agent(CLI::App& root, Context& ctx);
Command register_auth_http(CLI::App& root, Context& ctx);

// Entry point used by main().
int run_main(int argc, char** argv);

}  // namespace mailshard::cli
