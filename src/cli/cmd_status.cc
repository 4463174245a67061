// mailshard status: Show moves: state, step, timings, bytes and lockout.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_status(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "status", "Show moves: state, step, timings, bytes and lockout");
}

}  // namespace mailshard::cli
