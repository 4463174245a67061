// mailshard resume [--move ID]: finish or roll back interrupted moves. Also
// runs as the detached freeze guard a move starts (--guard-until).
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "cli/move_wiring.h"
#include "util/interrupt.h"

namespace mailshard::cli {
namespace {
// How often a freeze guard looks whether its move is over (ms).
constexpr int64_t kGuardPollMs = 2000;
}  // namespace

Command register_resume(CLI::App& root, Context& ctx) {
  CLI::App* cmd = root.add_subcommand(
      "resume", "Finish (after the flip) or roll back (before it) every interrupted move, thawing every freeze");
  struct Args {
    int64_t move = 0;
    int64_t guard_until = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--move", a->move, "only this move id");
  cmd->add_option("--guard-until", a->guard_until,
                  "internal: wait until this time (epoch ms) or until the move is over, then resume it")
      ->group("");
  cmd->footer(
      "LDAP decides: a move whose entry already names the destination is finished (thaw, sweep, done);\n"
      "any other is rolled back (thaw, drop the partial copy). Moves held by a live process are skipped.\n"
      "Run it from a timer every few minutes (examples/mailshard-resume.timer). Exit: 0 all settled, 1 otherwise.");
  return {cmd, [&ctx, a]() -> Result<int> {
            Journal* j = MS_TRY(ctx.journal());
            if (a->guard_until > 0) {
              if (a->move <= 0) return Error::invalid("--guard-until needs --move");
              // The freeze guard: sleep until the freeze expires, leaving early
              // once the move is over.
              while (ctx.clock().now_ms() < a->guard_until) {
                auto m = j->get_move(a->move);
                if (!m.ok() || is_terminal(m->state) || interrupted()) return kExitOk;
                ctx.clock().sleep_ms(kGuardPollMs);
              }
            }
            MoveFilter f;
            f.active_only = true;
            if (a->move > 0) f.id = a->move;
            auto moves = MS_TRY(j->list_moves(f));
            if (moves.empty()) {
              if (!ctx.global.json) fmt::print("nothing to resume\n");
              else fmt::print("[]\n");
              return kExitOk;
            }
            MoveSetupOptions o;
            o.freeze_guard = false;
            auto setup = MS_TRY(make_move_setup(ctx, o));
            int rc = kExitOk;
            nlohmann::json out = nlohmann::json::array();
            for (const auto& m : moves) {
              auto r = setup->resume(m);
              if (!r.ok()) {
                if (r.error().code() == ErrorCode::kConflict) {
                  spdlog::info("move {}: {}", m.id, r.error().message());
                  if (!ctx.global.json) fmt::print("move {} {}: skipped: {}\n", m.id, m.user, r.error().message());
                  continue;
                }
                rc = kExitFailure;
                if (!ctx.global.json) fmt::print("move {} {}: {}\n", m.id, m.user, r.error().message());
                out.push_back({{"id", m.id}, {"user", m.user}, {"error", r.error().message()}});
                continue;
              }
              if (!is_terminal(r->state) || r->state == MoveState::kFailed) rc = kExitFailure;
              if (ctx.global.json) out.push_back(move_json(*r));
              else fmt::print("{}\n", describe_move(*r));
            }
            if (ctx.global.json) fmt::print("{}\n", out.dump(2));
            return rc;
          }};
}

}  // namespace mailshard::cli
