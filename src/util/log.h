// The one log setup: spdlog to stderr (or syslog), never stdout, because
// stdout carries command output (tables, --json). Call init_logging once in
// main before any other thread starts; afterwards use spdlog::info(...) etc.
#pragma once

#include <string>

#include "util/result.h"

namespace mailshard {

enum class LogTarget { kStderr, kSyslog };

struct LogOptions {
  std::string level = "info";   // trace|debug|info|warn|error|off
  LogTarget target = LogTarget::kStderr;
  std::string ident = "mailshard";  // syslog ident / prefix
};

// Errors: kInvalidInput for an unknown level name.
Status init_logging(const LogOptions& options);

// True when stderr is a terminal and the log level lets info through: the
// condition for drawing progress lines. Under cron this is false.
bool progress_enabled();

}  // namespace mailshard
