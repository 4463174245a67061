// mailshard verify USER: check a user's current copy against their last move.
#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/move_wiring.h"

namespace mailshard::cli {

Command register_verify(CLI::App& root, Context& ctx) {
  CLI::App* cmd = root.add_subcommand("verify", "Check a user's current copy against their last move's manifest");
  auto user = std::make_shared<std::string>();
  cmd->add_option("USER", *user, "the user")->required();
  cmd->footer("Every message the last move copied must still be present with the same content (by XXH3-128);\n"
              "messages expunged since are counted, not failed. Until purge, every such message must also keep\n"
              "its UID, and its folder its UIDVALIDITY, against the uid lists of the source copy (Dovecot's or\n"
              "Courier's, under the folder's new name after a conversion).\n"
              "Maildir only: an sdbox/mdbox user (no file per message) is refused with exit 2 and what to\n"
              "compare instead.\n"
              "Exit: 0 match, 1 a difference, 2 bad input.");
  return {cmd, [&ctx, user]() -> Result<int> {
            MoveSetupOptions o;
            o.freeze_guard = false;
            auto setup = MS_TRY(make_move_setup(ctx, o));
            auto r = setup->runner->verify_user(*user);
            if (!r.ok()) return std::move(r).error();
            fmt::print("{}\n", *r);
            return kExitOk;
          }};
}

}  // namespace mailshard::cli
