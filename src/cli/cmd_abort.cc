// mailshard abort MOVE_ID: an operator's rollback before the flip.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/move_wiring.h"

namespace mailshard::cli {

Command register_abort(CLI::App& root, Context& ctx) {
  CLI::App* cmd = root.add_subcommand("abort", "Roll back a move that has not flipped yet");
  auto id = std::make_shared<int64_t>(0);
  cmd->add_option("MOVE_ID", *id, "the move (see 'mailshard status')")->required();
  cmd->footer("A move that has flipped can only roll forward: use 'mailshard resume'.\n"
              "A move that is running in another process must be stopped there first (Ctrl-C).");
  return {cmd, [&ctx, id]() -> Result<int> {
            MoveSetupOptions o;
            o.freeze_guard = false;
            auto setup = MS_TRY(make_move_setup(ctx, o));
            Journal* j = MS_TRY(ctx.journal());
            auto m = j->get_move(*id);
            if (!m.ok()) return std::move(m).error().context(fmt::format("abort move {}", *id));
            auto r = setup->abort(*m);
            if (!r.ok()) return std::move(r).error().context(fmt::format("abort move {}", *id));
            if (ctx.global.json) fmt::print("{}\n", move_json(*r).dump(2));
            else fmt::print("{}\n", describe_move(*r));
            return r->state == MoveState::kRolledBack ? kExitOk : kExitFailure;
          }};
}

}  // namespace mailshard::cli
