#include "util/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace mailshard {
namespace {
std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_soft{false};
std::atomic<bool> g_two_stage{false};

void say(const char* msg, size_t n) { (void)!write(STDERR_FILENO, msg, n); }

void on_signal(int sig) {
  if (g_two_stage.load() && !g_soft.exchange(true)) {
    const char msg[] =
        "\nmailshard: stopping: no new moves start, running moves finish (signal again to roll back the moves that "
        "have not flipped)\n";
    say(msg, sizeof msg - 1);
    return;
  }
  if (g_interrupted.exchange(true)) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  const char msg[] = "\nmailshard: interrupted; finishing the current step (press Ctrl-C again to abort at once)\n";
  say(msg, sizeof msg - 1);
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
void reset_interrupted() {
  g_interrupted.store(false);
  g_soft.store(false);
}
void request_interrupt() {
  g_soft.store(true);
  g_interrupted.store(true);
}
void set_two_stage_interrupts(bool on) { g_two_stage.store(on); }
bool soft_stop_requested() { return g_soft.load(std::memory_order_relaxed) || interrupted(); }

}  // namespace mailshard
