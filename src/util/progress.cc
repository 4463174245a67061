#include "util/progress.h"

#include <unistd.h>

#include <chrono>

#include <fmt/format.h>

#include "util/log.h"

namespace mailshard {
namespace {
int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
constexpr int64_t kRedrawMs = 100;  // at most 10 redraws per second
}  // namespace

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), enabled_(progress_enabled()) {}

Progress::~Progress() { finish(); }

void Progress::add(int64_t n) {
  done_.fetch_add(n, std::memory_order_relaxed);
  if (enabled_) draw(false);
}

void Progress::set_detail(const std::string& detail) {
  if (!enabled_) return;
  {
    std::lock_guard lock(mu_);
    detail_ = detail;
  }
  draw(false);
}

void Progress::draw(bool force) {
  std::lock_guard lock(mu_);
  int64_t now = mono_ms();
  if (!force && now - last_draw_ms_ < kRedrawMs) return;
  last_draw_ms_ = now;
  int64_t d = done_.load();
  std::string line = total_ > 0 ? fmt::format("\r\x1b[K{} {}/{} ({:.0f}%)", label_, d, total_, 100.0 * d / total_)
                                : fmt::format("\r\x1b[K{} {}", label_, d);
  if (!detail_.empty()) line += " " + detail_;
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  const char clear[] = "\r\x1b[K";
  (void)!::write(STDERR_FILENO, clear, sizeof clear - 1);
}

}  // namespace mailshard
