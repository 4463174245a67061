// libFuzzer target for the agent protocol decoder: arbitrary bytes as the
// stream an agent (or a client) receives. Frames are cut by FrameChannel
// exactly as in production, and every payload is offered to every decoder.
// Nothing may crash, hang, or allocate beyond the frame limit; malformed
// input must come back as an error.
//
// Built and run with the other targets by tests/fuzz/run.sh (README.md there).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "wire/wire.h"

using namespace mailshard;

namespace {

void decode_all(std::string_view p) {
  bool last = false;
  std::vector<StatRequest> sq;
  (void)wire::decode_stat_requests(p, sq, last);
  std::vector<StatResult> sr;
  (void)wire::decode_stat_results(p, sr, last);
  uint32_t max_bytes = 0;
  std::vector<std::string> paths;
  (void)wire::decode_head_request(p, max_bytes, paths, last);
  std::vector<Result<std::string>> hr;
  (void)wire::decode_head_results(p, hr, last);
  std::vector<TreeOp> ops;
  (void)wire::decode_ops(p, ops, last);
  std::vector<Status> st;
  (void)wire::decode_statuses(p, st, last);
  std::vector<std::string> homes;
  (void)wire::decode_size_request(p, homes, last);
  std::vector<Result<MailboxSize>> sizes;
  (void)wire::decode_size_results(p, sizes, last);
  (void)wire::decode_signature_request(p);
  FileAttrs a;
  uint64_t n = 0, m = 0;
  (void)wire::decode_sig_end(p, a, n);
  (void)wire::decode_space(p);
  TreeListing tl;
  (void)wire::decode_list_dir(p, tl);
  (void)wire::decode_list_dir(p, tl);  // as a continuation too
  ReadSpec rs;
  (void)wire::decode_read_spec(p, rs, n, m);
  ReadStatus rst;
  std::optional<Error> err;
  (void)wire::decode_file_meta(p, rst, err, a);
  SourceTrailer t;
  (void)wire::decode_trailer(p, t, n);
  WriteSpec ws;
  (void)wire::decode_file_begin(p, ws, a);
  std::vector<WriteResult> wr;
  (void)wire::decode_write_results(p, wr, last);
  int64_t off;
  std::string_view bytes;
  (void)wire::decode_data(p, off, bytes);
  std::vector<Hash128> hashes;
  (void)wire::decode_hashes(p, hashes);
  (void)wire::decode_hello(p, true);
  (void)wire::decode_hello(p, false);
  (void)wire::decode_error(p);
  PeerRef peer;
  Durability dur;
  (void)wire::decode_pull(p, peer, dur);
  CopySpec cs;
  (void)wire::decode_pull_spec(p, cs, n, m);
  std::vector<CopyOutcome> outcomes;
  std::vector<uint64_t> counts;
  (void)wire::decode_pull_results(p, outcomes, counts, last);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The raw input as one payload...
  decode_all(std::string_view(reinterpret_cast<const char*>(data), size));
  // ...and as a framed stream read through FrameChannel.
  int fd = ::memfd_create("fuzz", 0);
  if (fd < 0) return 0;
  if (size && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  ::lseek(fd, 0, SEEK_SET);
  wire::FrameChannel ch(fd, -1, "fuzz");
  // Odd-sized inputs are read as after a HELLO that agreed on compression
  // (ZFRAMES inflated: bombs, garbage, frames cut between ZFRAMES).
  if (size % 2 && !ch.enable_compression().ok()) {
    ::close(fd);
    return 0;
  }
  for (int i = 0; i < 64; ++i) {
    auto f = ch.recv();
    if (!f.ok()) break;
    decode_all(f->payload);
    (void)wire::unexpected(*f, "anything", "fuzz");
  }
  ::close(fd);
  return 0;
}
