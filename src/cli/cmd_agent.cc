// mailshard agent: Serve file operations on a mail root over stdin/stdout (the remote end of the agent transport).
#include "cli/cli.h"

namespace mailshard::cli {

Command register_agent(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "agent", "Serve file operations on a mail root over stdin/stdout (the remote end of the agent transport)");
}

}  // namespace mailshard::cli
