#include "inventory/inventory.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "inventory/maildir_scanner.h"
#include "tests/support/fakes.h"
#include "tests/unit/inventory/maildir_test_util.h"
#include "transport/agent_transport.h"

namespace mailshard {
namespace {

using testing::FakeClock;
using testing::FakeDirectory;
using testing::TempTree;

constexpr int64_t GiB = 1ll << 30;

class FakeMetrics final : public MetricsSource {
 public:
  std::map<std::string, Result<ServerMetrics>> by_server;
  Result<ServerMetrics> fetch(const ServerConfig& s) override {
    auto it = by_server.find(s.name);
    if (it == by_server.end()) return Error::internal("no fake metrics for " + s.name);
    return it->second;
  }
};

class FakeSizer final : public MailboxSizer {
 public:
  std::map<std::string, Result<MailboxSize>> by_user;
  std::mutex mu;
  std::vector<std::string> asked;
  Result<MailboxSize> size(const ServerConfig&, const MailboxRef& m) override {
    std::lock_guard lock(mu);
    asked.push_back(m.user);
    auto it = by_user.find(m.user);
    if (it == by_user.end()) return Error::internal("no fake size for " + m.user);
    return it->second;
  }
};

ServerMetrics disk(int64_t size, int64_t avail, double load = 0.5, int cpus = 8) {
  ServerMetrics m;
  m.fs_size_bytes = size;
  m.fs_avail_bytes = avail;
  m.load1 = load;
  m.cpus = cpus;
  m.source = "fake";
  return m;
}

MailboxSize mailbox(int64_t bytes, int64_t messages) {
  MailboxSize s;
  s.bytes = bytes;
  s.messages = messages;
  return s;
}

Account account(const std::string& user, const std::string& host, const std::string& status = "active",
                double activity = 0) {
  Account a;
  a.dn = "uid=" + user + ",ou=people,dc=example,dc=org";
  a.user = user;
  a.host = host;
  a.home = "example.org/" + user;
  a.home_rel = a.home;
  a.status = status;
  a.activity = activity;
  return a;
}

class InventoryTest : public ::testing::Test {
 protected:
  InventoryTest() {
    for (const char* name : {"store1", "store2", "store3"}) {
      t_.dir(name);
      ServerConfig s;
      s.name = name;
      s.mail_root = t_.path(name);
      config_.servers.push_back(s);
    }
    config_.inventory.threads = 3;
    metrics_.by_server.emplace("store1", disk(100 * GiB, 60 * GiB, 1.5, 8));
    metrics_.by_server.emplace("store2", disk(200 * GiB, 180 * GiB, 0.5, 16));
    metrics_.by_server.emplace("store3", disk(100 * GiB, 90 * GiB));
    dir_.accounts = {account("alice", "store1", "active", 3), account("bob", "store1"), account("carol", "store2"),
                     account("dave", "store3", "frozen")};
    sizer_.by_user.emplace("alice", mailbox(10 * GiB, 1000));
    sizer_.by_user.emplace("bob", mailbox(5 * GiB, 500));
    sizer_.by_user.emplace("carol", mailbox(20 * GiB, 2000));
    sizer_.by_user.emplace("dave", mailbox(1 * GiB, 10));
  }

  Result<Inventory> run() {
    InventoryOptions o;
    o.progress = false;
    return take_inventory(config_, dir_, metrics_, sizer_, clock_, o);
  }

  TempTree t_;
  Config config_;
  FakeDirectory dir_;
  FakeMetrics metrics_;
  FakeSizer sizer_;
  FakeClock clock_;
};

TEST_F(InventoryTest, AddsUpPerServerAndBuildsTheSnapshot) {
  auto inv = run();
  ASSERT_TRUE(inv.ok()) << inv.error().message();
  EXPECT_TRUE(inv->complete());
  EXPECT_EQ(inv->size_source, "scan");
  EXPECT_EQ(inv->taken_at_ms, clock_.now_ms());
  ASSERT_EQ(inv->servers.size(), 3u);
  const auto& s1 = inv->servers[0];
  EXPECT_EQ(s1.users, 2);
  EXPECT_EQ(s1.mail_bytes, 15 * GiB);
  EXPECT_EQ(s1.messages, 1500);
  EXPECT_EQ(s1.capacity_bytes, 100 * GiB);
  EXPECT_EQ(s1.used_bytes, 40 * GiB);
  EXPECT_EQ(s1.free_bytes, 60 * GiB);
  EXPECT_EQ(s1.other_used_bytes, 25 * GiB);
  EXPECT_DOUBLE_EQ(s1.utilisation, 0.4);
  EXPECT_EQ(s1.load_capacity, 8);
  // store2: 20 GiB used in all, all of it mail -> other_used is 0, never negative.
  EXPECT_EQ(inv->servers[1].other_used_bytes, 0);

  ASSERT_EQ(inv->classes.size(), 1u);
  EXPECT_EQ(inv->classes[0].name, "std");
  EXPECT_DOUBLE_EQ(inv->classes[0].mean_utilisation, (40.0 + 20 + 10) / 400);
  // utilisations 0.4, 0.1, 0.1 around 0.175
  EXPECT_NEAR(inv->classes[0].stddev_utilisation, std::sqrt((0.225 * 0.225 + 2 * 0.075 * 0.075) / 3), 1e-12);

  const Snapshot& snap = inv->snapshot;
  ASSERT_EQ(snap.servers.size(), 3u);
  EXPECT_EQ(snap.servers[0].name, "store1");
  EXPECT_EQ(snap.servers[0].other_used_bytes, 25 * GiB);
  EXPECT_EQ(snap.servers[1].load_capacity, 16);
  ASSERT_EQ(snap.user_count(), 4u);
  EXPECT_EQ(snap.user_names, (std::vector<std::string>{"alice", "bob", "carol", "dave"}));
  EXPECT_EQ(snap.user_server, (std::vector<int32_t>{0, 0, 1, 2}));
  EXPECT_EQ(snap.user_size[2], 20 * GiB);
  EXPECT_EQ(snap.user_activity[0], 3);
  EXPECT_EQ(snap.user_pinned, (std::vector<uint8_t>{0, 0, 0, 1}));  // dave is frozen: mid-move
}

TEST_F(InventoryTest, CapacityOverrideCountsOnlyTheServersOwnMail) {
  config_.servers[0].capacity_bytes = 50 * GiB;
  auto inv = run();
  ASSERT_TRUE(inv.ok());
  const auto& s1 = inv->servers[0];
  EXPECT_TRUE(s1.capacity_overridden);
  EXPECT_EQ(s1.capacity_bytes, 50 * GiB);
  EXPECT_EQ(s1.used_bytes, 15 * GiB);
  EXPECT_EQ(s1.free_bytes, 35 * GiB);
  EXPECT_EQ(s1.other_used_bytes, 0);
  // Never more free than the shared disk still has.
  config_.servers[0].capacity_bytes = 500 * GiB;
  inv = run();
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->servers[0].free_bytes, 60 * GiB);
}

TEST_F(InventoryTest, ADeadServerIsReportedAndLeftOutOfTheSnapshot) {
  metrics_.by_server.erase("store2");
  metrics_.by_server.emplace("store2", Error::unavailable("metrics http://store2:9100/metrics: connection refused"));
  auto inv = run();
  ASSERT_TRUE(inv.ok()) << inv.error().message();
  EXPECT_FALSE(inv->complete());
  EXPECT_EQ(inv->failed_servers(), 1);
  EXPECT_TRUE(inv->servers[1].failed);
  EXPECT_EQ(inv->servers[1].error, "metrics http://store2:9100/metrics: connection refused");
  EXPECT_EQ(inv->servers[1].users, 1);  // still counted from LDAP
  const Snapshot& snap = inv->snapshot;
  ASSERT_EQ(snap.servers.size(), 2u);
  EXPECT_EQ(snap.servers[1].name, "store3");
  EXPECT_EQ(snap.user_names, (std::vector<std::string>{"alice", "bob", "dave"}));
  EXPECT_EQ(snap.user_server, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_EQ(snap.notes, (std::vector<std::string>{
                            "server store2 left out: metrics http://store2:9100/metrics: connection refused",
                            "1 users on failed servers left out"}));
  // Its mailboxes were not even sized.
  EXPECT_EQ(std::count(sizer_.asked.begin(), sizer_.asked.end(), "carol"), 0);
}

TEST_F(InventoryTest, AMissingMailRootFailsThatServer) {
  config_.servers[2].mail_root = t_.path("nowhere");
  auto inv = run();
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->servers[2].failed);
  EXPECT_EQ(inv->servers[2].error, "mail_root '" + t_.path("nowhere") + "': No such file or directory");
  EXPECT_EQ(inv->snapshot.servers.size(), 2u);
}

TEST_F(InventoryTest, AMailboxThatCannotBeSizedIsPinnedAtZero) {
  sizer_.by_user.erase("bob");
  sizer_.by_user.emplace("bob", Error::permission("scan 'example.org/bob/Maildir/cur': Permission denied"));
  auto inv = run();
  ASSERT_TRUE(inv.ok());
  EXPECT_FALSE(inv->complete());
  EXPECT_EQ(inv->user_errors(), 1);
  EXPECT_EQ(inv->users[1].error, "scan 'example.org/bob/Maildir/cur': Permission denied");
  EXPECT_EQ(inv->servers[0].user_errors, 1);
  EXPECT_EQ(inv->snapshot.user_size[1], 0);
  EXPECT_EQ(inv->snapshot.user_pinned[1], 1);
  // The rest still came out.
  EXPECT_EQ(inv->snapshot.user_size[0], 10 * GiB);
  EXPECT_EQ(inv->snapshot.notes, std::vector<std::string>{"1 users could not be sized (pinned, size 0)"});
}

// store2 behind the agent (a real `mailshard agent --stdio` over pipes),
// size_source = "scan": its homes are sized by the agent, and every figure
// equals the local scan of the same tree. 5,010 more users with no home yet
// make the server take two SIZE requests (kSizeChunk = 5,000).
TEST_F(InventoryTest, AServerBehindTheAgentIsScannedThereLikeALocalRoot) {
  const std::string root = t_.path("store2");
  t_.dir("store2/example.org");
  std::vector<std::string> with_mail = {"carol", "erin", "frank", "grace"};
  for (size_t k = 0; k < with_mail.size(); ++k) {
    const std::string home = "store2/example.org/" + with_mail[k];
    t_.dir(home);
    t_.dir(home + "/Maildir");
    t_.dir(home + "/Maildir/cur");
    t_.dir(home + "/Maildir/new");
    for (size_t m = 0; m <= k * 3; ++m) t_.message(home + "/Maildir/cur", "17000000" + std::to_string(m) + ".M1P1.h", 100 + m);
    t_.file(home + "/Maildir/dovecot-uidlist", 40 + k);
  }
  t_.dir("elsewhere");
  t_.message("elsewhere", "1.M1P1.h", 50);
  t_.symlink_to(t_.path("elsewhere"), "store2/example.org/mallory");
  for (const auto& u : {"erin", "frank", "grace", "mallory"}) dir_.accounts.push_back(account(u, "store2"));
  for (int i = 0; i < 5010; ++i) dir_.accounts.push_back(account("new" + std::to_string(i), "store2"));
  config_.servers[1].transport = TransportKind::kAgent;
  config_.servers[1].agent_command = "mailshard agent --stdio --root " + root;
  int opened = 0;
  auto open_agent = [&](const ServerConfig& s) {
    ++opened;
    AgentOptions o;
    o.argv = {MAILSHARD_BIN, "agent", "--stdio", "--root", s.mail_root};
    o.name = "agent:" + s.name;
    return make_agent_transport(o);
  };
  InventoryOptions o;
  o.progress = false;
  auto inv = take_inventory(config_, dir_, metrics_, sizer_, clock_, o, open_agent);
  ASSERT_TRUE(inv.ok()) << inv.error().message();
  EXPECT_EQ(opened, 1);
  EXPECT_FALSE(inv->servers[1].failed) << inv->servers[1].error;
  // The fake sizer answered for the local servers only.
  for (const auto& asked : sizer_.asked) EXPECT_NE(asked, "carol");
  ScanMailboxSizer local;
  int64_t sum = 0;
  for (const auto& u : inv->users) {
    if (u.server != 1) continue;
    if (u.user == "mallory") {
      EXPECT_EQ(u.error, "cannot open 'example.org/mallory': path crosses a symlink");
      continue;
    }
    ASSERT_EQ(u.error, "") << u.user;
    auto want = local.size(config_.servers[1], MailboxRef{u.user, u.home_rel});
    ASSERT_TRUE(want.ok()) << want.error().message();
    EXPECT_EQ(u.size_bytes, want->bytes) << u.user;
    EXPECT_EQ(u.messages, want->messages) << u.user;
    EXPECT_EQ(u.exists, want->exists) << u.user;
    sum += u.size_bytes;
  }
  EXPECT_EQ(inv->users[2].user, "carol");
  EXPECT_EQ(inv->users[2].messages, 1);
  EXPECT_GT(inv->users[2].size_bytes, 100);
  EXPECT_FALSE(inv->users.back().exists);
  EXPECT_EQ(inv->servers[1].users, 4 + 5010 + 1);
  EXPECT_EQ(inv->servers[1].mail_bytes, sum);
  EXPECT_EQ(inv->servers[1].messages, 1 + 4 + 7 + 10);
  EXPECT_EQ(inv->servers[1].user_errors, 1);  // mallory, pinned; the server is fine
}

// A scan counts the trees mail_location keeps outside the home (a move
// carries them), here and behind the agent alike.
TEST_F(InventoryTest, AScanCountsTheTreesOutsideTheHome) {
  for (const std::string store : {"store1", "store2"}) {
    const std::string root = t_.path(store);
    config_.servers[store == "store1" ? 0 : 1].mail_location =
        "maildir:~/Maildir:INDEX=" + root + "/index/%n:CONTROL=" + root + "/control/%n";
    const std::string user = store == "store1" ? "alice" : "carol";
    t_.dir(store + "/example.org");
    t_.dir(store + "/example.org/" + user);
    t_.file(store + "/example.org/" + user + "/dovecot.sieve", 1000);
    t_.dir(store + "/index");
    t_.dir(store + "/index/" + user);
    t_.file(store + "/index/" + user + "/dovecot.index", 20000);
    t_.dir(store + "/control");
    t_.dir(store + "/control/" + user);
    t_.file(store + "/control/" + user + "/dovecot-uidlist", 300);
    t_.dir(store + "/example.org/" + user + "/Maildir");
    t_.dir(store + "/example.org/" + user + "/Maildir/cur");
    t_.message(store + "/example.org/" + user + "/Maildir/cur", "1700000000.M1P1.h", 400);
  }
  config_.servers[1].transport = TransportKind::kAgent;
  auto open_agent = [&](const ServerConfig& s) {
    AgentOptions o;
    o.argv = {MAILSHARD_BIN, "agent", "--stdio", "--root", s.mail_root};
    o.name = "agent:" + s.name;
    return make_agent_transport(o);
  };
  ScanMailboxSizer scan;
  InventoryOptions o;
  o.progress = false;
  auto inv = take_inventory(config_, dir_, metrics_, scan, clock_, o, open_agent);
  ASSERT_TRUE(inv.ok()) << inv.error().message();
  std::map<std::string, int64_t> bytes;
  for (const auto& u : inv->users) bytes[u.user] = u.size_bytes;
  // What the scanner says of the home and of each tree (files and directories).
  auto scanned = [&](size_t srv, const std::string& user) {
    int64_t sum = 0;
    for (const std::string& rel : {"example.org/" + user, "index/" + user, "control/" + user}) {
      auto sz = scan.size(config_.servers[srv], MailboxRef{user, rel});
      EXPECT_TRUE(sz.ok() && sz->exists) << rel;
      if (sz.ok()) sum += sz->bytes;
    }
    return sum;
  };
  EXPECT_GE(scanned(0, "alice"), 1000 + 20000 + 300);
  EXPECT_EQ(bytes["alice"], scanned(0, "alice"));
  EXPECT_EQ(bytes["carol"], scanned(1, "carol"));
  EXPECT_EQ(bytes["bob"], 0);  // no home and no trees yet
  EXPECT_EQ(inv->servers[0].mail_bytes, bytes["alice"]);
  EXPECT_TRUE(inv->notes.empty()) << inv->notes.front();
  // Maildir: the scan's count of message files stands.
  for (const auto& u : inv->users) {
    if (u.server >= 2) continue;
    EXPECT_EQ(u.messages, u.user == "bob" ? 0 : 1) << u.user;
  }
}

// An mbox spool INBOX (INBOX=<root>/spool/%n) counts with its user: its own
// size, never its directory's (every user's spools), here and behind the
// agent alike.
TEST_F(InventoryTest, AScanCountsTheSpoolInboxFileAloneNotItsDirectory) {
  for (const std::string store : {"store1", "store2"}) {
    const std::string root = t_.path(store);
    config_.servers[store == "store1" ? 0 : 1].mail_location = "mbox:~/mail:INBOX=" + root + "/spool/%n";
    const std::string user = store == "store1" ? "alice" : "carol";
    t_.dir(store + "/example.org");
    t_.dir(store + "/example.org/" + user);
    t_.dir(store + "/example.org/" + user + "/mail");
    t_.file(store + "/example.org/" + user + "/mail/Sent", 1000);
    t_.dir(store + "/spool");
    t_.file(store + "/spool/" + user, 70000);
    t_.file(store + "/spool/someone-else", 900000);  // not a user of this inventory
  }
  config_.servers[1].transport = TransportKind::kAgent;
  auto open_agent = [&](const ServerConfig& s) {
    AgentOptions o;
    o.argv = {MAILSHARD_BIN, "agent", "--stdio", "--root", s.mail_root};
    o.name = "agent:" + s.name;
    return make_agent_transport(o);
  };
  ScanMailboxSizer scan;
  InventoryOptions o;
  o.progress = false;
  auto inv = take_inventory(config_, dir_, metrics_, scan, clock_, o, open_agent);
  ASSERT_TRUE(inv.ok()) << inv.error().message();
  std::map<std::string, int64_t> bytes;
  for (const auto& u : inv->users) bytes[u.user] = u.size_bytes;
  for (const auto& [srv, user] : {std::pair<size_t, std::string>{0, "alice"}, {1, "carol"}}) {
    auto home = scan.size(config_.servers[srv], MailboxRef{user, "example.org/" + user});
    ASSERT_TRUE(home.ok() && home->exists) << user;
    EXPECT_EQ(bytes[user], home->bytes + 70000) << user << ": the home and the spool file, not the spool directory";
  }
  EXPECT_EQ(bytes["bob"], 0);  // no home and no spool file yet
  EXPECT_TRUE(inv->notes.empty()) << inv->notes.front();
  // A scan does not parse mbox files: every count is unknown, not 0.
  // (store3 keeps the whole home as the mailbox: Maildir.)
  for (const auto& u : inv->users) EXPECT_EQ(u.messages, u.server < 2 ? -1 : 0) << u.user;
  for (const auto& s : inv->servers) EXPECT_EQ(s.messages, s.name == "store3" ? 0 : -1) << s.name;
}

TEST_F(InventoryTest, AServerBehindTheAgentNeedsScanOrDoveadmAndAWorkingAgent) {
  config_.servers[1].transport = TransportKind::kAgent;
  config_.servers[1].agent_command = "mailshard agent --stdio --root " + t_.path("store2");
  auto no_agent = [&](const ServerConfig& s) -> Result<std::unique_ptr<Transport>> {
    AgentOptions o;
    o.argv = {"/nonexistent/mailshard", "agent", "--stdio"};
    o.name = "agent:" + s.name;
    return make_agent_transport(o);
  };
  InventoryOptions o;
  o.progress = false;
  auto dead = take_inventory(config_, dir_, metrics_, sizer_, clock_, o, no_agent);
  ASSERT_TRUE(dead.ok());
  EXPECT_TRUE(dead->servers[1].failed);
  EXPECT_EQ(dead->servers[1].error.rfind("agent:store2: ", 0), 0u) << dead->servers[1].error;
  EXPECT_FALSE(dead->servers[0].failed);

  config_.inventory.size_source = SizeSource::kMaildirsize;
  auto mds = take_inventory(config_, dir_, metrics_, sizer_, clock_, o, no_agent);
  ASSERT_TRUE(mds.ok());
  EXPECT_EQ(mds->servers[1].error,
            "size_source = \"maildirsize\" reads mail_root '" + t_.path("store2") +
                "' on this machine, but it is behind the agent; set [inventory] size_source = \"scan\" (run by the "
                "agent) or \"doveadm\"");
  // doveadm sizes come over HTTP: the agent is not needed.
  config_.inventory.size_source = SizeSource::kDoveadm;
  auto dove = take_inventory(config_, dir_, metrics_, sizer_, clock_, o, no_agent);
  ASSERT_TRUE(dove.ok());
  EXPECT_FALSE(dove->servers[1].failed) << dove->servers[1].error;
}

TEST_F(InventoryTest, AnomaliesAndDuplicateUsersAreSkipped) {
  dir_.anomalies = {{"uid=eve,ou=people,dc=example,dc=org", "mailHost 'store9' is not a configured server"}};
  Account dup = account("alice", "store2");
  dup.dn = "uid=alice2,ou=people,dc=example,dc=org";
  dir_.accounts.push_back(dup);
  auto inv = run();
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->complete());  // anomalies are data problems, not failures of the run
  ASSERT_EQ(inv->anomalies.size(), 2u);
  EXPECT_EQ(inv->anomalies[0].reason, "mailHost 'store9' is not a configured server");
  EXPECT_EQ(inv->anomalies[1].dn, "uid=alice2,ou=people,dc=example,dc=org");
  EXPECT_EQ(inv->anomalies[1].reason,
            "user 'alice' is also at 'uid=alice,ou=people,dc=example,dc=org'; this entry is skipped");
  EXPECT_EQ(inv->users.size(), 4u);
  EXPECT_EQ(inv->servers[1].users, 1);
}

TEST_F(InventoryTest, DirectoryFailureFailsTheRun) {
  dir_.list_error = Error::permission("LDAP bind as 'cn=admin' to ldap://x: Invalid credentials");
  auto inv = run();
  ASSERT_FALSE(inv.ok());
  EXPECT_EQ(inv.error().code(), ErrorCode::kPermission);
  EXPECT_EQ(inv.error().message(), "LDAP: LDAP bind as 'cn=admin' to ldap://x: Invalid credentials");
}

TEST_F(InventoryTest, UnknownClassGetsANote) {
  for (auto& s : config_.servers) s.server_class = "gold";
  auto inv = run();
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->notes, std::vector<std::string>{
                            "class 'gold' is not one the benchmark tools know (std, ssd); mailshard's own planner "
                            "reads it fine"});
}

TEST_F(InventoryTest, SavedSnapshotReadsBack) {
  auto inv = run();
  ASSERT_TRUE(inv.ok());
  std::string dir = t_.path("snap");
  ASSERT_TRUE(write_snapshot(inv->snapshot, dir, snapshot_meta_json(*inv, config_)).ok());
  auto back = read_snapshot(dir);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->servers.size(), 3u);
  EXPECT_EQ(back->servers[2].name, "store3");
  EXPECT_EQ(back->user_names, inv->snapshot.user_names);
  EXPECT_EQ(back->user_size, inv->snapshot.user_size);
  EXPECT_EQ(back->user_pinned, inv->snapshot.user_pinned);
  EXPECT_EQ(back->taken_at_ms, inv->taken_at_ms);
  EXPECT_EQ(back->source, "mailshard inventory");
}

}  // namespace
}  // namespace mailshard
