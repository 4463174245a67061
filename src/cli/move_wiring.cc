#include "cli/move_wiring.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "directory/ldap_directory.h"
#include "doveadm/director_client.h"
#include "doveadm/doveadm_fleet.h"
#include "freeze/freeze_table.h"
#include "movers/move_progress.h"
#include "transport/transport_factory.h"
#include "util/duration.h"
#include "util/interrupt.h"
#include "util/strings.h"
#include "util/subprocess.h"

namespace mailshard::cli {

CliMoveEnvironment::CliMoveEnvironment(const Config& config, std::string config_path, bool guard)
    : config_(config), config_path_(std::move(config_path)), guard_(guard) {
  // Test hook (docs/operations.md): MAILSHARD_TEST_AT="<step>.<begin|end>:<action>"
  // with action "kill" (SIGKILL: a crash), "int" (SIGINT: Ctrl-C) or
  // "run:<command>" (run it, no shell, and wait), so the tests can crash,
  // interrupt or disturb a move at every step boundary.
  if (const char* v = std::getenv("MAILSHARD_TEST_AT")) {
    std::string spec = v;
    auto colon = spec.find(':');
    if (colon != std::string::npos) {
      test_point_ = spec.substr(0, colon);
      test_action_ = spec.substr(colon + 1);
    }
  }
}

Result<Transport*> CliMoveEnvironment::transport(const std::string& server) {
  auto it = transports_.find(server);
  if (it != transports_.end()) return it->second.get();
  const ServerConfig* s = config_.find_server(server);
  if (!s) return Error::invalid(fmt::format("unknown server '{}'", server));
  // Parallel copy streams per server: two copy threads plus one for listings
  // and metadata keep the disk busy without starving Dovecot.
  constexpr int kStreamsPerServer = 3;
  auto t = make_server_transport(*s, kStreamsPerServer);
  if (!t.ok()) return std::move(t).error();
  Transport* raw = t->get();
  transports_.emplace(server, std::move(*t));
  return raw;
}

void CliMoveEnvironment::arm_freeze_guard(int64_t move_id, int64_t until_ms) {
  if (!guard_) return;
  // A detached `mailshard resume --move ID --guard-until MS`: if this process
  // dies, the guard finishes or rolls back the move when the freeze expires,
  // so nobody stays frozen. It exits as soon as the move is over.
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    spdlog::warn("cannot start the freeze guard (no /proc/self/exe); 'mailshard resume' must run after a crash");
    return;
  }
  exe[n] = 0;
  std::vector<std::string> argv = {exe, "-c", config_path_, "--log-level", "warn", "resume",
                                   "--move", std::to_string(move_id), "--guard-until", std::to_string(until_ms)};
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    setsid();
    if (fork() != 0) _exit(0);  // the grandchild is reparented: no zombie, no controlling terminal
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(exe, args.data());
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
}

void CliMoveEnvironment::progress(const std::string& user, const std::string& line) {
  spdlog::info("move {}: {}", printable(user), line);
}

void CliMoveEnvironment::step_boundary(const std::string& step, StepPhase phase) {
  if (test_point_.empty() || test_point_ != step + "." + std::string(step_phase_name(phase))) return;
  spdlog::warn("MAILSHARD_TEST_AT: {} at {}", test_action_, test_point_);
  spdlog::default_logger()->flush();
  if (test_action_ == "kill") ::raise(SIGKILL);
  if (test_action_ == "int") ::raise(SIGINT);
  if (starts_with(test_action_, "run:")) {
    auto argv = split_command_line(test_action_.substr(4));
    if (argv.ok() && !argv->empty()) {
      auto r = run_process(*argv, "", 120'000);
      if (!r.ok() || r->exit_code != 0)
        spdlog::warn("MAILSHARD_TEST_AT command failed: {}", r.ok() ? r->err : r.error().message());
    }
  }
}

Result<std::unique_ptr<MoveSetup>> make_move_setup(Context& ctx, const MoveSetupOptions& options) {
  const Config* cfg = MS_TRY(ctx.config());
  Journal* journal = MS_TRY(ctx.journal());
  auto setup = std::make_unique<MoveSetup>();
  auto dir = LdapDirectory::connect(*cfg);
  if (!dir.ok()) return std::move(dir).error();
  setup->directory = std::move(*dir);
  if (options.no_freeze) setup->freeze = std::make_unique<NoFreeze>();
  else setup->freeze = make_freeze_backend(*cfg, *setup->directory);
  setup->kicker = make_session_kicker(*cfg);
  setup->status = std::make_unique<DoveadmFleet>(*cfg);
  setup->env = std::make_unique<CliMoveEnvironment>(*cfg, cfg->path, options.freeze_guard);
  SyncOptions sync;
  sync.bwlimit_bytes_per_s = cfg->move.bwlimit_bytes_per_s;
  MoveDeps deps{*cfg,     *setup->directory, *setup->freeze, *setup->kicker, setup->status.get(),
                *journal, ctx.clock(),       *setup->env,    sync,
                setup->status.get()};
  setup->runner = std::make_unique<MoveRunner>(deps);
  if (cfg->router.method == RouterMethod::kDirector) {
    setup->director = DirectorClient::from_config(cfg->router);
    setup->director_move = std::make_unique<DirectorMove>(
        DirectorMoveDeps{*cfg, *setup->directory, *setup->director, *journal, ctx.clock(), *setup->env});
  }
  return setup;
}

Result<MoveRecord> MoveSetup::move(const std::string& user, const std::string& to, const MoveOptions& options) {
  if (director_move) return director_move->move(user, to, options);
  return runner->move(user, to, options);
}

Result<MoveRecord> MoveSetup::resume(const MoveRecord& m) {
  if (!is_director_move(m)) return runner->resume(m.id);
  if (!director_move)
    return Error::invalid(fmt::format("move {} is a director move, but [router] method is not \"director\"", m.id));
  return director_move->resume(m.id);
}

Result<MoveRecord> MoveSetup::abort(const MoveRecord& m) {
  if (!is_director_move(m)) return runner->abort(m.id);
  if (!director_move)
    return Error::invalid(fmt::format("move {} is a director move, but [router] method is not \"director\"", m.id));
  return director_move->abort(m.id);
}

std::string describe_move(const MoveRecord& m) {
  std::string s = fmt::format("move {} {} {} -> {}: {}", m.id, printable(m.user), m.from_server, m.to_server,
                              move_state_name(m.state));
  if (m.bytes_transferred > 0) s += fmt::format(", {} sent", human_bytes(m.bytes_transferred));
  if (m.lockout_ms >= 0) s += fmt::format(", lockout {}", format_duration_ms(m.lockout_ms));
  if (!m.error.empty()) s += fmt::format(" ({})", m.error);
  return s;
}

nlohmann::json move_json(const MoveRecord& m) {
  nlohmann::json j;
  j["id"] = m.id;
  j["user"] = m.user;
  j["from"] = m.from_server;
  j["to"] = m.to_server;
  j["state"] = move_state_name(m.state);
  j["step"] = m.step;
  j["lockout_ms"] = m.lockout_ms >= 0 ? nlohmann::json(m.lockout_ms) : nlohmann::json(nullptr);
  j["bytes_transferred"] = m.bytes_transferred;
  j["bytes_planned"] = m.bytes_planned;
  j["started_at"] = format_time_ms(m.started_at_ms);
  j["finished_at"] = m.finished_at_ms ? nlohmann::json(format_time_ms(m.finished_at_ms)) : nlohmann::json(nullptr);
  j["frozen_at"] = m.frozen_at_ms ? nlohmann::json(format_time_ms(m.frozen_at_ms)) : nlohmann::json(nullptr);
  j["thawed_at"] = m.thawed_at_ms ? nlohmann::json(format_time_ms(m.thawed_at_ms)) : nlohmann::json(nullptr);
  j["flipped_at"] = m.flipped_at_ms ? nlohmann::json(format_time_ms(m.flipped_at_ms)) : nlohmann::json(nullptr);
  j["error"] = m.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(m.error);
  j["plan_id"] = m.plan_id;
  // The move's progress as the runner reads it back (an unreadable record is
  // left out; a field of the wrong type shows as unset).
  auto progress = MoveProgress::parse(m.detail_json);
  if (progress.ok()) j["detail"] = progress->to_json_object();
  return j;
}

int exit_code_for_move(const MoveRecord& m) {
  if (m.state == MoveState::kDone || m.state == MoveState::kPurged) return kExitOk;
  if (m.state == MoveState::kDryRun) return m.error.empty() ? kExitOk : kExitFailure;
  if (interrupted()) return kExitInterrupted;
  return kExitFailure;
}

}  // namespace mailshard::cli
