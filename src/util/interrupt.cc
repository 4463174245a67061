#include "util/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace mailshard {
namespace {
std::atomic<bool> g_interrupted{false};

void on_signal(int sig) {
  if (g_interrupted.exchange(true)) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  const char msg[] = "\nmailshard: interrupted; finishing the current step (press Ctrl-C again to abort at once)\n";
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
}
}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // broken pipes are errors (EPIPE), not deaths
}

bool interrupted() { return g_interrupted.load(std::memory_order_relaxed); }
void reset_interrupted() { g_interrupted.store(false); }

}  // namespace mailshard
