// libFuzzer target for the plan JSON reader (`rebalance --plan FILE`):
// arbitrary bytes as a plan file. Nothing may crash or invoke undefined
// behaviour; a bad file must come back as an error. A plan that reads back
// must write and read again to the same canonical text and hash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/plan.h"

using namespace mailshard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto plan = plan_from_json(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!plan.ok()) return 0;
  std::string text = plan_to_json(*plan);
  auto again = plan_from_json(text);
  if (!again.ok() || plan_to_json(*again) != text || plan_hash(*again) != plan_hash(*plan)) __builtin_trap();
  (void)plan_to_pretty_json(*plan, plan_hash(*plan));
  return 0;
}
