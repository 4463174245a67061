// Ctrl-C / SIGTERM handling. The first signal sets a flag that long operations
// poll between steps, so the current step finishes and is journaled; the
// second signal restores the default action and the process dies (exit 130).
#pragma once

namespace mailshard {

void install_interrupt_handlers();
bool interrupted();
// For tests and for the agent: clear the flag.
void reset_interrupted();

}  // namespace mailshard
