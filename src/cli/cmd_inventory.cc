// mailshard inventory: Read LDAP, server metrics and mailbox sizes; print the fleet; save a snapshot.
#include "cli/cli.h"

namespace mailshard::cli {

Command register_inventory(CLI::App& root, Context& ctx) {
  return add_stub_command(root, "inventory", "Read LDAP, server metrics and mailbox sizes; print the fleet; save a snapshot");
}

}  // namespace mailshard::cli
