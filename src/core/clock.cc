#include "core/clock.h"

#include <ctime>
#include <string>

#include <fmt/format.h>

namespace mailshard {

std::string format_time_ms(int64_t epoch_ms) {
  if (epoch_ms <= 0) return "";
  time_t secs = static_cast<time_t>(epoch_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(epoch_ms % 1000));
}

}  // namespace mailshard
