#include "util/log.h"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

namespace mailshard {
namespace {
bool g_progress = false;
}

Status init_logging(const LogOptions& options) {
  auto level = spdlog::level::from_str(options.level);
  // from_str maps unknown names to "off"; only accept "off" when asked for.
  if (level == spdlog::level::off && options.level != "off")
    return Error::invalid(fmt::format("unknown log level '{}' (use trace, debug, info, warn, error or off)",
                                      options.level));
  std::shared_ptr<spdlog::logger> logger;
  if (options.target == LogTarget::kSyslog) {
    auto sink = std::make_shared<spdlog::sinks::syslog_sink_mt>(options.ident, 0, LOG_MAIL, false);
    logger = std::make_shared<spdlog::logger>(options.ident, sink);
    logger->set_pattern("%l %v");
  } else {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    logger = std::make_shared<spdlog::logger>(options.ident, sink);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  g_progress = options.target == LogTarget::kStderr && ::isatty(STDERR_FILENO) && level <= spdlog::level::info;
  return {};
}

bool progress_enabled() { return g_progress; }

}  // namespace mailshard
