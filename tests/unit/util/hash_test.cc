#include "util/hash.h"

#include <gtest/gtest.h>

#include "util/fs.h"

namespace mailshard {
namespace {

TEST(Hash, StreamingEqualsOneShotAndDiffersOnChange) {
  std::string data(100000, 'a');
  data[500] = 'b';
  Hasher h;
  h.update(data.substr(0, 777));
  h.update(data.substr(777));
  EXPECT_EQ(h.digest(), hash_bytes(data));
  std::string other = data;
  other[99999] = 'c';
  EXPECT_FALSE(hash_bytes(other) == hash_bytes(data));
}

TEST(Hash, HexRoundTrip) {
  Hash128 h = hash_bytes("hello");
  EXPECT_EQ(h.hex().size(), 32u);
  EXPECT_EQ(*Hash128::from_hex(h.hex()), h);
  EXPECT_FALSE(Hash128::from_hex("xyz").ok());
}

TEST(Hash, FileHashMatchesBytesAndRefusesSymlinks) {
  std::string dir = ::testing::TempDir() + "/hash_test";
  ASSERT_TRUE(make_dirs(dir).ok());
  ASSERT_TRUE(write_file_atomic(dir + "/f", "content").ok());
  int64_t size = 0;
  auto h = hash_file(dir + "/f", &size);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(size, 7);
  EXPECT_EQ(*h, hash_bytes("content"));
  ::unlink((dir + "/l").c_str());
  ASSERT_EQ(::symlink("f", (dir + "/l").c_str()), 0);
  EXPECT_FALSE(hash_file(dir + "/l").ok());
}

}  // namespace
}  // namespace mailshard
