// mailshard move: Move one user's mailbox to another server (full lifecycle).
#include "cli/cli.h"

namespace mailshard::cli {

Command register_move(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "move", "Move one user's mailbox to another server (full lifecycle)");
}

}  // namespace mailshard::cli
