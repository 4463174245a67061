// A parser for the Prometheus text exposition format (version 0.0.4), as
// node_exporter serves it on /metrics:
//
//   # HELP node_load1 1m load average.
//   # TYPE node_load1 gauge
//   node_load1 0.52
//   node_filesystem_avail_bytes{device="/dev/vda",fstype="ext4",mountpoint="/"} 8.05e+10 1700000000000
//
// Label values may contain the escapes \\ \" \n; values may be NaN, +Inf or
// -Inf; a timestamp (ms) may follow the value. Anything else is rejected with
// the line number, so a login page or a truncated body is never read as data.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.h"

namespace mailshard {

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // in document order, unescaped
  double value = 0;
  std::optional<int64_t> timestamp_ms;

  // The value of label `key`, or "" when absent.
  std::string_view label(std::string_view key) const;
};

// Parses a whole document in time linear in its size. Errors: kCorrupt,
// "line N: <what is wrong>" ("line 3: unterminated label value", "line 1:
// invalid metric name '<html>'"); a line over 64 KiB or a sample with more
// than 128 labels is refused ("line 1: more than 128 labels").
Result<std::vector<PromSample>> parse_prometheus_text(std::string_view text);

}  // namespace mailshard
