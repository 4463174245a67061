// A one-line progress display on a TTY ("scanning 412/1000 users"); silent
// under cron or when stderr is not a terminal (see progress_enabled()).
// Thread-safety: update() may be called from several threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace mailshard {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();  // clears the line
  void add(int64_t n = 1);
  void set_detail(const std::string& detail);
  void finish();

 private:
  void draw(bool force);
  std::string label_;
  int64_t total_;
  std::atomic<int64_t> done_{0};
  std::mutex mu_;
  std::string detail_;
  int64_t last_draw_ms_ = 0;
  bool enabled_;
  bool finished_ = false;
};

}  // namespace mailshard
