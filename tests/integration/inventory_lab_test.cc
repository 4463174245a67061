// `mailshard inventory` on the real lab: 1,000 users over three stores, mail
// delivered over LMTP to some of them (one with a filled, hard-linked
// mailbox). The inventory's per-server user counts must equal what LDAP
// says, per-user sizes must equal `du -s --apparent-size -B1` of each home
// within 1%, and the disk figures must be node_exporter's. The --save
// snapshot must read back and be recorded in the journal.
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/snapshot.h"
#include "journal/sqlite_journal.h"
#include "tests/integration/inventory_test_util.h"
#include "tests/support/lab.h"

namespace mailshard::testing {
namespace {

constexpr int kUsers = 1000;

class InventoryLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Lab& lab = Lab::get();
    lab.populate(kUsers);  // user00001..user01000, mailHost round-robin store1..3 (existing ones are kept)
    // Mail for a dozen users, of different sizes, on all three stores.
    for (int i = 1; i <= 12; ++i) {
      std::string user = fmt_user(i);
      lab.deliver(user, 1 + i % 4, "inv", {"--size", std::to_string(2000 * i)});
    }
    // A realistic mailbox: folders, flags, UID gaps, hard-linked copies, sieve.
    filled_user_ = new std::string(lab.add_user("store2"));
    lab.fill_mailbox(*filled_user_, 40, 7);

    node_before_ = new NodeFs(node_filesystem(lab));
    snapshot_dir_ = new TempDir();
    inventory_ = new RunResult(run_mailshard(lab, {"--json", "inventory", "--users", "--save", snapshot_dir_->path}));
    node_after_ = new NodeFs(node_filesystem(lab));
    ldap_ = new std::vector<LdapAccount>(ldap_accounts(lab));
    ASSERT_EQ(inventory_->rc, 0) << inventory_->describe();
    report_ = new nlohmann::json(nlohmann::json::parse(inventory_->out));
  }
  static void TearDownTestSuite() {
    delete report_;
    delete inventory_;
    delete snapshot_dir_;
    delete node_before_;
    delete node_after_;
    delete ldap_;
    delete filled_user_;
  }

  static std::string fmt_user(int i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "user%05d@example.org", i);
    return buf;
  }

  static inline nlohmann::json* report_ = nullptr;
  static inline RunResult* inventory_ = nullptr;
  static inline TempDir* snapshot_dir_ = nullptr;
  static inline NodeFs* node_before_ = nullptr;
  static inline NodeFs* node_after_ = nullptr;
  static inline std::vector<LdapAccount>* ldap_ = nullptr;
  static inline std::string* filled_user_ = nullptr;
};

TEST_F(InventoryLabTest, PerServerUserCountsEqualLdap) {
  ASSERT_NE(report_, nullptr);
  // Entries the inventory refused (other tests may leave odd ones) are not counted on either side.
  std::set<std::string> skipped;
  for (const auto& a : (*report_)["anomalies"]) skipped.insert(a["dn"].get<std::string>());
  std::map<std::string, int64_t> ldap_count;
  for (const auto& a : *ldap_)
    if (!skipped.count(a.dn)) ++ldap_count[a.host];
  ASSERT_GE(ldap_->size(), static_cast<size_t>(kUsers));
  int64_t total = 0;
  for (const auto& s : (*report_)["servers"]) {
    const std::string name = s["name"];
    SCOPED_TRACE(name);
    EXPECT_FALSE(s["failed"].get<bool>()) << s.dump();
    EXPECT_EQ(s["users"].get<int64_t>(), ldap_count[name]);
    EXPECT_GE(ldap_count[name], kUsers / 3);
    total += s["users"].get<int64_t>();
  }
  EXPECT_EQ((*report_)["user_count"].get<int64_t>(), total);
  EXPECT_EQ((*report_)["users"].size(), static_cast<size_t>(total));
  // Every user the inventory lists is where LDAP says.
  std::map<std::string, std::string> host_of;
  for (const auto& a : *ldap_) host_of[a.dn] = a.host;
  for (const auto& u : (*report_)["users"]) EXPECT_EQ(u["server"], host_of[u["dn"].get<std::string>()]) << u.dump();
}

TEST_F(InventoryLabTest, PerUserSizesEqualDuApparentSize) {
  ASSERT_NE(report_, nullptr);
  Lab& lab = Lab::get();
  int with_mail = 0;
  bool saw_filled = false;
  for (const auto& u : (*report_)["users"]) {
    const std::string user = u["user"], server = u["server"];
    ASSERT_FALSE(u.contains("error")) << u.dump();
    std::string home = lab.store_env(server, "MAIL_ROOT") + "/" + u["home"].get<std::string>();
    if (!u["exists"].get<bool>()) {
      EXPECT_EQ(u["size_bytes"], 0) << user;
      EXPECT_NE(access(home.c_str(), F_OK), 0) << home << " exists but was reported missing";
      continue;
    }
    ++with_mail;
    saw_filled |= user == *filled_user_;
    int64_t du = du_apparent(lab, home);
    int64_t got = u["size_bytes"];
    EXPECT_NEAR(static_cast<double>(got), static_cast<double>(du), 0.01 * static_cast<double>(du))
        << user << " " << home;
    EXPECT_GT(u["messages"].get<int64_t>(), 0) << user;
  }
  EXPECT_GE(with_mail, 13);
  EXPECT_TRUE(saw_filled);
  // The servers' mail bytes are the sums of their users'.
  std::map<std::string, int64_t> sum;
  for (const auto& u : (*report_)["users"]) sum[u["server"]] += u["size_bytes"].get<int64_t>();
  for (const auto& s : (*report_)["servers"]) EXPECT_EQ(s["mail_bytes"].get<int64_t>(), sum[s["name"]]);
}

TEST_F(InventoryLabTest, CapacityAndAvailAreNodeExportersFigures) {
  ASSERT_NE(report_, nullptr);
  // The lab's stores share one disk and override capacity to 10 GiB each, so
  // the filesystem figures are compared raw, and capacity is the override.
  // Other processes write to the same disk: avail must lie between the two
  // scrapes around the inventory, give or take 64 MiB.
  constexpr int64_t kSlack = 64ll << 20;
  for (const auto& s : (*report_)["servers"]) {
    SCOPED_TRACE(s["name"].get<std::string>());
    const auto& fs = s["filesystem"];
    EXPECT_EQ(fs["mountpoint"], node_before_->mountpoint);
    EXPECT_EQ(fs["size_bytes"].get<int64_t>(), node_before_->size);
    int64_t avail = fs["avail_bytes"];
    EXPECT_GE(avail, std::min(node_before_->avail, node_after_->avail) - kSlack);
    EXPECT_LE(avail, std::max(node_before_->avail, node_after_->avail) + kSlack);
    EXPECT_EQ(s["capacity_bytes"].get<int64_t>(), 10ll << 30);
    EXPECT_TRUE(s["capacity_overridden"].get<bool>());
    EXPECT_EQ(s["used_bytes"], s["mail_bytes"]);
    EXPECT_EQ(s["free_bytes"].get<int64_t>(), std::min<int64_t>((10ll << 30) - s["used_bytes"].get<int64_t>(), avail));
    EXPECT_EQ(s["other_used_bytes"], 0);
  }
}

TEST_F(InventoryLabTest, SavedSnapshotReadsBackAndIsJournaled) {
  ASSERT_NE(report_, nullptr);
  auto snap = read_snapshot(snapshot_dir_->path);
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  ASSERT_EQ(snap->servers.size(), 3u);
  EXPECT_EQ(snap->servers[0].name, "store1");
  EXPECT_EQ(snap->servers[2].server_class, "std");
  EXPECT_EQ(snap->servers[1].capacity_bytes, 10ll << 30);
  EXPECT_EQ(snap->source, "mailshard inventory");
  EXPECT_EQ(snap->taken_at_ms, (*report_)["taken_at_ms"].get<int64_t>());
  ASSERT_EQ(snap->user_count(), (*report_)["users"].size());
  for (size_t i = 0; i < snap->user_count(); ++i) {
    const auto& u = (*report_)["users"][i];
    ASSERT_EQ(snap->user_names[i], u["user"]);
    EXPECT_EQ(snap->server_label(snap->user_server[i]), u["server"]);
    EXPECT_EQ(snap->user_size[i], u["size_bytes"].get<int64_t>());
  }
  std::string meta = read_text(snapshot_dir_->path + "/meta.json");
  auto m = nlohmann::json::parse(meta);
  EXPECT_EQ(m["how"]["size_source"], "scan");
  EXPECT_EQ(m["how"]["ldap_uri"], Lab::get().env("LDAP_URI"));

  SystemClock clock;
  auto journal = SqliteJournal::open(Lab::get().dir() + "/journal.sqlite", clock);
  ASSERT_TRUE(journal.ok()) << journal.error().message();
  auto runs = (*journal)->list_runs(50);
  ASSERT_TRUE(runs.ok());
  bool found = false;
  for (const auto& r : *runs)
    if (r.kind == "inventory" && r.summary_json.find(snapshot_dir_->path) != std::string::npos) {
      found = true;
      EXPECT_EQ(r.status, "ok");
    }
  EXPECT_TRUE(found) << "no inventory run in the journal names " << snapshot_dir_->path;
}

TEST_F(InventoryLabTest, TextReportShowsEveryServer) {
  Lab& lab = Lab::get();
  RunResult r = run_mailshard(lab, {"inventory"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, ::testing::HasSubstr("server  class    capacity        used        free    util       dev   load"));
  for (const char* s : {"store1", "store2", "store3"})
    EXPECT_THAT(r.out, ::testing::ContainsRegex(std::string("\n") + s + "  std +10\\.0 GiB "));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("class std: 3 servers, mean utilisation [0-9.]+%, std\\. deviation "));
}

}  // namespace
}  // namespace mailshard::testing
