// mailshard purge: Delete source copies of verified moves after the grace period.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_purge(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "purge", "Delete source copies of verified moves after the grace period");
}

}  // namespace mailshard::cli
