#include "util/huge_pages.h"

#include <cstdint>
#include <cstring>
#include <memory>

#include <gtest/gtest.h>

namespace mailshard {
namespace {

// Advice changes no content, whatever the range: empty, null, unaligned,
// smaller than a huge page, or spanning several, before and after writing.
TEST(HugePages, AdviceKeepsContent) {
  advise_huge_pages(nullptr, 0);
  advise_huge_pages(nullptr, size_t{8} << 20);
  const size_t n = (size_t{6} << 20) + 12345;
  auto buf = std::make_unique<uint8_t[]>(n);
  for (size_t i = 0; i < n; i += 4093) buf[i] = static_cast<uint8_t>(i * 7);
  advise_huge_pages(buf.get() + 3, n - 3);
  advise_huge_pages(buf.get() + 100, 1000);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(buf[i], i % 4093 == 0 ? static_cast<uint8_t>(i * 7) : 0) << i;
  auto fresh = std::make_unique_for_overwrite<int64_t[]>(size_t{1} << 20);
  advise_huge_pages(fresh.get(), (size_t{1} << 20) * sizeof(int64_t));
  for (size_t i = 0; i < (size_t{1} << 20); ++i) fresh[i] = static_cast<int64_t>(i) * 3;
  for (size_t i = 0; i < (size_t{1} << 20); ++i) ASSERT_EQ(fresh[i], static_cast<int64_t>(i) * 3);
}

}  // namespace
}  // namespace mailshard
