#include "transport/wire.h"

#include <cstring>

#include <gtest/gtest.h>

namespace mailshard {
namespace {

// The last u64 of a READ_SPEC (or trailer) payload is its block count.
std::string with_block_count(std::string payload, uint64_t n) {
  std::memcpy(payload.data() + payload.size() - 8, &n, 8);  // little-endian, as the codec writes
  return payload;
}

// 2^60 blocks: nblocks * 16 wrapped to 0, so the agent read an empty blob and
// went on with a spec claiming 2^60 block hashes.
TEST(Wire, ReadSpecBlockCountThatWrapsIsCorrupt) {
  ReadSpec spec("cur/1.M1.h:2,S");
  spec.mode = ReadSpec::Mode::kBlockDiff;
  spec.block_size = 4096;
  std::string payload = with_block_count(wire::encode_read_spec(spec), uint64_t{1} << 60);
  ReadSpec out;
  uint64_t sig_len = 0, blocks = 0;
  Status st = wire::decode_read_spec(payload, out, sig_len, blocks);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(st.error().message(), "malformed frame: READ_SPEC: 1152921504606846976 block hashes (at most 16777216)");
  // The largest legal count still decodes.
  ASSERT_TRUE(wire::decode_read_spec(with_block_count(wire::encode_read_spec(spec), wire::kMaxBlockHashes), out,
                                     sig_len, blocks)
                  .ok());
  EXPECT_EQ(blocks, wire::kMaxBlockHashes);
}

TEST(Wire, TrailerBlockCountThatWrapsIsCorrupt) {
  SourceTrailer t;
  std::string payload = with_block_count(wire::encode_trailer(t), uint64_t{1} << 60);
  SourceTrailer out;
  uint64_t blocks = 0;
  Status st = wire::decode_trailer(payload, out, blocks);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "malformed frame: trailer: 1152921504606846976 block hashes (at most 16777216)");
}

}  // namespace
}  // namespace mailshard
