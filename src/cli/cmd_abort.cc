// mailshard abort: Roll back a move that has not flipped yet.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_abort(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "abort", "Roll back a move that has not flipped yet");
}

}  // namespace mailshard::cli
