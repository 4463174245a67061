// Transparent huge pages for large arrays that are about to be filled.
//
// Filling fresh memory costs one page fault per 4 KiB page (a few
// microseconds each on our VMs: a fifth of `plan`'s system time at 10 M
// users). Where the kernel's THP mode is "madvise" (Debian's default), a
// range advised here is faulted in 2 MiB at a time instead. Only whole 2 MiB
// pages inside [data, data + bytes) are advised, so the edges stay as they
// are; a kernel without THP, or a refusal, leaves everything as it was.
//
// Thread-safety: safe (one madvise call).
#pragma once

#include <cstddef>

namespace mailshard {

// Advises the 2 MiB-aligned interior of [data, data + bytes) for huge pages.
// Best effort: returns nothing, changes no content. Call it before the
// memory is first written; pages already faulted in stay small.
void advise_huge_pages(const void* data, size_t bytes);

}  // namespace mailshard
