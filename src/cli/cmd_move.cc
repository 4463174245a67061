// mailshard move USER --to SERVER [--dry-run] [--no-freeze]: move one user's
// mailbox with the full lifecycle (docs/ARCHITECTURE.md, "the life of a move").
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/move_wiring.h"
#include "movers/move_protocol.h"
#include "util/strings.h"

namespace mailshard::cli {

Command register_move(CLI::App& root, Context& ctx) {
  CLI::App* cmd = root.add_subcommand("move", "Move one user's mailbox to another server (full lifecycle)");
  struct Args {
    std::string user, to;
    bool dry_run = false, no_freeze = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("USER", a->user, "the user (the value of [ldap] user_attribute, e.g. alice@example.org)")->required();
  cmd->add_option("--to", a->to, "destination server (a [[server]] name)")->required();
  cmd->add_flag("--dry-run", a->dry_run,
                "check everything (LDAP entry, claim, destination, space, clocks) and change nothing; "
                "records one dry-run line in the journal");
  cmd->add_flag("--no-freeze", a->no_freeze,
                "do not hold logins and deliveries (needed when [freeze] method = \"none\"); late deliveries are "
                "still swept");
  cmd->footer(fmt::format(
      "Steps: {}.\nprecopy makes warm passes while the user is online; flip is the LDAP commit point. A failure\n"
      "before the flip rolls back; after it the move only rolls forward ('mailshard resume').\n"
      "With [router] method = \"director\" a move inside a storage group is a director move instead:\n"
      "preflight, director_move, flip, done (no copy, no freeze). Exit: 0 done, 1 rolled back or failed,\n"
      "2 bad input, 130 interrupted.",
      protocol_step_names()));
  return {cmd, [&ctx, a]() -> Result<int> {
            MoveSetupOptions o;
            o.no_freeze = a->no_freeze;
            auto setup = MS_TRY(make_move_setup(ctx, o));
            MoveOptions mo;
            mo.dry_run = a->dry_run;
            mo.no_freeze = a->no_freeze;
            auto rec = setup->move(a->user, a->to, mo);
            if (!rec.ok()) return std::move(rec).error().context(fmt::format("move {}", a->user));
            if (ctx.global.json) fmt::print("{}\n", move_json(*rec).dump(2));
            else if (rec->state == MoveState::kDryRun)
              fmt::print("dry run: move {} {} -> {} would start now ({} to copy); nothing was changed\n", rec->user,
                         rec->from_server, rec->to_server, human_bytes(rec->bytes_planned));
            else fmt::print("{}\n", describe_move(*rec));
            return exit_code_for_move(*rec);
          }};
}

}  // namespace mailshard::cli
