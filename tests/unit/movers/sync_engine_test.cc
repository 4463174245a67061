// The sync engine end to end on real directories, through both transports:
// initial + mutate + incremental + mutate + final must leave an identical
// copy (names, content, owner, mode, mtime ns, hard links, symlinks), and
// every bad input ends in a clear error or a correct retry with nothing
// half-written under a final name and nothing outside the root touched.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "movers/sync_engine.h"
#include "movers/token_bucket.h"
#include "tests/support/fakes.h"
#include "tests/unit/movers/maildir_gen.h"
#include "tests/unit/movers/sync_fixture.h"
#include "transport/agent_transport.h"
#include "transport/transport_factory.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::compare_trees;
using testing::FakeClock;
using testing::GenOptions;
using testing::MutateOptions;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class SyncEngineTest : public testing::SyncEngineFixture {
 protected:
  // The passes' statistics, without their timings (what must not depend on
  // the transports or the data path).
  std::vector<PassStats> round_trip(Transport& src, Transport& dst, SyncOptions o = {}) {
    std::vector<PassStats> stats;
    round_trip_into(src, dst, o, stats);
    for (auto& s : stats) {
      s.phases.clear();
      s.seconds = 0;
    }
    return stats;
  }
  void round_trip_into(Transport& src, Transport& dst, const SyncOptions& o, std::vector<PassStats>& stats) {
    testing::generate_home(src_home(), gen_);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(src, dst, o);
    auto initial = e.warm_pass(state);
    ASSERT_TRUE(initial.ok()) << initial.error().message();
    EXPECT_GT(initial->files_copied, 250);
    EXPECT_GT(initial->hard_links, 0);  // Dovecot COPYs stay links
    EXPECT_EQ(initial->symlinks, 1);
    expect_identical();
    stats.push_back(*initial);

    MutateOptions m1;
    m1.day = 1;
    m1.add_folder = true;
    testing::mutate_home(src_home(), m1, gen_);
    auto incr = e.warm_pass(state);
    ASSERT_TRUE(incr.ok()) << incr.error().message();
    EXPECT_GT(incr->renames, 0);      // flag changes are renames, not copies
    EXPECT_GT(incr->deletes, 0);      // expunges
    EXPECT_GT(incr->tails, 0);        // dovecot.index.log / uidlist appends
    EXPECT_GT(incr->block_patches, 0);  // dovecot.index.cache rewritten in place
    EXPECT_LT(incr->files_copied, 40);  // only the new mail, not the renamed
    expect_identical();
    stats.push_back(*incr);
    auto v1 = e.verify(state, VerifyScope::kWritten);
    ASSERT_TRUE(v1.ok()) << v1.error().message();
    EXPECT_GT(v1->uidlists_checked, 3);

    MutateOptions m2;
    m2.day = 2;
    m2.remove_folder = true;
    testing::mutate_home(src_home(), m2, gen_);
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_GT(fin->dirs_removed, 0);
    expect_identical();
    stats.push_back(*fin);
    auto v2 = e.verify(state, VerifyScope::kFull);
    ASSERT_TRUE(v2.ok()) << v2.error().message();
    EXPECT_GT(v2->files_hashed, 250);
  }
};

TEST_F(SyncEngineTest, LocalInitialIncrementalFinalIsIdentical) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  round_trip(*src, *dst);
}

TEST_F(SyncEngineTest, AgentInitialIncrementalFinalIsIdentical) {
  auto src = agent(src_root_);
  auto dst = agent(dst_root_);
  round_trip(*src, *dst);
}

TEST_F(SyncEngineTest, MixedLocalToAgentIsIdentical) {
  auto src = local(src_root_);
  auto dst = agent(dst_root_);
  round_trip(*src, *dst);
}

// The destination's agent pulls from the source's agent (Transport::pull):
// the same tree, and the file contents never cross this process.
TEST_F(SyncEngineTest, AgentToAgentDirectIsIdenticalAndCarriesNoContentHere) {
  auto src = agent(src_root_);
  auto dst = agent(dst_root_);
  SyncOptions o;
  o.direct_from = PeerRef{"src", {MAILSHARD_BIN, "agent", "--stdio", "--root", src_root_}};
  auto stats = round_trip(*src, *dst, o);
  ASSERT_EQ(stats.size(), 3u);
  int64_t content = 0;
  for (const auto& s : stats) content += s.bytes_sent;
  const int64_t here = src->wire_bytes() + dst->wire_bytes();
  EXPECT_GT(here, 0);
  EXPECT_LT(here, content) << "the contents went through this process (via it, they cross twice)";
}

// The same passes give the same statistics whichever way the bytes go.
TEST_F(SyncEngineTest, RoundTripResultsAreTheSameLocalViaControllerAndDirect) {
  std::vector<std::vector<PassStats>> runs;
  int64_t via_bytes = 0;
  for (int mode = 0; mode < 3; ++mode) {
    SCOPED_TRACE(mode == 0 ? "local" : mode == 1 ? "agent via controller" : "agent direct");
    fs::remove_all(base_ / "srcroot");
    fs::remove_all(base_ / "dstroot");
    fs::create_directories(base_ / "srcroot");
    fs::create_directories(base_ / "dstroot");
    SyncOptions o;
    std::unique_ptr<Transport> src = mode == 0 ? local(src_root_) : agent(src_root_);
    std::unique_ptr<Transport> dst = mode == 0 ? local(dst_root_) : agent(dst_root_);
    if (mode == 2) o.direct_from = PeerRef{"src", {MAILSHARD_BIN, "agent", "--stdio", "--root", src_root_}};
    runs.push_back(round_trip(*src, *dst, o));
    if (mode == 1) via_bytes = src->wire_bytes() + dst->wire_bytes();
    if (mode == 2) {
      EXPECT_LT(src->wire_bytes() + dst->wire_bytes(), via_bytes / 2);
    }
  }
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST_F(SyncEngineTest, APeerThatCannotStartFailsThePassNamingIt) {
  testing::generate_home(src_home(), gen_);
  auto src = agent(src_root_);
  auto dst = agent(dst_root_);
  SyncOptions o;
  o.direct_from = PeerRef{"store1", {"/nonexistent/mailshard", "agent", "--stdio", "--root", src_root_}};
  SyncState state = SyncState::fresh();
  auto r = engine(*src, *dst, o).warm_pass(state);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("peer store1"));
  EXPECT_EQ(r.error().message().find('\n'), std::string::npos) << r.error().message();
  // No message reached a final name.
  for (auto it = fs::recursive_directory_iterator(dst_root_); it != fs::recursive_directory_iterator(); ++it)
    EXPECT_FALSE(fs::is_regular_file(it->symlink_status())) << it->path();
}

// A destination agent started with --no-peers refuses to open the source
// itself: the pass fails in one line saying so, and nothing is written.
TEST_F(SyncEngineTest, AnAgentWithNoPeersRefusesTheDirectPathInOneLine) {
  testing::generate_home(src_home(), gen_);
  auto src = agent(src_root_);
  auto dst = agent(dst_root_, {"--no-peers"});
  SyncOptions o;
  o.direct_from = PeerRef{"store1", {MAILSHARD_BIN, "agent", "--stdio", "--root", src_root_}};
  SyncState state = SyncState::fresh();
  auto r = engine(*src, *dst, o).warm_pass(state);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("cannot open peers"));
  EXPECT_EQ(r.error().message().find('\n'), std::string::npos) << r.error().message();
  for (auto it = fs::recursive_directory_iterator(dst_root_); it != fs::recursive_directory_iterator(); ++it)
    EXPECT_FALSE(fs::is_regular_file(it->symlink_status())) << it->path();
  // Through the controller, the same agents copy it.
  auto via = engine(*src, *dst, SyncOptions{}).warm_pass(state);
  ASSERT_TRUE(via.ok()) << via.error().message();
  EXPECT_TRUE(testing::compare_trees(src_home(), dst_home()).empty());
}

// The peer hangs mid-stream (its output stops after 300 kB; the process
// lives on): the destination agent gives it up after --peer-timeout and the
// pass fails in one line naming it, with nothing half-written under a final
// name.
TEST_F(SyncEngineTest, AHungPeerIsGivenUpAfterThePeerTimeout) {
  gen_.messages = 400;
  testing::generate_home(src_home(), gen_);
  auto src = agent(src_root_);
  auto dst = agent(dst_root_, {"--peer-timeout", "2"});
  SyncOptions o;
  o.streams = 1;
  o.direct_from = PeerRef{"store1",
                          {"/bin/sh", "-c",
                           std::string("exec ") + MAILSHARD_BIN + " agent --stdio --root '" + src_root_ +
                               "' | (stdbuf -o0 head -c 300000; exec sleep 30)"}};
  SyncState state = SyncState::fresh();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = engine(*src, *dst, o).warm_pass(state);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("sent nothing for 2 s"));
  EXPECT_THAT(r.error().message(), HasSubstr("store1"));
  EXPECT_EQ(r.error().message().find('\n'), std::string::npos) << r.error().message();
  EXPECT_LT(secs, 25) << "given up well before the peer's 30 s";
  for (auto it = fs::recursive_directory_iterator(dst_home()); it != fs::recursive_directory_iterator(); ++it) {
    EXPECT_EQ(it->path().filename().string().rfind(kTempPrefix, 0), std::string::npos) << "temp left: " << it->path();
    if (!fs::is_regular_file(it->symlink_status())) continue;
    const fs::path rel = fs::relative(it->path(), dst_home());
    EXPECT_EQ(slurp(it->path()), slurp(fs::path(src_home()) / rel)) << rel;
  }
}

// The peer's stream is cut in the middle (its agent's output ends after
// 300 kB): the pass fails, every file under a final name on the destination
// is whole, no temp is left, and the next pass with a working peer finishes.
TEST_F(SyncEngineTest, APeerDyingMidStreamPublishesNothingHalfWrittenAndTheNextPassFinishes) {
  gen_.messages = 400;
  testing::generate_home(src_home(), gen_);
  auto src = agent(src_root_);
  auto dst = agent(dst_root_);
  SyncOptions o;
  o.streams = 1;
  o.direct_from = PeerRef{
      "store1",
      {"/bin/sh", "-c", std::string("exec ") + MAILSHARD_BIN + " agent --stdio --root '" + src_root_ + "' | stdbuf -o0 head -c 300000"}};
  SyncState state = SyncState::fresh();
  auto r = engine(*src, *dst, o).warm_pass(state);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("peer store1"));
  int64_t whole = 0;
  for (auto it = fs::recursive_directory_iterator(dst_home()); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    EXPECT_EQ(name.rfind(kTempPrefix, 0), std::string::npos) << "temp left: " << it->path();
    if (!fs::is_regular_file(it->symlink_status())) continue;
    const fs::path rel = fs::relative(it->path(), dst_home());
    EXPECT_EQ(slurp(it->path()), slurp(fs::path(src_home()) / rel)) << rel;
    ++whole;
  }
  o.direct_from->argv = {MAILSHARD_BIN, "agent", "--stdio", "--root", src_root_};
  auto again = engine(*src, *dst, o).warm_pass(state);
  ASSERT_TRUE(again.ok()) << again.error().message();
  expect_identical();
}

// Wraps a transport and records what was stat'ed and read.
class RecordingTransport final : public Transport {
 public:
  explicit RecordingTransport(Transport& t) : t_(t) {}
  std::string describe() const override { return t_.describe(); }
  int max_streams() const override { return t_.max_streams(); }
  Result<TreeListing> list_tree(const std::string& h) override {
    auto out = t_.list_tree(h);
    {
      std::lock_guard lock(mu_);
      events.push_back("list");
    }
    if (after_list) after_list();
    return out;
  }
  Result<std::vector<StatResult>> stat(const std::vector<StatRequest>& r) override {
    std::lock_guard lock(mu_);
    stat_batches.push_back(r.size());
    for (const auto& q : r) {
      stat_paths.push_back(q.path);
      events.push_back("stat " + q.path);
    }
    return t_.stat(r);
  }
  Result<std::vector<Result<std::string>>> head(const std::vector<std::string>& p, uint32_t m) override {
    return t_.head(p, m);
  }
  Result<std::vector<Status>> apply(const std::vector<TreeOp>& ops) override { return t_.apply(ops); }
  Result<Signature> signature(const SignatureRequest& r) override { return t_.signature(r); }
  Result<FsSpace> space(const std::string& p) override { return t_.space(p); }
  Result<std::unique_ptr<FileReader>> open_reader(std::vector<ReadSpec> specs) override {
    {
      std::lock_guard lock(mu_);
      for (const auto& s : specs) {
        read_paths.push_back(s.path);
        events.push_back("read " + s.path);
      }
    }
    if (before_read) before_read(specs);
    if (hook_reader) return hook_reader(std::move(specs));
    return t_.open_reader(std::move(specs));
  }
  Result<std::unique_ptr<FileWriter>> open_writer(const WriterOptions& o) override { return t_.open_writer(o); }

  std::vector<std::string> stat_paths, read_paths;
  std::vector<size_t> stat_batches;  // the size of each stat call
  std::vector<std::string> events;  // "list" (after the listing was taken), "stat PATH", "read PATH"
  std::function<void()> after_list;
  std::function<void(const std::vector<ReadSpec>&)> before_read;
  std::function<Result<std::unique_ptr<FileReader>>(std::vector<ReadSpec>)> hook_reader;
  Transport& t_;

 private:
  std::mutex mu_;
};

// A warm pass of `e`, then `change()` on the source, then a final pass: what
// the source saw during the final pass ("list", "stat PATH", "read PATH").
std::vector<std::string> final_pass_events(SyncEngine& e, RecordingTransport& src, const std::function<void()>& change) {
  SyncState state = SyncState::fresh();
  if (auto warm = e.warm_pass(state); !warm.ok()) ADD_FAILURE() << warm.error().message();
  change();
  src.events.clear();
  if (auto fin = e.final_pass(state); !fin.ok()) ADD_FAILURE() << fin.error().message();
  return src.events;
}

TEST_F(SyncEngineTest, FrozenPassStatsOnlyNewNamesAndMetadata) {
  auto src_real = local(src_root_);
  auto dst = local(dst_root_);
  RecordingTransport src(*src_real);
  gen_.messages = 400;
  testing::generate_home(src_home(), gen_);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(src, *dst);
  ASSERT_TRUE(e.warm_pass(state).ok());
  MutateOptions m;
  m.deliveries = 5;
  m.flag_changes = 5;
  m.expunges = 0;
  m.copies = 0;
  m.moves = 0;
  testing::mutate_home(src_home(), m, gen_);
  src.stat_paths.clear();
  auto fin = e.final_pass(state);
  ASSERT_TRUE(fin.ok()) << fin.error().message();
  EXPECT_EQ(fin->renames, 5);
  EXPECT_EQ(fin->files_copied, 5);
  // No Maildir message was stat'ed except the 5 new ones: the renamed and
  // the unchanged ones are known from the previous listing.
  int message_stats = 0;
  for (const auto& p : src.stat_paths)
    if (p.find("/cur/") != std::string::npos || p.find("/new/") != std::string::npos) ++message_stats;
  EXPECT_EQ(message_stats, 5);
  expect_identical();
}

// When Dovecot writes a new dovecot.index it keeps the old one as
// dovecot.index.backup (rename): the backup's content is what the
// destination's copy of its sibling holds, so the pass links that copy
// instead of sending it again (before the sibling's new copy replaces it,
// as a new inode). The result is byte-identical and verified, and the old
// content is not sent. A swap of two names links one side only; a log
// rotated to a new name (dovecot.index.log.2) is sent (a later batch).
// sdbox: a message is written (u.N) before the index names it. A delivery
// that lands after the frozen pass listed the source must not be named by
// the copied index: Dovecot reads such a copy as corrupt ("Unexpectedly lost
// uid"). So the indexes are read before the listing. Here every index read
// waits briefly for a delivery made right after the listing; read before
// the listing, the copy's index names only messages the copy has.
TEST_F(SyncEngineTest, SdboxIndexesAreReadBeforeTheListingSoTheyNameOnlyCopiedMail) {
  auto src_real = local(src_root_);
  auto dst = local(dst_root_);
  RecordingTransport src(*src_real);
  const std::string box = src_home() + "/sdbox/mailboxes/INBOX/dbox-Mails/";
  fs::create_directories(box);
  // The "index" names its UIDs, one per line.
  std::string index;
  auto deliver = [&](int uid) {
    testing::write_file(box + "u." + std::to_string(uid), "message " + std::to_string(uid) + "\n");
    index += std::to_string(uid) + "\n";
    testing::write_file(box + "dovecot.index", index);
  };
  for (int uid = 1; uid <= 20; ++uid) deliver(uid);
  testing::write_file(src_home() + "/sdbox/dovecot.list.index", "INBOX\n");
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(src, *dst);
  ASSERT_TRUE(e.warm_pass(state).ok());
  deliver(21);
  src.events.clear();

  std::mutex mu;
  std::condition_variable cv;
  bool delivered = false;
  src.after_list = [&] {
    std::lock_guard lock(mu);
    if (!delivered) deliver(22);
    delivered = true;
    cv.notify_all();
  };
  src.before_read = [&](const std::vector<ReadSpec>& specs) {
    for (const auto& r : specs)
      if (r.path.find("dovecot.index") != std::string::npos) {
        std::unique_lock lock(mu);
        cv.wait_for(lock, std::chrono::milliseconds(300), [&] { return delivered; });
      }
  };
  auto fin = e.final_pass(state);
  ASSERT_TRUE(fin.ok()) << fin.error().message();
  src.after_list = nullptr;
  src.before_read = nullptr;

  const std::string dbox = dst_home() + "/sdbox/mailboxes/INBOX/dbox-Mails/";
  std::istringstream copied(slurp(dbox + "dovecot.index"));
  int named = 0;
  for (std::string uid; std::getline(copied, uid); ++named)
    EXPECT_TRUE(fs::exists(dbox + "u." + uid)) << "the copied index names u." << uid << ", which was not copied";
  EXPECT_EQ(named, 21);
  EXPECT_TRUE(fs::exists(dbox + "u.21"));
  // The index was read before the listing.
  auto list_at = std::find(src.events.begin(), src.events.end(), "list");
  ASSERT_NE(list_at, src.events.end());
  for (auto it = list_at; it != src.events.end(); ++it) EXPECT_EQ(it->find("dovecot.index"), std::string::npos) << *it;
  // The next pass (the sweep's) brings the late message and its index.
  ASSERT_TRUE(e.final_pass(state).ok());
  expect_identical();
}

// mdbox: a delivery appends to a storage file (m.*) and then updates the
// map and mailbox indexes. The frozen pass reads the indexes first and the
// storage files after the listing, so the copied storage holds at least
// what the copied indexes point at.
TEST_F(SyncEngineTest, MdboxStorageFilesAreReadAfterTheIndexes) {
  auto src_real = local(src_root_);
  auto dst = local(dst_root_);
  RecordingTransport src(*src_real);
  const std::string root = src_home() + "/mdbox/";
  fs::create_directories(root + "storage");
  fs::create_directories(root + "mailboxes/INBOX/dbox-Mails");
  std::string storage(40'000, 'm'), map = "map 1\n", box = "box 1\n";
  auto write_all = [&] {
    testing::write_file(root + "storage/m.1", storage);
    testing::write_file(root + "storage/dovecot.map.index", map);
    testing::write_file(root + "mailboxes/INBOX/dbox-Mails/dovecot.index", box);
  };
  write_all();
  SyncEngine e = engine(src, *dst);
  const auto events = final_pass_events(e, src, [&] {
    storage += std::string(5'000, 'n');
    map += "map 2\n";
    box += "box 2\n";
    write_all();
  });
  std::vector<std::string> order;
  for (const auto& ev : events)
    if (ev == "list" || (ev.rfind("read ", 0) == 0 && (ev.find("dovecot.map.index") != std::string::npos ||
                                                       ev.find("dbox-Mails/dovecot.index") != std::string::npos ||
                                                       ev.find("storage/m.1") != std::string::npos)))
      order.push_back(ev.find("m.1") != std::string::npos ? "storage" : ev == "list" ? "list" : "index");
  EXPECT_EQ(order, (std::vector<std::string>{"index", "index", "list", "storage"}));
  expect_identical();
}

// mbox: Dovecot's .imap/ indexes record each folder file's size and the UIDs
// in it, so they are read before the source is listed and the folder files
// after: the copied index never names mail past the copied file's end. (A
// Maildir++ folder named ".imap" is a folder, not mbox indexes: its files
// go as Maildir metadata always did, alongside the listing.)
TEST_F(SyncEngineTest, MboxFolderFilesAreReadAfterTheirIndexes) {
  auto src_real = local(src_root_);
  auto dst = local(dst_root_);
  RecordingTransport src(*src_real);
  const std::string mail = src_home() + "/mail/";
  fs::create_directories(mail + ".imap/INBOX");
  std::string inbox = "From a@example.org Sun Dec  6 10:00:00 2026\nX-UID: 1\n\none\n", index = "uid 1\n";
  auto write_all = [&] {
    testing::write_file(mail + "inbox", inbox);
    testing::write_file(mail + "Sent", "From b@example.org Sun Dec  6 10:00:00 2026\n\nsent\n" + index);
    testing::write_file(mail + ".imap/INBOX/dovecot.index", index);
    testing::write_file(mail + ".imap/dovecot.list.index.log", index);
  };
  write_all();
  SyncEngine e = engine(src, *dst);
  const auto events = final_pass_events(e, src, [&] {
    inbox += "From c@example.org Sun Dec  6 11:00:00 2026\nX-UID: 2\n\ntwo\n";
    index += "uid 2\n";
    write_all();
  });
  std::vector<std::string> order;
  for (const auto& ev : events) {
    if (ev == "list") order.push_back("list");
    else if (ev.rfind("read ", 0) != 0) continue;
    else if (ev.find("/.imap/") != std::string::npos) order.push_back("index");
    else if (ev.find("mail/inbox") != std::string::npos || ev.find("mail/Sent") != std::string::npos)
      order.push_back("folder");
  }
  EXPECT_EQ(order, (std::vector<std::string>{"index", "index", "list", "folder", "folder"}));
  expect_identical();
}

// A tree of one file (an mbox spool INBOX): the source's directory holds
// every user's spool, a subdirectory and a staging directory of another
// move; only the named file is read and copied, appended mail travels as a
// tail, and a file that vanished is removed from the copy alone. Local and
// behind the agent alike.
TEST_F(SyncEngineTest, OnlyEntryCopiesThatOneFileOfItsDirectory) {
  for (const bool agent : {false, true}) {
    SCOPED_TRACE(agent ? "agent" : "local");
    fs::remove_all(src_root_);
    fs::remove_all(dst_root_);
    const std::string spool = src_root_ + "/spool/";
    const std::string from = "From a@example.org Sun Dec  6 10:00:00 2026\n";
    for (const char* d : {"nested", "dave.mailshard-incoming-9"}) fs::create_directories(spool + d);
    testing::write_file(spool + "alice", from + "\none\n");
    testing::write_file(spool + "bob", from + "\nbob's\n");
    testing::write_file(spool + "nested/carol", "not a spool of alice's\n");
    testing::write_file(spool + "dave.mailshard-incoming-9/dave", "another move's staging\n");
    fs::create_directories(dst_root_ + "/spool");
    auto src_real = agent ? this->agent(src_root_) : local(src_root_);
    auto dst = agent ? this->agent(dst_root_) : local(dst_root_);
    RecordingTransport src(*src_real);
    SyncOptions o;
    o.only_entry = "alice";
    SyncEngine e(src, "spool", *dst, "spool/alice.mailshard-incoming-1", o, clock_);
    SyncState state = SyncState::fresh();
    auto first = e.warm_pass(state);
    ASSERT_TRUE(first.ok()) << first.error().message();
    const std::string copy = dst_root_ + "/spool/alice.mailshard-incoming-1";
    std::vector<std::string> names;
    for (const auto& f : fs::recursive_directory_iterator(copy)) names.push_back(fs::relative(f.path(), copy).string());
    EXPECT_EQ(names, std::vector<std::string>{"alice"});
    EXPECT_EQ(testing::read_whole(copy + "/alice"), from + "\none\n");
    for (const auto& ev : src.events) EXPECT_EQ(ev.find("bob"), std::string::npos) << ev;
    EXPECT_EQ(std::count(src.events.begin(), src.events.end(), "list"), 0) << "the spool directory is never listed";

    testing::write_file(spool + "alice", from + "\none\n" + from + "\ntwo\n");  // a delivery appends
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_EQ(testing::read_whole(copy + "/alice"), from + "\none\n" + from + "\ntwo\n");
    EXPECT_EQ(fin->files_copied, 0) << "appended mail is a tail of the copy, not a new file";
    auto v = e.verify_frozen_copy(state);
    ASSERT_TRUE(v.ok()) << v.error().message();

    fs::remove(spool + "alice");
    auto gone = e.warm_pass(state);
    ASSERT_TRUE(gone.ok()) << gone.error().message();
    EXPECT_FALSE(fs::exists(copy + "/alice"));
    EXPECT_EQ(testing::read_whole(spool + "bob"), from + "\nbob's\n");

    fs::create_directories(spool + "alice");  // not a file: refused, naming it
    auto dir = e.warm_pass(state);
    ASSERT_FALSE(dir.ok());
    EXPECT_THAT(dir.error().message(), HasSubstr("'spool/alice'"));
    EXPECT_THAT(dir.error().message(), HasSubstr("is not a regular file"));
  }
}

// mdbox: a message is appended to an m.* file, then the map index gives it
// a map UID, then the mailbox index names it. A pass reads (stats, hashes,
// sends) every mailbox index before the map index, and the m.* files after
// the listing, so a copied mailbox index never names a map UID the copied
// map lacks (Dovecot: "map ... corrupted: Unexpectedly lost INBOX uid=136").
TEST_F(SyncEngineTest, MdboxMailboxIndexesAreReadBeforeTheMapIndex) {
  auto src_real = local(src_root_);
  auto dst = local(dst_root_);
  RecordingTransport src(*src_real);
  const std::string m = src_home() + "/mdbox/";
  std::string records = "rec 1\n";
  auto write_all = [&] {
    testing::write_file(m + "mailboxes/INBOX/dbox-Mails/dovecot.index.log", "INBOX " + records);
    testing::write_file(m + "mailboxes/Sent/dbox-Mails/dovecot.index.log", "Sent " + records);
    testing::write_file(m + "storage/dovecot.map.index", "map " + records);
    testing::write_file(m + "storage/dovecot.map.index.log", "maplog " + records);
    testing::write_file(m + "storage/m.1", "mail " + records);
  };
  fs::create_directories(m + "mailboxes/INBOX/dbox-Mails");
  fs::create_directories(m + "mailboxes/Sent/dbox-Mails");
  fs::create_directories(m + "storage");
  write_all();
  SyncEngine e = engine(src, *dst);
  const auto events = final_pass_events(e, src, [&] {
    records += "rec 2\n";
    write_all();
  });
  std::vector<std::string> order;
  for (const auto& ev : events) {
    if (ev == "list") order.push_back("list");
    else if (ev.find("/mailboxes/") != std::string::npos) order.push_back("mailbox");
    else if (ev.find("/dovecot.map.index") != std::string::npos) order.push_back("map");
    else if (ev.find("/storage/m.") != std::string::npos) order.push_back("storage");
  }
  auto first = [&](const std::string& k) { return std::find(order.begin(), order.end(), k) - order.begin(); };
  auto last = [&](const std::string& k) { return order.rend() - std::find(order.rbegin(), order.rend(), k) - 1; };
  ASSERT_LT(first("mailbox"), static_cast<std::ptrdiff_t>(order.size()));
  ASSERT_LT(first("map"), static_cast<std::ptrdiff_t>(order.size()));
  EXPECT_LT(last("mailbox"), first("map")) << ::testing::PrintToString(order);
  EXPECT_LT(last("map"), first("list")) << ::testing::PrintToString(order);
  EXPECT_LT(first("list"), first("storage")) << ::testing::PrintToString(order);
  expect_identical();
}

TEST_F(SyncEngineTest, ARenamedAsideIndexIsLinkedFromTheDestinationsCopyNotSent) {
  for (bool agent_transport : {false, true}) {
    SCOPED_TRACE(agent_transport ? "agent" : "local");
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    auto src = agent_transport ? agent(src_root_) : local(src_root_);
    auto dst = agent_transport ? agent(dst_root_) : local(dst_root_);
    for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(src_home() + "/Maildir/" + sub);
    const std::string dir = src_home() + "/Maildir/";
    auto records = [](int n, const char* tag) {
      std::string out;
      for (int i = 0; i < n; ++i) out += fmt::format("record {:08d} {} 0000\n", i, tag);
      return out;
    };
    const std::string old_index = records(9000, "gen1"), old_log = records(5000, "log1");
    testing::write_file(dir + "dovecot.index", old_index, 1'700'000'000'000'000'000);
    testing::write_file(dir + "dovecot.index.backup", records(8000, "gen0"), 1'690'000'000'000'000'000);
    testing::write_file(dir + "dovecot.index.log", old_log, 1'700'000'000'000'000'000);
    testing::write_file(dir + "swap-a", records(3000, "aaaa"), 1'700'000'000'000'000'000);
    testing::write_file(dir + "swap-b", records(3000, "bbbb"), 1'700'000'000'000'000'000);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    auto warm = e.warm_pass(state);
    ASSERT_TRUE(warm.ok()) << warm.error().message();

    // Dovecot: the index renamed aside and a new one written; the log rotated.
    ASSERT_EQ(::rename((dir + "dovecot.index").c_str(), (dir + "dovecot.index.backup").c_str()), 0);
    testing::write_file(dir + "dovecot.index", records(9100, "gen2"), 1'700'000'100'000'000'000);
    ASSERT_EQ(::rename((dir + "dovecot.index.log").c_str(), (dir + "dovecot.index.log.2").c_str()), 0);
    testing::write_file(dir + "dovecot.index.log", "new log\n", 1'700'000'100'000'000'000);
    // Two files swap names (each is the other's old content): never linked.
    ASSERT_EQ(::rename((dir + "swap-a").c_str(), (dir + "swap-tmp").c_str()), 0);
    ASSERT_EQ(::rename((dir + "swap-b").c_str(), (dir + "swap-a").c_str()), 0);
    ASSERT_EQ(::rename((dir + "swap-tmp").c_str(), (dir + "swap-b").c_str()), 0);
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_EQ(fin->hard_links, 2);  // the backup and one side of the swap
    // The old index did not cross again; the new index did (a delta or whole), one swapped file and the rotated log.
    EXPECT_LT(fin->bytes_sent, static_cast<int64_t>(records(9100, "gen2").size() + records(3000, "aaaa").size() +
                                                    old_log.size() + 1000));
    EXPECT_GT(fin->bytes_sent, static_cast<int64_t>(records(9100, "gen2").size() / 2));
    expect_identical();
    auto v = e.verify_frozen_copy(state);
    ASSERT_TRUE(v.ok()) << v.error().message();
    // The linked copies are files of their own once the pass is done.
    struct stat st {};
    ASSERT_EQ(::stat((dst_home() + "/Maildir/dovecot.index.backup").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u);
    auto again = e.final_pass(state);
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(again->bytes_sent, 0);
  }
}

// Courier renames its keyword update files when a folder is opened
// (courierimapkeywords/<name> -> .<n>.<name>) and writes a new :list. Under
// the freeze each renamed file is renamed on the destination too (the same
// inode, size, mtime and content as a file the source no longer lists), not
// sent again with an fsync each. A file renamed and rewritten, or replaced by
// a copy (a new inode), is sent as usual.
TEST_F(SyncEngineTest, MetadataFilesRenamedOnTheSourceAreRenamedOnTheDestinationNotSent) {
  for (bool agent_transport : {false, true}) {
    SCOPED_TRACE(agent_transport ? "agent" : "local");
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    auto src = agent_transport ? agent(src_root_) : local(src_root_);
    auto dst = agent_transport ? agent(dst_root_) : local(dst_root_);
    for (const char* sub : {"cur", "new", "tmp", "courierimapkeywords"}) fs::create_directories(src_home() + "/Maildir/" + sub);
    const std::string kw = src_home() + "/Maildir/courierimapkeywords/";
    auto name = [](int i) { return fmt::format("17000000{:02d}.M1P1.host:2,S", i); };
    for (int i = 0; i < 40; ++i) testing::write_file(kw + name(i), fmt::format("$Label{}\n", i % 5), 1'700'000'000'000'000'000 + i);
    testing::write_file(kw + ":list", "$Label0\n", 1'700'000'000'000'000'000);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    auto warm = e.warm_pass(state);
    ASSERT_TRUE(warm.ok()) << warm.error().message();

    // The user opens the folder: 37 files renamed, one renamed and rewritten,
    // one replaced by a copy of itself (another inode), one left; a new :list.
    for (int i = 0; i < 37; ++i)
      ASSERT_EQ(::rename((kw + name(i)).c_str(), (kw + ".1." + name(i)).c_str()), 0);
    ASSERT_EQ(::rename((kw + name(37)).c_str(), (kw + ".1." + name(37)).c_str()), 0);
    testing::write_file(kw + ".1." + name(37), "$Other\n", 1'700'000'000'000'000'000 + 37);
    testing::write_file(kw + ".1." + name(38), slurp(kw + name(38)), 1'700'000'000'000'000'000 + 38);
    ASSERT_EQ(::unlink((kw + name(38)).c_str()), 0);
    testing::write_file(kw + ":list", "$Label0\n$Label1\n$Label2\n", 1'700'000'100'000'000'000);
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_EQ(fin->renames, 37);
    EXPECT_EQ(fin->metadata_sent, 3);  // the rewritten one, the copied one and the :list
    expect_identical();
    EXPECT_TRUE(fs::exists(dst_home() + "/Maildir/courierimapkeywords/.1." + name(0)));
    EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/courierimapkeywords/" + name(0)));
    auto v = e.verify_frozen_copy(state);
    ASSERT_TRUE(v.ok()) << v.error().message();
    EXPECT_GE(v->files_hashed, 37);  // the renamed copies are re-hashed
    EXPECT_EQ(state.dirs.at("Maildir/courierimapkeywords").entries.count(name(0)), 0u);

    // Idempotent.
    auto again = e.final_pass(state);
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(again->renames, 0);
    EXPECT_EQ(again->metadata_sent, 0);
    EXPECT_EQ(again->bytes_sent, 0);

    // A destination copy damaged behind the state's back is caught by verify.
    ASSERT_EQ(::rename((kw + ".1." + name(0)).c_str(), (kw + ".2." + name(0)).c_str()), 0);
    testing::write_file(dst_home() + "/Maildir/courierimapkeywords/.1." + name(0), "$Label9\n",
                        1'700'000'000'000'000'000);
    auto moved = e.final_pass(state);
    ASSERT_TRUE(moved.ok()) << moved.error().message();
    EXPECT_EQ(moved->renames, 1);
    auto bad = e.verify_frozen_copy(state);
    ASSERT_FALSE(bad.ok());
    EXPECT_THAT(bad.error().message(), HasSubstr(".2." + name(0)));
  }
}

// The frozen pass stats and hashes a large batch of rename candidates in
// parts, one per stream; each result must still pair with its own name (a
// result taken for another name matches that name's vanished file, which is
// then renamed to the wrong name: the rename count and the trees differ).
TEST_F(SyncEngineTest, ALargeBatchOfRenameCandidatesIsStatedInPartsAndEachPairsWithItsName) {
  for (bool agent_transport : {false, true}) {
    SCOPED_TRACE(agent_transport ? "agent" : "local");
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    auto src_t = agent_transport ? agent(src_root_) : local(src_root_);
    auto dst = agent_transport ? agent(dst_root_) : local(dst_root_);
    RecordingTransport src(*src_t);
    for (const char* sub : {"cur", "new", "tmp", "courierimapkeywords"}) fs::create_directories(src_home() + "/Maildir/" + sub);
    const std::string kw = src_home() + "/Maildir/courierimapkeywords/";
    auto name = [](int i) { return fmt::format("1700{:06d}.M1P1.host:2,S", i); };
    constexpr int kFiles = 300;
    for (int i = 0; i < kFiles; ++i)
      testing::write_file(kw + name(i), fmt::format("$Label{}\n", i % 7), 1'700'000'000'000'000'000 + i);
    SyncOptions o;
    o.streams = 4;
    SyncEngine e = engine(src, *dst, o);
    SyncState state = SyncState::fresh();
    auto warm = e.warm_pass(state);
    ASSERT_TRUE(warm.ok()) << warm.error().message();

    // Every file renamed; every 10th then replaced by a copy of itself (a new inode).
    int replaced = 0;
    for (int i = 0; i < kFiles; ++i) {
      ASSERT_EQ(::rename((kw + name(i)).c_str(), (kw + ".1." + name(i)).c_str()), 0);
      if (i % 10 == 3) {  // written beside it, then renamed over it: another inode for sure
        testing::write_file(kw + "copy", slurp(kw + ".1." + name(i)), 1'700'000'000'000'000'000 + i);
        ASSERT_EQ(::rename((kw + "copy").c_str(), (kw + ".1." + name(i)).c_str()), 0);
        ++replaced;
      }
    }
    src.stat_batches.clear();
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_EQ(fin->renames, kFiles - replaced);
    EXPECT_EQ(fin->metadata_sent + fin->hard_links, replaced) << fin->metadata_sent << " sent, " << fin->hard_links << " linked";
    // The candidates' batch went out in parts, one per stream.
    const int streams = std::min(o.streams, src.max_streams());
    ASSERT_GT(streams, 1);
    size_t largest = 0, parts = 0;
    for (size_t b : src.stat_batches) {
      largest = std::max(largest, b);
      parts += b == static_cast<size_t>(kFiles / streams) ? 1 : 0;
    }
    EXPECT_LT(largest, static_cast<size_t>(kFiles)) << "one stat call for the whole batch";
    EXPECT_GE(parts, static_cast<size_t>(streams)) << ::testing::PrintToString(src.stat_batches);
    expect_identical();
    auto v = e.verify_frozen_copy(state);
    ASSERT_TRUE(v.ok()) << v.error().message();
  }
}

// A pass killed right after it renamed a keyword file on the destination
// (the journal's state still names the old file, and says the pass did not
// finish): the next pass lists the destination, adopts the new name's copy
// (the same content) without sending it, and drops the old name.
TEST_F(SyncEngineTest, APassKilledAfterAMetadataRenameIsFinishedByTheNext) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  for (const char* sub : {"cur", "new", "tmp", "courierimapkeywords"}) fs::create_directories(src_home() + "/Maildir/" + sub);
  const std::string kw = "/Maildir/courierimapkeywords/";
  testing::write_file(src_home() + kw + "m1", "$Late\n", 1'700'000'000'000'000'000);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.warm_pass(state).ok());

  ASSERT_EQ(::rename((src_home() + kw + "m1").c_str(), (src_home() + kw + ".1.m1").c_str()), 0);
  ASSERT_EQ(::rename((dst_home() + kw + "m1").c_str(), (dst_home() + kw + ".1.m1").c_str()), 0);  // then killed
  state.dirty = true;
  auto fin = e.final_pass(state);
  ASSERT_TRUE(fin.ok()) << fin.error().message();
  EXPECT_EQ(fin->metadata_sent, 0);
  EXPECT_EQ(fin->adopted, 1);
  expect_identical();
  auto v = e.verify_frozen_copy(state);
  ASSERT_TRUE(v.ok()) << v.error().message();
  EXPECT_EQ(state.dirs.at("Maildir/courierimapkeywords").entries.count("m1"), 0u);
}

// A vanished file's destination copy can be wanted twice in one pass: the
// source renamed it (u -> n), and another known file (x) now holds the same
// content, which the metadata batch links from that copy (as for
// dovecot.index.backup). The rename then does not happen (n and x would share
// one inode on the destination, and x's attributes would be n's): n is sent.
TEST_F(SyncEngineTest, AVanishedCopyLinkedToASiblingIsNotAlsoRenamed) {
  for (bool agent_transport : {false, true}) {
    SCOPED_TRACE(agent_transport ? "agent" : "local");
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    auto src = agent_transport ? agent(src_root_) : local(src_root_);
    auto dst = agent_transport ? agent(dst_root_) : local(dst_root_);
    for (const char* sub : {"cur", "new", "tmp", "courierimapkeywords"}) fs::create_directories(src_home() + "/Maildir/" + sub);
    const std::string kw = src_home() + "/Maildir/courierimapkeywords/";
    testing::write_file(kw + "u", "$Late\n", 1'700'000'000'000'000'000);
    testing::write_file(kw + "x", "$Old\n", 1'700'000'000'000'000'000);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    auto warm = e.warm_pass(state);
    ASSERT_TRUE(warm.ok()) << warm.error().message();

    ASSERT_EQ(::rename((kw + "u").c_str(), (kw + "n").c_str()), 0);
    testing::write_file(kw + "x", "$Late\n", 1'700'000'100'000'000'000);
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_EQ(fin->hard_links, 1);  // x, from u's copy
    EXPECT_EQ(fin->renames, 0);
    expect_identical();
    auto v = e.verify_frozen_copy(state);
    ASSERT_TRUE(v.ok()) << v.error().message();
    for (const char* name : {"n", "x"}) {
      struct stat st {};
      ASSERT_EQ(::stat((dst_home() + "/Maildir/courierimapkeywords/" + name).c_str(), &st), 0);
      EXPECT_EQ(st.st_nlink, 1u) << name;
    }
    EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/courierimapkeywords/u"));
  }
}

// Two files whose new content is the same vanished file's old content: one
// of them is linked from its copy, the other is sent. Were both linked, the
// two names would share one inode on the destination, and each would carry
// the attributes set last (Courier: one update file renamed over a message's
// keyword file, and another message given the same keywords).
TEST_F(SyncEngineTest, AReplacedCopyIsLinkedToOneNameAtMost) {
  for (bool agent_transport : {false, true}) {
    SCOPED_TRACE(agent_transport ? "agent" : "local");
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    auto src = agent_transport ? agent(src_root_) : local(src_root_);
    auto dst = agent_transport ? agent(dst_root_) : local(dst_root_);
    for (const char* sub : {"cur", "new", "tmp", "courierimapkeywords"}) fs::create_directories(src_home() + "/Maildir/" + sub);
    const std::string kw = src_home() + "/Maildir/courierimapkeywords/";
    testing::write_file(kw + "u", "$Late\n", 1'700'000'000'000'000'000);
    testing::write_file(kw + "x1", "$Old1\n", 1'700'000'000'000'000'000);
    testing::write_file(kw + "x2", "$Old2\n", 1'700'000'000'000'000'000);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    auto warm = e.warm_pass(state);
    ASSERT_TRUE(warm.ok()) << warm.error().message();

    ASSERT_EQ(::rename((kw + "u").c_str(), (kw + "x1").c_str()), 0);
    testing::write_file(kw + "x2", "$Late\n", 1'700'000'000'000'000'123);
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_EQ(fin->hard_links, 1);
    EXPECT_EQ(fin->metadata_sent, 1);
    expect_identical();
    auto v = e.verify_frozen_copy(state);
    ASSERT_TRUE(v.ok()) << v.error().message();
    for (const char* name : {"x1", "x2"}) {
      struct stat st {};
      ASSERT_EQ(::stat((dst_home() + "/Maildir/courierimapkeywords/" + name).c_str(), &st), 0);
      EXPECT_EQ(st.st_nlink, 1u) << name;
    }
  }
}

// Dovecot rewrites dovecot.index through a temp file and rename() (a new
// inode, the same layout): the frozen pass sends only its changed blocks,
// against the block hashes the warm pass kept of the destination's copy, so
// neither a signature nor a read of the destination's copy is needed under
// the freeze. The result is byte-identical, verified, and a second pass sends
// nothing. A destination copy that no longer matches the state's hashes is
// caught by the whole-file hash and resent whole.
TEST_F(SyncEngineTest, IndexRewrittenViaRenameTravelsAsChangedBlocksUnderTheFreeze) {
  for (bool agent_transport : {false, true}) {
    SCOPED_TRACE(agent_transport ? "agent" : "local");
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    auto src = agent_transport ? agent(src_root_) : local(src_root_);
    auto dst = agent_transport ? agent(dst_root_) : local(dst_root_);
    for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(src_home() + "/Maildir/" + sub);
    const std::string index = src_home() + "/Maildir/dovecot.index";
    std::string content;
    for (int i = 0; content.size() < 300'000; ++i) content += fmt::format("record {:08d} flags 0000\n", i);
    testing::write_file(index, content, 1'700'000'000'000'000'000);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    auto warm = e.warm_pass(state);
    ASSERT_TRUE(warm.ok()) << warm.error().message();
    const EntryState& es = state.dirs.at("Maildir").entries.at("dovecot.index");
    ASSERT_EQ(es.block_size, 1024u);  // kept for the frozen pass
    ASSERT_EQ(es.blocks.size(), (content.size() + 1023) / 1024);

    // Three records change (flags), one is appended: written to a temp file, renamed over.
    auto rewrite = [&](int64_t mtime) {
      for (size_t off : {size_t{40}, size_t{150'000}, size_t{290'000}}) content.replace(off, 4, "FLAG");
      content += "record 99999999 flags 0001\n";
      testing::write_file(index + ".tmp", content, mtime);
      ASSERT_EQ(::rename((index + ".tmp").c_str(), index.c_str()), 0);
    };
    rewrite(1'700'000'100'000'000'000);
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_EQ(fin->block_patches, 1);
    EXPECT_EQ(fin->deltas, 0);
    EXPECT_EQ(fin->whole, 0);
    EXPECT_EQ(fin->signature_bytes, 0);          // the destination's copy was not signed
    EXPECT_LE(fin->bytes_sent, 4 * 1024 + 100);  // three changed blocks and the last one
    expect_identical();
    auto v = e.verify_frozen_copy(state);
    ASSERT_TRUE(v.ok()) << v.error().message();
    EXPECT_GE(v->files_hashed, 1);

    // Idempotent: nothing changed, nothing sent.
    auto again = e.final_pass(state);
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(again->bytes_sent, 0);
    EXPECT_EQ(again->metadata_sent, 0);

    // The destination's copy changed behind the state's back: the patched
    // temp does not hash to the source, nothing is published, it goes whole.
    testing::write_file(dst_home() + "/Maildir/dovecot.index", std::string(content.size(), 'x'), 1'700'000'100'000'000'000);
    rewrite(1'700'000'200'000'000'000);
    auto healed = e.final_pass(state);
    ASSERT_TRUE(healed.ok()) << healed.error().message();
    EXPECT_EQ(healed->whole, 1);
    expect_identical();
    ASSERT_TRUE(e.verify_frozen_copy(state).ok());
  }
}

TEST_F(SyncEngineTest, StateSurvivesSerializationAndNextPassIsIncremental) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  SyncState state = SyncState::fresh();
  {
    SyncEngine e = engine(*src, *dst);
    ASSERT_TRUE(e.warm_pass(state).ok());
  }
  auto blob = state.serialize();
  auto back = SyncState::deserialize(blob);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->entry_count(), state.entry_count());
  EXPECT_EQ(back->block_seed, state.block_seed);
  EXPECT_EQ(back->serialize(), blob);
  SyncEngine e = engine(*src, *dst);
  auto again = e.warm_pass(*back);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->files_copied, 0);
  EXPECT_EQ(again->bytes_sent, 0);
  EXPECT_EQ(again->metadata_sent, 0);
  expect_identical();
}

TEST_F(SyncEngineTest, SymlinksOutOfTheMailboxAreCopiedAsSymlinksAndNeverFollowed) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  fs::create_symlink("/etc/shadow", src_home() + "/Maildir/dovecot-keywords-evil");
  fs::create_symlink("/etc/shadow", src_home() + "/Maildir/cur/1.M1P1.evil,S=5:2,S");
  fs::create_symlink("/etc", src_home() + "/Maildir/.Evil");
  fs::create_symlink("../../../../../../etc/passwd", src_home() + "/sieve/escape.sieve");
  fs::create_symlink("loop_b", src_home() + "/loop_a");
  fs::create_symlink("loop_a", src_home() + "/loop_b");
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  auto r = e.warm_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  for (const auto& [p, t] : std::vector<std::pair<std::string, std::string>>{
           {"/Maildir/dovecot-keywords-evil", "/etc/shadow"},
           {"/Maildir/cur/1.M1P1.evil,S=5:2,S", "/etc/shadow"},
           {"/Maildir/.Evil", "/etc"},
           {"/sieve/escape.sieve", "../../../../../../etc/passwd"},
           {"/loop_a", "loop_b"},
           {"/loop_b", "loop_a"}}) {
    ASSERT_TRUE(fs::is_symlink(dst_home() + p)) << p;
    EXPECT_EQ(fs::read_symlink(dst_home() + p).string(), t) << p;
  }
  // Nothing was read through them: no regular file on the destination holds
  // what /etc/passwd holds, and the symlinked directory was not descended.
  std::string passwd = testing::read_whole("/etc/passwd");
  for (const auto& f : fs::recursive_directory_iterator(dst_home())) {
    if (f.is_symlink()) continue;
    if (f.is_regular_file()) {
      EXPECT_NE(testing::read_whole(f.path()), passwd) << f.path();
    }
  }
  expect_identical();
  auto v = e.verify(state, VerifyScope::kFull);
  EXPECT_TRUE(v.ok()) << v.error().message();
}

TEST_F(SyncEngineTest, DotDotAndAbsoluteHomesAreRefused) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  SyncState state = SyncState::fresh();
  SyncEngine up(*src, "example.org/../../etc", *dst, "x", {}, clock_);
  auto r = up.warm_pass(state);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(r.error().message(),
            "warm pass: list source " + src->describe() + ": invalid path 'example.org/../../etc': '..' component");
  SyncEngine abs(*src, "/etc", *dst, "x", {}, clock_);
  auto a = abs.warm_pass(state);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message(),
            "warm pass: list source " + src->describe() + ": invalid path '/etc': absolute paths are not allowed");
}

// A reader that runs `before(i)` just before the i-th file is opened, and
// `after(i)` once it is open (before its body is read).
class HookReader final : public FileReader {
 public:
  HookReader(std::unique_ptr<FileReader> r, std::vector<ReadSpec> specs, std::function<void(const std::string&)> before,
             std::function<void(const std::string&)> after)
      : r_(std::move(r)), specs_(std::move(specs)), before_(std::move(before)), after_(std::move(after)) {}
  Result<Item> next() override {
    if (i_ < specs_.size() && before_) before_(specs_[i_].path);
    auto item = r_->next();
    if (item.ok() && item->file && after_) after_(specs_[i_].path);
    ++i_;
    return item;
  }

 private:
  std::unique_ptr<FileReader> r_;
  std::vector<ReadSpec> specs_;
  std::function<void(const std::string&)> before_, after_;
  size_t i_ = 0;
};

TEST_F(SyncEngineTest, FileVanishingMidCopyIsAnExpungeNotAnError) {
  auto src_real = local(src_root_);
  auto dst = local(dst_root_);
  RecordingTransport src(*src_real);
  testing::generate_home(src_home(), gen_);
  std::string victim;
  for (const auto& e : fs::directory_iterator(src_home() + "/Maildir/.Sent/cur")) victim = e.path().filename();
  src.hook_reader = [&](std::vector<ReadSpec> specs) -> Result<std::unique_ptr<FileReader>> {
    auto r = src.t_.open_reader(specs);
    if (!r.ok()) return r;
    auto before = [&](const std::string& p) {
      if (p.size() >= victim.size() && p.substr(p.size() - victim.size()) == victim)
        fs::remove(src_root_ + "/" + p);  // expunged just before we open it
    };
    return std::unique_ptr<FileReader>(std::make_unique<HookReader>(std::move(*r), specs, before, nullptr));
  };
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(src, *dst);
  auto r = e.warm_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->vanished, 1);
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/.Sent/cur/" + victim));
  src.hook_reader = nullptr;
  auto again = e.final_pass(state);
  ASSERT_TRUE(again.ok()) << again.error().message();
  expect_identical();
}

TEST_F(SyncEngineTest, FileGrowingMidCopyIsRetriedAndNeverPublishedHalfWay) {
  auto src_real = local(src_root_);
  auto dst = local(dst_root_);
  RecordingTransport src(*src_real);
  testing::generate_home(src_home(), gen_);
  std::string victim;
  for (const auto& e : fs::directory_iterator(src_home() + "/Maildir/.Archive/cur"))
    if (fs::hard_link_count(e.path()) == 1) victim = e.path().filename();
  int grown = 0;
  auto install = [&](bool forever) {
    src.hook_reader = [&, forever](std::vector<ReadSpec> specs) -> Result<std::unique_ptr<FileReader>> {
      auto r = src.t_.open_reader(specs);
      if (!r.ok()) return r;
      auto after = [&, forever](const std::string& p) {
        if (p.size() < victim.size() || p.substr(p.size() - victim.size()) != victim) return;
        if (!forever && grown > 0) return;
        ++grown;  // a writer appends while we copy
        int fd = ::open((src_root_ + "/" + p).c_str(), O_WRONLY | O_APPEND);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, "more\n", 5), 5);
        ::close(fd);
      };
      return std::unique_ptr<FileReader>(std::make_unique<HookReader>(std::move(*r), specs, nullptr, after));
    };
  };
  install(false);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(src, *dst);
  auto r = e.warm_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->unstable, 1);  // left for the next pass
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/.Archive/cur/" + victim));
  auto r2 = e.warm_pass(state);  // it stopped growing: copied now
  ASSERT_TRUE(r2.ok()) << r2.error().message();
  expect_identical();

  // In the frozen pass nothing may change: a file that keeps growing is an error.
  install(true);
  grown = 0;
  testing::write_file(src_home() + "/Maildir/.Archive/cur/" + victim, "changed again\n", 1'700'000'000'000'000'000);
  fs::rename(src_home() + "/Maildir/.Archive/cur/" + victim, src_home() + "/Maildir/.Archive/cur/9.M9P9.grow,S=14");
  victim = "9.M9P9.grow,S=14";
  auto fin = e.final_pass(state);
  ASSERT_FALSE(fin.ok());
  EXPECT_EQ(fin.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(fin.error().message(),
            "final pass: 'Maildir/.Archive/cur/9.M9P9.grow,S=14' kept changing during the frozen pass");
  EXPECT_EQ(grown, 3);  // first read + frozen_retries
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/.Archive/cur/" + victim));
}

TEST_F(SyncEngineTest, FullDestinationFailsCleanlyWithNothingHalfWritten) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  fs::create_directories(dst_root_ + "/staging");
  ASSERT_EQ(::mount("tmpfs", (dst_root_ + "/staging").c_str(), "tmpfs", 0, "size=2m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{dst_root_ + "/staging"};
  gen_.messages = 1500;  // ~2.5 MB of mail: more than fits
  testing::generate_home(src_home(), gen_);
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  auto r = e.warm_pass(state);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNoSpace);
  EXPECT_THAT(r.error().message(), HasSubstr("No space left on device"));
  EXPECT_THAT(r.error().message(), ::testing::StartsWith("warm pass: copy 'Maildir/"));
  // Every file under a final name is complete; no temp is left.
  int complete = 0;
  for (const auto& f : fs::recursive_directory_iterator(dst_home())) {
    std::string name = f.path().filename();
    EXPECT_EQ(name.rfind(".mailshard-tmp-", 0), std::string::npos) << f.path();
    if (!f.is_regular_file() || f.is_symlink()) continue;
    std::string rel = f.path().string().substr(dst_home().size());
    EXPECT_EQ(testing::read_whole(f.path()), testing::read_whole(src_home() + rel)) << rel;
    ++complete;
  }
  EXPECT_GT(complete, 10);
  // The state still describes what made it: a later pass with room goes on from there.
  EXPECT_TRUE(state.dirty);
  EXPECT_GT(state.entry_count(), 10u);
}

TEST_F(SyncEngineTest, PermissionErrorIsReportedWithThePath) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for chattr +i";
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.warm_pass(state).ok());
  std::string locked = dst_home() + "/Maildir/new";
  if (std::system(("chattr +i '" + locked + "' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "chattr +i not supported on this filesystem";
  struct Unlock {
    std::string p;
    ~Unlock() { (void)std::system(("chattr -i '" + p + "'").c_str()); }
  } unlock{locked};
  MutateOptions m;
  m.deliveries = 3;
  m.flag_changes = 0;
  m.expunges = 0;
  m.copies = 0;
  m.moves = 0;
  testing::mutate_home(src_home(), m, gen_);
  // Deliveries at 80% INBOX: make sure one went to INBOX/new.
  testing::write_file(src_home() + "/Maildir/new/2.M2P2.perm,S=3", "abc", 1'700'000'000'000'000'000);
  auto r = e.warm_pass(state);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPermission);
  EXPECT_THAT(r.error().message(), HasSubstr("Operation not permitted"));
  EXPECT_THAT(r.error().message(), HasSubstr("Maildir/new/"));
}

TEST_F(SyncEngineTest, VerifyFindsEveryKindOfDifference) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.final_pass(state).ok());
  ASSERT_TRUE(e.verify(state, VerifyScope::kWritten).ok());
  // A changed UIDVALIDITY in the copy's uidlist (same size).
  std::string ul = dst_home() + "/Maildir/.Sent/dovecot-uidlist";
  std::string text = testing::read_whole(ul);
  text[3] = text[3] == '1' ? '2' : '1';
  struct stat st;
  ::stat(ul.c_str(), &st);
  testing::write_file(ul, text, st.st_mtim.tv_sec * 1'000'000'000ll + st.st_mtim.tv_nsec);
  auto v = e.verify(state, VerifyScope::kWritten);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code(), ErrorCode::kVerifyFailed);
  EXPECT_THAT(v.error().message(), HasSubstr("uidlist header of 'Maildir/.Sent/dovecot-uidlist' differs"));
  EXPECT_THAT(v.error().message(), HasSubstr("'Maildir/.Sent/dovecot-uidlist' differs: content hash"));
  // A missing message, an extra file and a wrong mode.
  std::string one = (*fs::directory_iterator(dst_home() + "/Maildir/.Lists.dev/cur")).path();
  fs::remove(one);
  testing::write_file(dst_home() + "/Maildir/stray", "x");
  ::chmod((dst_home() + "/sieve/main.sieve").c_str(), 0644);
  auto v2 = e.verify(state, VerifyScope::kFull);
  ASSERT_FALSE(v2.ok());
  EXPECT_THAT(v2.error().message(), HasSubstr("missing on the destination: 'Maildir/.Lists.dev/cur/"));
  EXPECT_THAT(v2.error().message(), HasSubstr("extra on the destination: 'Maildir/stray'"));
  EXPECT_THAT(v2.error().message(), HasSubstr("'sieve/main.sieve' differs: mode 600 != 644"));
}

TEST_F(SyncEngineTest, TmpContentsLocksAndStaleTempsAreSkipped) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  testing::write_file(src_home() + "/Maildir/tmp/1.M1P1.inflight", "half a delivery");
  testing::write_file(src_home() + "/Maildir/dovecot-uidlist.lock", "123");
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.warm_pass(state).ok());
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/tmp/1.M1P1.inflight"));
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/dovecot-uidlist.lock"));
  EXPECT_TRUE(fs::is_directory(dst_home() + "/Maildir/tmp"));
  // A crashed pass (the state says it did not finish) left a temp behind:
  // the next pass lists the destination and removes it.
  testing::write_file(dst_home() + "/Maildir/cur/.mailshard-tmp-deadbeef-7", "partial");
  state.dirty = true;
  auto r = e.final_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->temps_removed, 1);
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/cur/.mailshard-tmp-deadbeef-7"));
}

TEST_F(SyncEngineTest, RestartWithoutStateAdoptsWhatIsAlreadyThere) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  {
    SyncState lost = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    ASSERT_TRUE(e.warm_pass(lost).ok());
  }
  // The state was lost (crash before it was saved): nothing is copied again.
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  auto r = e.warm_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->files_copied, 0);
  EXPECT_GT(r->adopted, 250);
  expect_identical();
}

TEST_F(SyncEngineTest, LateDeliveriesAreListedAndSweptWithTheirFlags) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.final_pass(state).ok());
  testing::write_file(src_home() + "/Maildir/new/5.M5P5.late,S=4", "late", 1'800'000'000'000'000'001);
  testing::write_file(src_home() + "/Maildir/.Sent/cur/6.M6P6.late,S=5:2,S", "later", 1'800'000'000'000'000'002);
  testing::write_file(src_home() + "/Maildir/cur/7.M7P7.late,S=6:2,", "latest", 1'800'000'000'000'000'003);
  auto late = e.late_deliveries(state);
  ASSERT_TRUE(late.ok()) << late.error().message();
  EXPECT_EQ(*late, (std::vector<std::string>{"Maildir/.Sent/cur/6.M6P6.late,S=5:2,S", "Maildir/cur/7.M7P7.late,S=6:2,",
                                             "Maildir/new/5.M5P5.late,S=4"}));
  for (const auto& p : *late) {
    auto d = e.deliver_late(p);
    ASSERT_TRUE(d.ok()) << d.error().message();
    EXPECT_FALSE(d->already_there);
  }
  // As delivered (new/, no flags part) -> new/; read or flagged -> cur/ with
  // the flags, including the empty flags part of a message seen as not new.
  EXPECT_EQ(testing::read_whole(dst_home() + "/Maildir/new/5.M5P5.late,S=4"), "late");
  EXPECT_EQ(testing::read_whole(dst_home() + "/Maildir/.Sent/cur/6.M6P6.late,S=5:2,S"), "later");
  EXPECT_EQ(testing::read_whole(dst_home() + "/Maildir/cur/7.M7P7.late,S=6:2,"), "latest");
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/.Sent/new/6.M6P6.late,S=5"));
  struct stat st;
  ASSERT_EQ(::stat((dst_home() + "/Maildir/.Sent/cur/6.M6P6.late,S=5:2,S").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1'800'000'000);  // the mtime is Dovecot's INTERNALDATE
  EXPECT_EQ(st.st_mtim.tv_nsec, 2);
  // Idempotent: a second sweep finds it there and copies nothing, also after
  // Dovecot moved the first copy to cur/ and the user flagged it.
  fs::rename(dst_home() + "/Maildir/new/5.M5P5.late,S=4", dst_home() + "/Maildir/cur/5.M5P5.late,S=4:2,FS");
  auto again = e.deliver_late("Maildir/new/5.M5P5.late,S=4");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_TRUE(again->already_there);
  EXPECT_EQ(again->dst_rel, "Maildir/cur/5.M5P5.late,S=4:2,FS");
  EXPECT_FALSE(fs::exists(dst_home() + "/Maildir/new/5.M5P5.late,S=4"));
  // The source's flags changed since (the same message, another name): still there.
  again = e.deliver_late("Maildir/.Sent/cur/6.M6P6.late,S=5:2,RS");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_there);
  auto bad = e.deliver_late("Maildir/dovecot-uidlist");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "'Maildir/dovecot-uidlist' is not a Maildir message (not in cur/ or new/)");
}

// A folder made on the source after the final pass (sieve fileinto :create
// on the old server): the sweep makes it on the destination, as Maildir++
// has it, with the source's owner and mode, and delivers into it.
TEST_F(SyncEngineTest, ALateMessageInAFolderMadeAfterTheFinalPassGetsTheFolder) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.final_pass(state).ok());
  for (const char* d : {"", "/cur", "/new", "/tmp"}) fs::create_directories(src_home() + "/Maildir/.Receipts" + d);
  ::chmod((src_home() + "/Maildir/.Receipts").c_str(), 0750);
  testing::write_file(src_home() + "/Maildir/.Receipts/new/11.M11P11.late,S=7", "receipt", 1'800'000'000'000'000'000);
  auto late = e.late_deliveries(state);
  ASSERT_TRUE(late.ok()) << late.error().message();
  ASSERT_EQ(*late, (std::vector<std::string>{"Maildir/.Receipts/new/11.M11P11.late,S=7"}));
  auto d = e.deliver_late(late->front());
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(testing::read_whole(dst_home() + "/Maildir/.Receipts/new/11.M11P11.late,S=7"), "receipt");
  for (const char* sub : {"cur", "tmp"}) EXPECT_TRUE(fs::is_directory(dst_home() + "/Maildir/.Receipts/" + sub)) << sub;
  struct stat st;
  ASSERT_EQ(::stat((dst_home() + "/Maildir/.Receipts").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  // Again: the folder is there, the message too.
  auto again = e.deliver_late(late->front());
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_TRUE(again->already_there);
}

// Keyword letters index the folder's dovecot-keywords. When the two servers'
// files disagree (the user made keywords on the destination after the flip,
// while the late message got one on the source), letters are translated by
// name, and a keyword the destination does not name is dropped.
TEST_F(SyncEngineTest, ALateMessagesKeywordsAreTranslatedByNameOrDropped) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  SyncState state = SyncState::fresh();
  SyncEngine first = engine(*src, *dst);
  ASSERT_TRUE(first.final_pass(state).ok());
  testing::write_file(src_home() + "/Maildir/dovecot-keywords", "0 $Forwarded\n1 Work\n2 OnlyOnSource\n");
  testing::write_file(dst_home() + "/Maildir/dovecot-keywords", "0 Work\n1 $Forwarded\n");
  testing::write_file(src_home() + "/Maildir/cur/8.M8P8.late,S=3:2,Sabc", "kw!", 1'800'000'000'000'000'000);
  SyncEngine e = engine(*src, *dst);
  auto d = e.deliver_late("Maildir/cur/8.M8P8.late,S=3:2,Sabc");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->dst_rel, "Maildir/cur/8.M8P8.late,S=3:2,Sab");  // a=$Forwarded -> b, b=Work -> a
  EXPECT_EQ(d->dropped_keywords, (std::vector<std::string>{"OnlyOnSource"}));
  EXPECT_EQ(testing::read_whole(dst_home() + "/Maildir/cur/8.M8P8.late,S=3:2,Sab"), "kw!");
  // No keywords file at the destination: standard flags only.
  fs::remove(dst_home() + "/Maildir/dovecot-keywords");
  testing::write_file(src_home() + "/Maildir/cur/9.M9P9.late,S=3:2,FSa", "kw2");
  SyncEngine e2 = engine(*src, *dst);
  d = e2.deliver_late("Maildir/cur/9.M9P9.late,S=3:2,FSa");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->dst_rel, "Maildir/cur/9.M9P9.late,S=3:2,FS");
  EXPECT_EQ(d->dropped_keywords, (std::vector<std::string>{"$Forwarded"}));
  // A keywords file that is garbage or unreadable: no keyword is guessed,
  // and the message still arrives with its standard flags.
  testing::write_file(dst_home() + "/Maildir/dovecot-keywords", "\x01\x02 garbage\nno index here\n");
  fs::remove(src_home() + "/Maildir/dovecot-keywords");
  fs::create_directory(src_home() + "/Maildir/dovecot-keywords");  // reading it fails (a directory)
  testing::write_file(src_home() + "/Maildir/cur/10.M10P10.late,S=3:2,Sb", "kw3");
  SyncEngine e3 = engine(*src, *dst);
  d = e3.deliver_late("Maildir/cur/10.M10P10.late,S=3:2,Sb");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->dst_rel, "Maildir/cur/10.M10P10.late,S=3:2,S");
  EXPECT_EQ(d->dropped_keywords, (std::vector<std::string>{"letter 'b'"}));
}

TEST_F(SyncEngineTest, BandwidthLimitSleepsOnTheInjectedClock) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  gen_.messages = 200;
  testing::generate_home(src_home(), gen_);
  SyncOptions o;
  o.bwlimit_bytes_per_s = 100 * 1024;
  o.streams = 1;  // one sleeper, so the fake clock's total is the wall time
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst, o);
  auto r = e.warm_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  // bytes / rate, less the initial burst of a tenth of a second.
  double expect_ms = static_cast<double>(r->bytes_sent) * 1000.0 / o.bwlimit_bytes_per_s - 100;
  EXPECT_GT(clock_.slept(), expect_ms * 0.9);
  EXPECT_LT(clock_.slept(), expect_ms * 1.1 + 400);  // + 1 ms rounding per call
  expect_identical();
}

TEST(TokenBucket, AverageRateHoldsAcrossCalls) {
  FakeClock clock;
  TokenBucket b(1000, clock);  // 1000 B/s, burst 100 B
  b.consume(100);
  EXPECT_EQ(clock.slept(), 0);
  b.consume(500);  // 500 B of debt: half a second
  EXPECT_EQ(clock.slept(), 501);
  b.consume(1000);
  EXPECT_NEAR(clock.slept(), 1502, 2);
}

}  // namespace
}  // namespace mailshard
