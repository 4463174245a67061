// mailshard resume: Finish or roll back every interrupted move from the journal.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_resume(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "resume", "Finish or roll back every interrupted move from the journal");
}

}  // namespace mailshard::cli
