// mailshard rebalance: The nightly job: plan and execute moves within budgets and a deadline.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_rebalance(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "rebalance", "The nightly job: plan and execute moves within budgets and a deadline");
}

}  // namespace mailshard::cli
