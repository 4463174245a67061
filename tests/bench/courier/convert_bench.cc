// Times the Courier -> Dovecot conversion's parts that run under the freeze,
// on one Courier home: listing the home (the convert step reads the mirror
// check's listing instead), reading Courier's files from that listing,
// converting them (in memory), applying the result to a copy, and verifying
// the copy. Not a test; a
// driver for profiling (perf record -g) and for before/after figures.
//
// Usage: courier_convert_bench ROOT HOME [RUNS]
//   ROOT: a directory; HOME: a Courier home under it (holding Maildir/).
//   Each run copies HOME to HOME.convert-bench (cp -a, not timed), applies
//   and verifies there, and removes it. Prints the median of each part in ms.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "movers/courier_conversion.h"
#include "transport/transport_factory.h"

using namespace mailshard;

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: courier_convert_bench ROOT HOME [RUNS]\n");
    return 2;
  }
  const std::string root = argv[1], home = argv[2];
  const int runs = argc > 3 ? std::atoi(argv[3]) : 5;
  const std::string copy = home + ".convert-bench";
  auto t = make_local_transport(root, 1, "bench");
  if (!t.ok()) {
    std::fprintf(stderr, "%s\n", t.error().message().c_str());
    return 1;
  }
  std::vector<double> list, read, convert, apply, verify;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto listing = (*t)->list_tree(home);
    if (!listing.ok()) return std::fprintf(stderr, "%s\n", listing.error().message().c_str()), 1;
    list.push_back(ms_since(t0));
    t0 = std::chrono::steady_clock::now();
    auto mailbox = read_courier_mailbox(**t, home + "/Maildir", "Maildir", sub_listing(std::move(*listing), "Maildir"));
    if (!mailbox.ok()) return std::fprintf(stderr, "%s\n", mailbox.error().message().c_str()), 1;
    read.push_back(ms_since(t0));
    t0 = std::chrono::steady_clock::now();
    auto conv = convert_courier_to_dovecot("bench", *mailbox, DovecotLayout{});
    if (!conv.ok()) return std::fprintf(stderr, "%s\n", conv.error().message().c_str()), 1;
    convert.push_back(ms_since(t0));
    const std::string cmd = "rm -rf '" + root + "/" + copy + "' && cp -a '" + root + "/" + home + "' '" + root + "/" + copy + "' && sync";
    if (std::system(cmd.c_str()) != 0) return std::fprintf(stderr, "cannot copy %s\n", home.c_str()), 1;
    t0 = std::chrono::steady_clock::now();
    auto stats = apply_conversion(**t, copy + "/Maildir", *conv);
    if (!stats.ok()) return std::fprintf(stderr, "%s\n", stats.error().message().c_str()), 1;
    apply.push_back(ms_since(t0));
    t0 = std::chrono::steady_clock::now();
    auto n = verify_conversion("bench", **t, copy + "/Maildir", *conv);
    if (!n.ok()) return std::fprintf(stderr, "%s\n", n.error().message().c_str()), 1;
    verify.push_back(ms_since(t0));
    std::fprintf(stderr, "run %d: list %.1f read %.1f convert %.1f apply %.1f verify %.1f ms (%lld folders, %lld renamed)\n",
                 r + 1, list.back(), read.back(), convert.back(), apply.back(), verify.back(),
                 static_cast<long long>(stats->folders), static_cast<long long>(stats->messages_renamed));
  }
  std::system(("rm -rf '" + root + "/" + copy + "'").c_str());
  std::fflush(stderr);
  std::printf("median ms: list %.1f read %.1f convert %.1f apply %.1f verify %.1f\n", median(list), median(read),
              median(convert), median(apply), median(verify));
  return 0;
}
