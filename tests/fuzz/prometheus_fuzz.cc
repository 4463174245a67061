// libFuzzer target for the Prometheus text parser and what inventory does with
// its result: arbitrary bytes as a /metrics body, parsed, then turned into one
// server's capacity/used/load the way the node_exporter metrics source does.
// Nothing may crash, hang or invoke undefined behaviour; a bad body must come
// back as an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "inventory/node_exporter.h"
#include "inventory/prometheus_parser.h"

using namespace mailshard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto samples = parse_prometheus_text(text);
  if (!samples.ok()) return 0;
  for (const auto& s : *samples) (void)s.label("mountpoint");
  (void)node_metrics_for(*samples, "/srv/mail");
  (void)node_metrics_for(*samples, "/");
  return 0;
}
