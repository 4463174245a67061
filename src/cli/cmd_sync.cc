// mailshard sync: Developer tool: copy one mailbox tree to another server with the sync engine.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_sync(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "sync", "Developer tool: copy one mailbox tree to another server with the sync engine");
}

}  // namespace mailshard::cli
