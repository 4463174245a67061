// libFuzzer target for the sync-state reader (`sync --state FILE`, and the
// blob a move keeps in the journal): arbitrary bytes as a state blob. Nothing
// may crash, invoke undefined behaviour or allocate beyond what the blob can
// hold; a bad blob must come back as kCorrupt/kUnsupported. A state that
// reads back must serialize to a blob that reads back to the same blob.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "movers/sync_state.h"

using namespace mailshard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto state = SyncState::deserialize(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!state.ok()) return 0;
  (void)state->entry_count();
  std::string blob = state->serialize();
  auto again = SyncState::deserialize(blob);
  if (!again.ok() || again->serialize() != blob) __builtin_trap();
  return 0;
}
