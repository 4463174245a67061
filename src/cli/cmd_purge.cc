// mailshard purge [--older-than 7d] [--user U] [--dry-run]: after a last
// sweep, delete the source copies of verified moves past their grace period.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/move_wiring.h"
#include "util/duration.h"

namespace mailshard::cli {

Command register_purge(CLI::App& root, Context& ctx) {
  CLI::App* cmd = root.add_subcommand("purge", "Delete source copies of verified moves after the grace period");
  struct Args {
    std::string older_than, user;
    bool dry_run = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--older-than", a->older_than, "grace period (default: [move] grace_period, 7d)");
  cmd->add_option("--user", a->user, "only this user's moves");
  cmd->add_flag("--dry-run", a->dry_run, "list what would be deleted; delete nothing");
  return {cmd, [&ctx, a]() -> Result<int> {
            const Config* cfg = MS_TRY(ctx.config());
            int64_t grace = cfg->move.grace_period_ms;
            if (!a->older_than.empty()) grace = MS_TRY_CTX(parse_duration_ms(a->older_than), "--older-than");
            Journal* j = MS_TRY(ctx.journal());
            MoveFilter f;
            if (!a->user.empty()) f.user = a->user;
            auto moves = MS_TRY(j->list_moves(f));
            std::vector<MoveRecord> due;
            int64_t now = ctx.clock().now_ms();
            for (const auto& m : moves)
              // A director move copied nothing: its "source" is the user's live mailbox on the
              // shared mail root, never a copy to delete.
              if (m.state == MoveState::kDone && now - m.finished_at_ms >= grace && !is_director_move(m))
                due.push_back(m);
            if (a->dry_run || due.empty()) {
              for (const auto& m : due)
                fmt::print("would purge move {} {}: source copy on {}\n", m.id, m.user, m.from_server);
              if (due.empty()) fmt::print("nothing to purge (grace period {})\n", format_duration_ms(grace));
              return kExitOk;
            }
            MoveSetupOptions o;
            o.freeze_guard = false;
            auto setup = MS_TRY(make_move_setup(ctx, o));
            int rc = kExitOk;
            for (const auto& m : due) {
              auto r = setup->runner->purge(m.id, grace);
              if (!r.ok()) {
                rc = kExitFailure;
                fmt::print("move {} {}: not purged: {}\n", m.id, m.user, r.error().message());
                continue;
              }
              fmt::print("purged move {} {}: source copy on {} deleted\n", m.id, m.user, m.from_server);
            }
            return rc;
          }};
}

}  // namespace mailshard::cli
