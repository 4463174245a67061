#include "core/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "util/fs.h"

namespace mailshard {
namespace {

std::string make_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/snapshot_test_" + name;
  EXPECT_TRUE(make_dirs(d).ok());
  return d;
}

void write(const std::string& dir, const std::string& servers, const std::string& users) {
  ASSERT_TRUE(write_file_atomic(dir + "/servers.csv", servers).ok());
  ASSERT_TRUE(write_file_atomic(dir + "/users.csv", users).ok());
  ::unlink((dir + "/meta.json").c_str());
}

const char* kServers =
    "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n"
    "0,std,1000,10,16.0,0\n"
    "1,std,2000,20,32.0,1\n"
    "2,ssd,500,5,8.0,0\n";

TEST(Snapshot, RoundTripKeepsNamesAndColumns) {
  Snapshot s;
  s.servers = {{"store1", "std", 1000, 10, 16, false, ""}, {"store2", "std", 2000, 20, 32, true, ""}};
  s.add_user(0, 100, 1.5, false, "alice@example.org");
  s.add_user(1, 200, 0.25, true, "bob@example.org");
  s.taken_at_ms = 1700000000000;
  s.source = "inventory";
  std::string dir = make_dir("roundtrip");
  ASSERT_TRUE(write_snapshot(s, dir, R"({"how":"test"})").ok());
  auto r = read_snapshot(dir);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->servers.size(), 2u);
  EXPECT_EQ(r->servers[1].name, "store2");
  EXPECT_TRUE(r->servers[1].draining);
  EXPECT_EQ(r->servers[0].load_capacity, 16);
  ASSERT_EQ(r->user_count(), 2u);
  EXPECT_EQ(r->user_size[1], 200);
  EXPECT_EQ(r->user_activity[0], 1.5);
  EXPECT_EQ(r->user_pinned[1], 1);
  EXPECT_EQ(r->user_label(0), "alice@example.org");
  EXPECT_EQ(r->server_label(0), "store1");
  EXPECT_EQ(r->taken_at_ms, 1700000000000);
  EXPECT_EQ(r->source, "inventory");
  auto text = read_file(dir + "/users.csv");
  EXPECT_EQ(*text, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,100,1.5000,0\n1,1,std,200,0.2500,1\n");
}

TEST(Snapshot, ReadsGeneratedFleetWithoutNames) {
  std::string dir = make_dir("plain");
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,5,0.1,0\n1,2,ssd,7,0.0,1\n");
  auto r = read_snapshot(dir);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->user_count(), 2u);
  EXPECT_EQ(r->user_label(1), "1");
  EXPECT_EQ(r->server_label(2), "2");
  EXPECT_TRUE(r->notes.empty());
}

TEST(Snapshot, MissingColumnIsNamed) {
  std::string dir = make_dir("missing");
  write(dir, kServers, "user_id,server_id,class,size_bytes,pinned\n0,0,std,5,0\n");
  auto r = read_snapshot(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "users.csv:1: missing column 'activity' (expected user_id,server_id,class,size_bytes,activity,pinned)");
}

TEST(Snapshot, NegativeSizeIsRejected) {
  std::string dir = make_dir("negative");
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,5,0.1,0\n1,0,std,-5,0.1,0\n");
  auto r = read_snapshot(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "users.csv:3: size_bytes '-5' is negative");
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
}

TEST(Snapshot, UnknownServerIsRejected) {
  std::string dir = make_dir("unknown_server");
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,7,std,5,0.1,0\n");
  auto r = read_snapshot(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "users.csv:2: server_id 7 is not in servers.csv");
}

TEST(Snapshot, ClassMismatchPinsTheUserWithANote) {
  std::string dir = make_dir("class");
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,2,std,5,0.1,0\n");
  auto r = read_snapshot(dir);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->user_pinned[0], 1);
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_EQ(r->notes[0], "users.csv:2: user 0 is class 'std' but server 2 is 'ssd'; treated as pinned");
}

// Canonical column order takes the fast path; any other order the general
// one. Both must read the same fleet.
TEST(Snapshot, FastAndGeneralReadersAgree) {
  std::string fast = make_dir("fast"), general = make_dir("general");
  write(fast, kServers,
        "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,5,0.125,0\n1,2,ssd,7,3e-2,1\n2,1,std,0,12,0\n");
  write(general, kServers,
        "server_id,user_id,class,size_bytes,activity,pinned\n0,0,std,5,0.125,0\n2,1,ssd,7,3e-2,1\n1,2,std,0,12,0\n");
  auto a = read_snapshot(fast), b = read_snapshot(general);
  ASSERT_TRUE(a.ok()) << a.error().message();
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(a->user_server, (std::vector<int32_t>{0, 2, 1}));
  EXPECT_EQ(a->user_server, b->user_server);
  EXPECT_EQ(a->user_size, b->user_size);
  EXPECT_EQ(a->user_activity, b->user_activity);
  EXPECT_EQ(a->user_activity[1], 0.03);
  EXPECT_EQ(a->user_pinned, b->user_pinned);
  EXPECT_TRUE(a->notes.empty());
}

// The fast reader compares the user id and the class as text when they are
// short (a word with the comma): ids across digit boundaries, a class name
// too long for that and one that differs from the server's must read as the
// general reader reads them.
TEST(Snapshot, FastReaderIdsAndClassesAsText) {
  const std::string servers =
      "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n"
      "0,std,1000,10,16.0,0\n"
      "1,archive_disks,2000,20,32.0,0\n";
  std::string fast_rows = "user_id,server_id,class,size_bytes,activity,pinned\n";
  std::string general_rows = "server_id,user_id,class,size_bytes,activity,pinned\n";
  for (int u = 0; u < 1205; ++u) {
    const int s = u % 3 == 0 ? 1 : 0;
    const std::string cls = u == 1000 ? "archive_disks" : (s == 1 ? "archive_disks" : "std");  // user 1000: wrong class
    fast_rows += fmt::format("{},{},{},{},0.5,0\n", u, s, cls, u * 7);
    general_rows += fmt::format("{},{},{},{},0.5,0\n", s, u, cls, u * 7);
  }
  std::string fast = make_dir("text_fields_fast"), general = make_dir("text_fields_general");
  write(fast, servers, fast_rows);
  write(general, servers, general_rows);
  auto a = read_snapshot(fast), b = read_snapshot(general);
  ASSERT_TRUE(a.ok()) << a.error().message();
  ASSERT_TRUE(b.ok()) << b.error().message();
  ASSERT_EQ(a->user_count(), 1205u);
  EXPECT_EQ(a->user_server, b->user_server);
  EXPECT_EQ(a->user_size, b->user_size);
  EXPECT_EQ(a->user_pinned, b->user_pinned);
  EXPECT_EQ(a->user_pinned[1000], 1);
  EXPECT_EQ(a->notes, b->notes);
  ASSERT_EQ(a->notes.size(), 1u);
  EXPECT_EQ(a->notes[0], "users.csv:1002: user 1000 is class 'archive_disks' but server 0 is 'std'; treated as pinned");
  // An id out of order is refused, whichever way it is read.
  write(fast, servers, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,5,0.5,0\n2,0,std,5,0.5,0\n");
  auto c = read_snapshot(fast);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "users.csv:3: user_id '2' must be 1 (ids are 0..n-1 in order)");
}

// A large users.csv (600 000 users, 19 MB) reads the same through the fast
// reader and the general one, and a problem near its end or in its middle
// (an id out of order, a server that does not exist) is reported as the
// general reader reports it.
TEST(Snapshot, LargeFileFastAndGeneralReadersAgree) {
  const int n = 600000;
  std::string fast_rows = "user_id,server_id,class,size_bytes,activity,pinned\n";
  std::string general_rows = "server_id,user_id,class,size_bytes,activity,pinned\n";
  for (int u = 0; u < n; ++u) {
    const int s = u % 7 == 3 ? 2 : u % 2;
    const char* cls = s == 2 ? "ssd" : "std";
    const std::string act = fmt::format("{}.{:04d}", u % 13, u % 9973);
    fast_rows += fmt::format("{},{},{},{},{},{}\n", u, s, cls, int64_t{u} * 104729 % 1000000007, act, u % 11 == 0 ? 1 : 0);
    general_rows += fmt::format("{},{},{},{},{},{}\n", s, u, cls, int64_t{u} * 104729 % 1000000007, act, u % 11 == 0 ? 1 : 0);
  }
  ASSERT_GT(fast_rows.size(), 16u << 20);
  std::string fast = make_dir("large_fast"), general = make_dir("large_general");
  write(fast, kServers, fast_rows);
  write(general, kServers, general_rows);
  auto a = read_snapshot(fast), b = read_snapshot(general);
  ASSERT_TRUE(a.ok()) << a.error().message();
  ASSERT_TRUE(b.ok()) << b.error().message();
  ASSERT_EQ(a->user_count(), static_cast<size_t>(n));
  EXPECT_EQ(a->user_server, b->user_server);
  EXPECT_EQ(a->user_size, b->user_size);
  EXPECT_EQ(a->user_activity, b->user_activity);
  EXPECT_EQ(a->user_pinned, b->user_pinned);
  EXPECT_TRUE(a->notes.empty());

  // A row near the end goes wrong: the line the general reader names.
  auto broken = [&](const std::string& from, const std::string& to) {
    std::string rows = fast_rows;
    const size_t at = rows.rfind(from);
    EXPECT_NE(at, std::string::npos);
    rows.replace(at, from.size(), to);
    write(fast, kServers, rows);
    auto r = read_snapshot(fast);
    return r.ok() ? std::string("ok") : r.error().message();
  };
  const int last = n - 1;  // 599999: server 1, class std
  const std::string row = fmt::format("\n{},1,std,", last);
  EXPECT_EQ(broken(row, fmt::format("\n{},1,std,", last + 1)),
            fmt::format("users.csv:{}: user_id '{}' must be {} (ids are 0..n-1 in order)", n + 1, last + 1, last));
  EXPECT_EQ(broken(row, fmt::format("\n{},9,std,", last)), fmt::format("users.csv:{}: server_id 9 is not in servers.csv", n + 1));
  // A row missing in the middle of the file.
  const std::string mid = fmt::format("\n{},", n / 2);
  const std::string mid_next = fmt::format("\n{},", n / 2 + 1);
  std::string rows = fast_rows;
  const size_t from = rows.find(mid), to = rows.find(mid_next);
  rows.erase(from, to - from);
  write(fast, kServers, rows);
  auto r = read_snapshot(fast);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), fmt::format("users.csv:{}: user_id '{}' must be {} (ids are 0..n-1 in order)", n / 2 + 2,
                                             n / 2 + 1, n / 2));
}

// The fast reader's activity parse must give the very double from_chars
// (and Python's float()) gives, for every form gen_fleet.py writes.
TEST(Snapshot, FastActivityParseIsExact) {
  std::string users = "user_id,server_id,class,size_bytes,activity,pinned\n";
  const std::vector<std::string> acts = {"0.0000", "0.1000", "2.7183", "123.4567", "0.0009", "99999999999.9999",
                                         "5", "1e-3", "7.25e2", "0.30000000000000004", ".5", "5.", "1234567.1234567",
                                         "12345678.5", "0.12345678", "1234567", "12345678", "0.0",
                                         // one word (digits, dot, digits and the comma in 8 bytes) and just past it
                                         "1.5", "9.9999", "12.34", "1234.56", "1.23456", "12345.6", "123456.7",
                                         "1.234567", "0.000001", "3.1e2"};
  for (size_t i = 0; i < acts.size(); ++i) users += std::to_string(i) + ",0,std,1," + acts[i] + ",0\n";
  std::string dir = make_dir("acts");
  write(dir, kServers, users);
  auto r = read_snapshot(dir);
  ASSERT_TRUE(r.ok()) << r.error().message();
  for (size_t i = 0; i < acts.size(); ++i) EXPECT_EQ(r->user_activity[i], std::strtod(acts[i].c_str(), nullptr)) << acts[i];
  // A second dot is no number: the general reader names it.
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,1,4.5.6,0\n");
  auto bad = read_snapshot(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "users.csv:2: activity '4.5.6' must be a non-negative number");
}

// The fast reader parses integers eight digits at a time: every length and
// every digit position must come out right, 1 to 16 digits (a size is at most
// 2^53, 9007199254740992; longer ones are refused).
TEST(Snapshot, FastIntegerParseIsExact) {
  std::string users = "user_id,server_id,class,size_bytes,activity,pinned\n";
  std::vector<int64_t> sizes = {0, 7, 10, 99, 100, 12345678, 99999999, 100000000, 123456789, 1234567890123,
                                9007199254740992};
  uint64_t x = 88172645463325252ull;  // xorshift: many digit patterns, deterministic
  for (int i = 0; i < 200; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sizes.push_back(static_cast<int64_t>(x % 9007199254740993ull) >> (i % 53));
  }
  for (size_t i = 0; i < sizes.size(); ++i) users += std::to_string(i) + ",0,std," + std::to_string(sizes[i]) + ",0.5,0\n";
  std::string dir = make_dir("ints");
  write(dir, kServers, users);
  auto r = read_snapshot(dir);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->user_size, sizes);
  // 17 and 18 digits parse, and are refused as too large.
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,999999999999999999,0.5,0\n");
  auto eighteen = read_snapshot(dir);
  ASSERT_FALSE(eighteen.ok());
  EXPECT_EQ(eighteen.error().message(), "users.csv:2: size_bytes 999999999999999999 is larger than 2^53");
  // 19 digits do not fit the fast path; the general reader names the problem.
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,99999999999999999999,0.5,0\n");
  auto big = read_snapshot(dir);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().message(), "users.csv:2: size_bytes '99999999999999999999' is not an integer");
}

TEST(Snapshot, MissingFolderNamesTheFile) {
  auto r = read_snapshot("/nonexistent/snapshot");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "cannot read '/nonexistent/snapshot/servers.csv': No such file or directory");
}

TEST(Snapshot, OutOfOrderIdsAreRejected) {
  std::string dir = make_dir("order");
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n1,0,std,5,0.1,0\n");
  auto r = read_snapshot(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "users.csv:2: user_id '1' must be 0 (ids are 0..n-1 in order)");
}

// Sizes near 2^63 used to overflow the planners' sums (UBSan in capacity.cc,
// lower_bounds.cc, user_index.cc). One value is bounded by 2^53, every sum by 2^62.
TEST(Snapshot, SizeNear2To63IsRejectedByBothReaders) {
  std::string dir = make_dir("huge_size");
  // Canonical order: the fast reader declines, the general one names the line.
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n0,0,std,5,0.1,0\n1,0,std,9223372036854775000,0.1,0\n");
  auto r = read_snapshot(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "users.csv:3: size_bytes 9223372036854775000 is larger than 2^53");
}

TEST(Snapshot, SizesWhoseSumWouldOverflowAreRejected) {
  std::string dir = make_dir("huge_sum");
  std::string users = "user_id,server_id,class,size_bytes,activity,pinned\n";
  for (int u = 0; u < 600; ++u) users += std::to_string(u) + ",0,std,9007199254740992,0.1,0\n";  // 600 x 2^53
  write(dir, kServers, users);
  auto r = read_snapshot(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "users.csv:513: the used bytes add up to more than 2^62");
}

TEST(Snapshot, CapacityPast2To53IsRejected) {
  std::string dir = make_dir("huge_capacity");
  write(dir,
        "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n0,std,9223372036854775807,0,1.0,0\n",
        "user_id,server_id,class,size_bytes,activity,pinned\n");
  auto r = read_snapshot(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "servers.csv:2: capacity_bytes '9223372036854775807' must be a positive integer of at most 2^53");
}

// Reads the snapshot on a thread and waits at most 10 s: a reader blocked on
// the FIFO fails the test (and is released by opening the FIFO for writing).
Result<Snapshot> read_promptly(const std::string& dir, const std::string& fifo) {
  auto fut = std::async(std::launch::async, [&] { return read_snapshot(dir); });
  if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "blocked on the FIFO " << fifo;
    int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  }
  return fut.get();
}

// A FIFO as users.csv used to block in open() for ever.
TEST(Snapshot, FifoAsUsersCsvIsRefusedWithoutBlocking) {
  std::string dir = make_dir("fifo");
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n");
  ::unlink((dir + "/users.csv").c_str());
  ASSERT_EQ(::mkfifo((dir + "/users.csv").c_str(), 0600), 0);
  auto r = read_promptly(dir, dir + "/users.csv");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "cannot read '" + dir + "/users.csv': not a regular file");
}

TEST(Snapshot, FifoAsMetaJsonIsRefusedNotSkipped) {
  std::string dir = make_dir("fifo_meta");
  write(dir, kServers, "user_id,server_id,class,size_bytes,activity,pinned\n");
  ASSERT_EQ(::mkfifo((dir + "/meta.json").c_str(), 0600), 0);
  auto r = read_promptly(dir, dir + "/meta.json");
  ::unlink((dir + "/meta.json").c_str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "cannot read '" + dir + "/meta.json': not a regular file");
}

}  // namespace
}  // namespace mailshard
