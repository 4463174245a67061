#include "util/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace mailshard {

void advise_huge_pages(const void* data, size_t bytes) {
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;  // x86-64 and arm64 (4 KiB base pages)
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t last = (begin + bytes) & ~(kHugePage - 1);
  if (data == nullptr || last <= first) return;
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // EINVAL without THP: nothing to do
#endif
}

}  // namespace mailshard
