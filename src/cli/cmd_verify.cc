// mailshard verify: Check a user's current copy against their last move's manifest.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_verify(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "verify", "Check a user's current copy against their last move's manifest");
}

}  // namespace mailshard::cli
