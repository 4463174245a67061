#include "cli/cli.h"

#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "journal/open_journal.h"
#include "util/interrupt.h"
#include "util/log.h"

namespace mailshard::cli {

int exit_code_for(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kInvalidInput: return kExitUsage;
    case ErrorCode::kInterrupted: return kExitInterrupted;
    default: return kExitFailure;
  }
}

Result<const Config*> Context::config() {
  if (!config_) {
    std::string path = resolve_config_path(global.config_path, env);
    auto c = load_config(path, env);
    if (!c.ok()) return std::move(c).error();
    config_ = std::make_unique<Config>(std::move(*c));
  }
  return static_cast<const Config*>(config_.get());
}

Result<Journal*> Context::journal() {
  if (!journal_) {
    const Config* c = MS_TRY(config());
    auto j = open_journal(c->journal, clock_, c->security.private_files());
    if (!j.ok()) return std::move(j).error();
    journal_ = std::move(*j);
  }
  return journal_.get();
}

Command add_stub_command(CLI::App& root, const std::string& name, const std::string& description) {
  CLI::App* sub = root.add_subcommand(name, description + " (not implemented yet)");
  sub->allow_extras();
  return {sub, [name]() -> Result<int> {
            fmt::print(stderr, "mailshard: {}: not implemented yet\n", name);
            return kExitUsage;
          }};
}

int run_main(int argc, char** argv) {
  Context ctx;
  CLI::App app{
      "mailshard moves mailboxes between mail storage servers and rebalances the fleet.\n"
      "Typical use: 'mailshard inventory' to see the fleet, 'mailshard plan' for a dry-run\n"
      "report, 'mailshard move USER --to SERVER' for one user, 'mailshard rebalance' nightly.",
      "mailshard"};
  app.set_version_flag("--version", std::string("mailshard ") + "0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("-c,--config", ctx.global.config_path,
                 "config file (default: $MAILSHARD_CONFIG, else /etc/mailshard/mailshard.toml)");
  app.add_option("--log-level", ctx.global.log_level, "trace, debug, info, warn, error or off (default info)");
  app.add_flag("--json", ctx.global.json, "machine-readable JSON on stdout");
  app.add_flag("--syslog", ctx.global.syslog, "log to syslog (facility mail) instead of stderr");
  app.footer(
      "Exit codes: 0 ok, 1 failure, 2 usage or config error, 130 interrupted.\n"
      "Run 'mailshard COMMAND --help' for the options of a command.");

  std::vector<Command> commands = {
      register_config(app, ctx),  register_inventory(app, ctx), register_plan(app, ctx),
      register_move(app, ctx),    register_rebalance(app, ctx), register_status(app, ctx),
      register_resume(app, ctx),  register_abort(app, ctx),     register_verify(app, ctx),
      register_purge(app, ctx),   register_sync(app, ctx),      register_agent(app, ctx),
      register_auth_http(app, ctx),
  };

  if (argc <= 1) {
    std::cout << app.help();
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << (app.get_subcommands().empty() ? app.help() : app.get_subcommands().back()->help());
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    std::cout << "mailshard 0.1.0\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "mailshard: {}\nRun 'mailshard --help' for usage.\n", e.what());
    return kExitUsage;
  }

  LogOptions log;
  log.level = ctx.global.log_level;
  log.target = ctx.global.syslog ? LogTarget::kSyslog : LogTarget::kStderr;
  if (auto st = init_logging(log); !st.ok()) {
    fmt::print(stderr, "mailshard: --log-level: {}\n", st.error().message());
    return kExitUsage;
  }
  install_interrupt_handlers();

  for (auto& cmd : commands) {
    if (!cmd.app->parsed()) continue;
    auto rc = cmd.run();
    if (!rc.ok()) {
      fmt::print(stderr, "mailshard: {}\n", rc.error().message());
      if (ctx.global.syslog) spdlog::error("{}", rc.error().message());
      return exit_code_for(rc.error());
    }
    if (interrupted() && *rc == kExitOk) return kExitInterrupted;
    return *rc;
  }
  std::cout << app.help();
  return kExitUsage;
}

}  // namespace mailshard::cli
