// Ctrl-C / SIGTERM handling. The first signal sets a flag that long operations
// poll between steps, so the current step finishes and is journaled; the
// second signal restores the default action and the process dies (exit 130).
//
// Two-stage mode (the nightly run): the first signal only asks for a soft
// stop (no new work starts; running moves finish), the second sets the
// interrupted flag (moves that have not flipped roll back), a third kills.
#pragma once

namespace mailshard {

void install_interrupt_handlers();
bool interrupted();
// For tests and for the agent: clear the flags.
void reset_interrupted();
// Sets the interrupted flag as a second signal would (the hard deadline).
void request_interrupt();

void set_two_stage_interrupts(bool on);
// True after the first signal in two-stage mode (and whenever interrupted()).
bool soft_stop_requested();

}  // namespace mailshard
