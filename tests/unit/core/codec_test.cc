#include "core/codec.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

FileAttrs file_of_size(int64_t size) {
  FileAttrs a;
  a.type = EntryType::kFile;
  a.mode = 0600;
  a.size = size;
  a.mtime_ns = 1'700'000'000'000'000'000;
  a.ino = 42;
  a.nlink = 1;
  return a;
}

TEST(Codec, AttrsRoundTrip) {
  Encoder e;
  e.attrs(file_of_size(12345));
  ASSERT_EQ(e.size(), kEncodedAttrsBytes);
  Decoder d(e.bytes(), "test");
  auto a = d.attrs();
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(*a, file_of_size(12345));
  EXPECT_TRUE(d.done().ok());
}

// Found by tests/fuzz/mailbox_files_fuzz.cc: a negative size from a peer or a
// state blob reached signature_block_len(), whose sqrt() gave NaN and whose
// cast of it to uint32_t is undefined behaviour. The decoder refuses it.
TEST(Codec, NegativeFileSizeIsCorrupt) {
  Encoder e;
  e.attrs(file_of_size(-344));
  Decoder d(e.bytes(), "sync state");
  auto a = d.attrs();
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(a.error().message(), "sync state: negative file size");
}

}  // namespace
}  // namespace mailshard
