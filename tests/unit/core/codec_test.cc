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

// The layout on the wire and in sync states: type, then little-endian mode,
// uid, gid, nlink (u32), size, mtime, ctime (i64), ino (u64); and a hash as
// hi then lo (u64 each).
TEST(Codec, AttrsAndHashLayout) {
  FileAttrs a = file_of_size(0x0102030405060708);
  a.uid = 0x11223344;
  a.gid = 7;
  a.ctime_ns = -2;
  Encoder e;
  e.attrs(a);
  Hash128 h;
  h.hi = 0x0a0b0c0d0e0f1011;
  h.lo = 1;
  e.hash(h);
  std::string want;
  auto le = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) want += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  want += static_cast<char>(EntryType::kFile);
  for (uint64_t v : {0600ull, 0x11223344ull, 7ull, 1ull}) le(v, 4);  // mode, uid, gid, nlink
  for (uint64_t v : {0x0102030405060708ull, 1'700'000'000'000'000'000ull, ~1ull, 42ull}) le(v, 8);  // size, mtime, ctime (-2), ino
  for (uint64_t v : {0x0a0b0c0d0e0f1011ull, 1ull}) le(v, 8);  // hash: hi, lo
  EXPECT_EQ(e.bytes(), want);
  Decoder d(e.bytes(), "test");
  EXPECT_EQ(*d.attrs(), a);
  EXPECT_EQ(*d.hash(), h);
  EXPECT_TRUE(d.done().ok());
}

// A cut anywhere is "truncated payload", except where the field read so far
// is itself wrong: a bad type byte, or a negative size before what follows.
TEST(Codec, TruncatedAttrsFailAsFieldByField) {
  Encoder e;
  e.attrs(file_of_size(-1));
  std::string neg = e.bytes();
  for (size_t cut = 0; cut < neg.size(); ++cut) {
    auto a = Decoder(std::string_view(neg).substr(0, cut), "t").attrs();
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.error().message(), cut < 25 ? "t: truncated payload" : "t: negative file size") << cut;
  }
  std::string bad = neg;
  bad[0] = 100;
  EXPECT_EQ(Decoder(std::string_view(bad).substr(0, 1), "t").attrs().error().message(), "t: bad entry type");
  Encoder h;
  h.hash(Hash128{});
  for (size_t cut = 0; cut < 16; ++cut)
    EXPECT_EQ(Decoder(std::string_view(h.bytes()).substr(0, cut), "t").hash().error().message(), "t: truncated payload");
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
