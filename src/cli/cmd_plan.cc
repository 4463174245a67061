// mailshard plan: Compute a rebalancing plan (dry run): which users move where, and why.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_plan(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "plan", "Compute a rebalancing plan (dry run): which users move where, and why");
}

}  // namespace mailshard::cli
