#include "wire/wire.h"

#include <unistd.h>

#include <cstring>
#include <thread>

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

// PULL / PULL_SPEC / PULL_RESULT: what goes in comes out; a hostile count or
// status is corrupt, never a crash or a huge allocation.
TEST(Wire, PullMessagesRoundTrip) {
  PeerRef peer{"store1", {"ssh", "-T", "store1", "mailshard", "agent", "--stdio", "--root", "/srv/mail"}};
  PeerRef p2;
  Durability d = Durability::kSyncfs;
  ASSERT_TRUE(wire::decode_pull(wire::encode_pull(peer, Durability::kFsyncEach), p2, d).ok());
  EXPECT_EQ(p2.name, "store1");
  EXPECT_EQ(p2.argv, peer.argv);
  EXPECT_EQ(d, Durability::kFsyncEach);
  EXPECT_FALSE(wire::decode_pull(wire::encode_pull(PeerRef{"x", {}}, Durability::kSyncfs), p2, d).ok());

  CopySpec c;
  c.read = ReadSpec("example.org/alice/cur/1.M1.h:2,S");
  c.read.mode = ReadSpec::Mode::kDelta;
  c.read.want_blocks = true;
  c.read.block_size = 8192;
  c.read.signature = "sig";
  c.read.old_blocks = {Hash128{1, 2}};
  c.kind = WriteSpec::Kind::kDelta;
  c.dst_path = "staging/alice/cur/1.M1.h:2,S";
  c.basis_block_len = 2048;
  CopySpec c2;
  uint64_t sig_len = 0, blocks = 0;
  ASSERT_TRUE(wire::decode_pull_spec(wire::encode_pull_spec(c), c2, sig_len, blocks).ok());
  EXPECT_EQ(c2.read.path, c.read.path);
  EXPECT_EQ(c2.read.mode, ReadSpec::Mode::kDelta);
  EXPECT_TRUE(c2.read.want_blocks);
  EXPECT_EQ(c2.read.block_size, 8192u);
  EXPECT_EQ(sig_len, 3u);
  EXPECT_EQ(blocks, 1u);
  EXPECT_EQ(c2.kind, WriteSpec::Kind::kDelta);
  EXPECT_EQ(c2.dst_path, c.dst_path);
  EXPECT_EQ(c2.basis_block_len, 2048u);
  std::string trailing = wire::encode_pull_spec(c) + "x";
  EXPECT_FALSE(wire::decode_pull_spec(trailing, c2, sig_len, blocks).ok());

  std::vector<CopyOutcome> out(3);
  out[0].attrs.size = 42;
  out[0].written = true;
  out[0].result.hash = Hash128{7, 8};
  out[0].result.body_bytes = 42;
  out[0].new_blocks = {Hash128{3, 4}, Hash128{5, 6}};
  out[0].signature_bytes = 99;
  out[1].read = ReadStatus::kVanished;
  out[2].read = ReadStatus::kFailed;
  out[2].error = Error::permission("no");
  std::vector<CopyOutcome> back;
  std::vector<uint64_t> counts;
  bool last = false;
  ASSERT_TRUE(wire::decode_pull_results(wire::encode_pull_results(out, 0, 3, true), back, counts, last).ok());
  ASSERT_EQ(back.size(), 3u);
  EXPECT_TRUE(last);
  EXPECT_EQ(counts, (std::vector<uint64_t>{2, 0, 0}));
  EXPECT_TRUE(back[0].new_blocks.empty());  // they follow as a blob
  EXPECT_TRUE(back[0].written);
  EXPECT_EQ(back[0].result.hash, (Hash128{7, 8}));
  EXPECT_EQ(back[0].result.body_bytes, 42);
  EXPECT_EQ(back[0].signature_bytes, 99);
  EXPECT_EQ(back[0].attrs.size, 42);
  EXPECT_EQ(back[1].read, ReadStatus::kVanished);
  EXPECT_FALSE(back[1].written);
  ASSERT_TRUE(back[2].error.has_value());
  EXPECT_EQ(back[2].error->code(), ErrorCode::kPermission);

  // A count the payload cannot hold is corrupt (no reserve of 2^32 outcomes).
  std::string huge = wire::encode_pull_results(out, 0, 1, true);
  const uint32_t n = 0xffffffffu;
  std::memcpy(huge.data(), &n, 4);
  back.clear();
  counts.clear();
  EXPECT_EQ(wire::decode_pull_results(huge, back, counts, last).error().code(), ErrorCode::kCorrupt);
  // A file written that was never read is a lie.
  std::vector<CopyOutcome> lie(1);
  lie[0].read = ReadStatus::kVanished;
  lie[0].written = true;
  back.clear();
  counts.clear();
  EXPECT_FALSE(wire::decode_pull_results(wire::encode_pull_results(lie, 0, 1, true), back, counts, last).ok());
}

// Compressed control frames: through a pipe, every frame comes out as it
// went in and in order, DATA and BLOB frames between them raw; a repetitive
// listing shrinks on the wire; ZFRAMES nobody agreed on is corrupt.
TEST(Wire, CompressedControlFramesRoundTripInOrderAndShrink) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  wire::FrameChannel out(-1, fds[1], "reader");
  wire::FrameChannel in(fds[0], -1, "writer");
  ASSERT_TRUE(out.enable_compression().ok());
  ASSERT_TRUE(in.enable_compression().ok());
  std::vector<std::pair<wire::MsgType, std::string>> sent;
  std::string listing;
  for (int i = 0; i < 2000; ++i) listing += "1700000" + std::to_string(1000 + i) + ".M123456P4242.host,S=4096,W=4200:2,S\n";
  sent.emplace_back(wire::MsgType::kListDir, listing.substr(0, 60000));
  sent.emplace_back(wire::MsgType::kStat, "abc");
  sent.emplace_back(wire::MsgType::kData, std::string(8, '\0') + "raw bytes");
  sent.emplace_back(wire::MsgType::kStatResult, listing.substr(60000, 50000));
  sent.emplace_back(wire::MsgType::kBlob, "blob");
  sent.emplace_back(wire::MsgType::kListEnd, "");
  std::thread writer([&] {
    for (const auto& [t, p] : sent) ASSERT_TRUE(out.send(t, p).ok());
    ASSERT_TRUE(out.flush().ok());
    ::close(fds[1]);
  });
  for (const auto& [t, p] : sent) {
    auto f = in.recv();
    ASSERT_TRUE(f.ok()) << f.error().message();
    EXPECT_EQ(f->type, t);
    EXPECT_EQ(f->payload, p);
  }
  writer.join();
  EXPECT_FALSE(in.recv().ok());  // the end
  ::close(fds[0]);
  EXPECT_LT(out.bytes_out(), 110000u / 4) << "the listing did not shrink";

  ASSERT_EQ(::pipe(fds), 0);
  wire::FrameChannel z_out(-1, fds[1], "reader");
  ASSERT_TRUE(z_out.enable_compression().ok());
  ASSERT_TRUE(z_out.send(wire::MsgType::kStat, "abc").ok());
  ASSERT_TRUE(z_out.flush().ok());
  wire::FrameChannel plain_in(fds[0], -1, "writer");
  auto f = plain_in.recv();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(f.error().message(), "writer sent ZFRAMES without agreeing on compression");
  ::close(fds[0]);
  ::close(fds[1]);
}

// SIZE / SIZE_RESULT: what goes in comes out; counts and lengths are bounded
// by the payload and by the protocol's limits; truncation is an error.
TEST(Wire, SizeRequestAndResultsRoundTrip) {
  std::vector<std::string> homes = {"example.org/alice", "example.org/bob", "x"};
  std::vector<std::string> got;
  bool last = false;
  ASSERT_TRUE(wire::decode_size_request(wire::encode_size_request(homes, 0, 2, false), got, last).ok());
  EXPECT_FALSE(last);
  ASSERT_TRUE(wire::decode_size_request(wire::encode_size_request(homes, 2, 3, true), got, last).ok());
  EXPECT_TRUE(last);
  EXPECT_EQ(got, homes);

  MailboxSize a;
  a.bytes = 123456789012;
  a.messages = 4567;
  a.files = 4600;
  a.stat_calls = 33;
  a.notes = {"one", "two"};
  MailboxSize gone;
  gone.exists = false;
  gone.messages = 0;
  std::vector<Result<MailboxSize>> in;
  in.emplace_back(a);
  in.emplace_back(gone);
  in.emplace_back(Error::invalid("cannot open 'h': path crosses a symlink"));
  std::vector<Result<MailboxSize>> out;
  ASSERT_TRUE(wire::decode_size_results(wire::encode_size_results(in, 0, 3, true), out, last).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(last);
  ASSERT_TRUE(out[0].ok());
  EXPECT_EQ(out[0]->bytes, 123456789012);
  EXPECT_EQ(out[0]->messages, 4567);
  EXPECT_EQ(out[0]->files, 4600);
  EXPECT_EQ(out[0]->stat_calls, 33);
  EXPECT_TRUE(out[0]->exists);
  EXPECT_EQ(out[0]->notes, a.notes);
  ASSERT_TRUE(out[1].ok());
  EXPECT_FALSE(out[1]->exists);
  EXPECT_EQ(out[1]->bytes, 0);
  ASSERT_FALSE(out[2].ok());
  EXPECT_EQ(out[2].error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(out[2].error().message(), "cannot open 'h': path crosses a symlink");
  // An empty answer (a SIZE of no homes) is one frame with last set.
  out.clear();
  ASSERT_TRUE(wire::decode_size_results(wire::encode_size_results(in, 0, 0, true), out, last).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(last);
}

TEST(Wire, SizeMessagesAreBounded) {
  bool last = false;
  // A count the payload cannot hold never allocates.
  std::vector<std::string> homes;
  Status huge = wire::decode_size_request(std::string("\xff\xff\xff\xff\x01", 5), homes, last);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(huge.error().message(), "malformed frame: count exceeds payload");
  // More than kMaxSizeHomes over the frames of one request.
  std::vector<std::string> many(1000, "h");
  homes.assign(wire::kMaxSizeHomes - 999, "h");
  Status over = wire::decode_size_request(wire::encode_size_request(many, 0, 1000, true), homes, last);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().message(), "malformed frame: SIZE: more than 100000 homes in one request");
  homes.assign(wire::kMaxSizeHomes - 1000, "h");
  EXPECT_TRUE(wire::decode_size_request(wire::encode_size_request(many, 0, 1000, true), homes, last).ok());
  EXPECT_EQ(homes.size(), wire::kMaxSizeHomes);

  MailboxSize m;
  m.notes.assign(wire::kMaxSizeNotes + 5, "n");  // the encoder sends at most kMaxSizeNotes
  std::vector<Result<MailboxSize>> in{Result<MailboxSize>(m)};
  std::string payload = wire::encode_size_results(in, 0, 1, true);
  std::vector<Result<MailboxSize>> out;
  ASSERT_TRUE(wire::decode_size_results(payload, out, last).ok());
  EXPECT_EQ(out[0]->notes.size(), wire::kMaxSizeNotes);
  // ...and the decoder refuses more: patch the notes count (after u32 n, u8 0, u8 exists, 4 x i64).
  const size_t notes_at = 4 + 1 + 1 + 32;
  uint32_t seventeen = wire::kMaxSizeNotes + 1;
  std::string more = payload;
  more.insert(more.size() - 1, std::string("\x01\x00\x00\x00n", 5));
  std::memcpy(more.data() + notes_at, &seventeen, 4);
  out.clear();
  Status notes = wire::decode_size_results(more, out, last);
  ASSERT_FALSE(notes.ok());
  EXPECT_EQ(notes.error().message(), "malformed frame: SIZE_RESULT: 17 notes (at most 16)");
  // Negative figures are malformed (messages -1 means unknown and is fine).
  MailboxSize neg;
  neg.bytes = -1;
  out.clear();
  Status negative = wire::decode_size_results(
      wire::encode_size_results(std::vector<Result<MailboxSize>>{Result<MailboxSize>(neg)}, 0, 1, true), out, last);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().message(), "malformed frame: SIZE_RESULT: negative size or count");
  MailboxSize unknown;
  unknown.messages = -1;
  out.clear();
  EXPECT_TRUE(wire::decode_size_results(
                  wire::encode_size_results(std::vector<Result<MailboxSize>>{Result<MailboxSize>(unknown)}, 0, 1, true),
                  out, last)
                  .ok());
  // Every truncation of a valid answer is an error, never a crash or a short read taken as whole.
  std::vector<Result<MailboxSize>> two;
  two.emplace_back(m);
  two.emplace_back(Error::permission("scan 'h/cur': Permission denied"));
  std::string full = wire::encode_size_results(two, 0, 2, true);
  for (size_t cut = 0; cut < full.size(); ++cut) {
    out.clear();
    EXPECT_FALSE(wire::decode_size_results(std::string_view(full).substr(0, cut), out, last).ok()) << cut;
  }
  // Trailing bytes too.
  out.clear();
  EXPECT_EQ(wire::decode_size_results(full + "x", out, last).error().message(), "malformed frame: trailing bytes");
  // A bad result flag and a bad exists flag.
  std::string bad_status = full;
  bad_status[4] = 2;
  out.clear();
  EXPECT_EQ(wire::decode_size_results(bad_status, out, last).error().message(), "malformed frame: bad flag");
}

}  // namespace
}  // namespace mailshard
