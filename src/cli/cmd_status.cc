// mailshard status [USER|MOVE_ID] [--json]: moves with their state, step,
// timings, bytes and lockout.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/move_wiring.h"
#include "util/duration.h"
#include "util/strings.h"

namespace mailshard::cli {

Command register_status(CLI::App& root, Context& ctx) {
  CLI::App* cmd = root.add_subcommand("status", "Show moves: state, step, timings, bytes and lockout");
  struct Args {
    std::string what;
    bool active = false;
    int limit = 50;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("USER_OR_MOVE_ID", a->what, "a user, or a move id; default: the most recent moves");
  cmd->add_flag("--active", a->active, "only moves that are not finished");
  cmd->add_option("--limit", a->limit, "at most this many moves (default 50; 0 = all)");
  return {cmd, [&ctx, a]() -> Result<int> {
            Journal* j = MS_TRY(ctx.journal());
            MoveFilter f;
            f.active_only = a->active;
            f.limit = a->limit;
            if (!a->what.empty()) {
              auto id = parse_int(a->what);
              if (id.ok()) f.id = *id;
              else f.user = a->what;
            }
            auto moves = MS_TRY(j->list_moves(f));
            if (f.id && moves.empty()) return Error::invalid(fmt::format("no move with id {}", *f.id));
            if (ctx.global.json) {
              nlohmann::json out = nlohmann::json::array();
              for (const auto& m : moves) out.push_back(move_json(m));
              fmt::print("{}\n", out.dump(2));
              return kExitOk;
            }
            if (moves.empty()) {
              fmt::print("no moves{}\n", a->what.empty() ? "" : " for " + a->what);
              return kExitOk;
            }
            fmt::print("{:>5}  {:<28} {:<10} {:<10} {:<12} {:<10} {:>10} {:>9}  {}\n", "ID", "USER", "FROM", "TO",
                       "STATE", "STEP", "BYTES", "LOCKOUT", "STARTED / ERROR");
            for (const auto& m : moves) {
              fmt::print("{:>5}  {:<28} {:<10} {:<10} {:<12} {:<10} {:>10} {:>9}  {}\n", m.id, printable(m.user, 28),
                         m.from_server, m.to_server, move_state_name(m.state), m.step, human_bytes(m.bytes_transferred),
                         m.lockout_ms >= 0 ? format_duration_ms(m.lockout_ms) : "-",
                         m.error.empty() ? format_time_ms(m.started_at_ms) : m.error);
            }
            return kExitOk;
          }};
}

}  // namespace mailshard::cli
