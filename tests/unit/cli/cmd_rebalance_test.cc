// `mailshard rebalance --plan FILE` on edited and hostile plan files: the
// file is checked completely, hash included, before anything uses it; each
// problem is one line and exit 2.
#include <cstdint>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "core/clock.h"
#include "journal/sqlite_journal.h"
#include "util/fs.h"
#include "util/subprocess.h"

namespace mailshard {
namespace {

ProcessResult run(std::vector<std::string> args) {
  args.insert(args.begin(), {"env", "-u", "MAILSHARD_CONFIG", MAILSHARD_BIN});
  auto r = run_process(args, "", 60'000);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : ProcessResult{};
}

class RebalancePlanFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/rebalance_plan_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);  // a journal left by an earlier run would hold its plans
    ASSERT_TRUE(make_dirs(dir_).ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/servers.csv",
                                  "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n"
                                  "0,std,1000,0,16.0,0\n1,std,1000,0,16.0,0\n2,std,1000,0,16.0,0\n")
                    .ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/users.csv",
                                  "user_id,server_id,class,size_bytes,activity,pinned\n"
                                  "0,0,std,300,0.0,0\n1,0,std,200,0.0,0\n2,0,std,150,0.0,0\n3,0,std,100,0.0,0\n"
                                  "4,1,std,100,0.0,0\n5,2,std,50,0.0,0\n")
                    .ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/ldap.secret", "x\n", 0600).ok());
    cfg_ = dir_ + "/mailshard.toml";
    ASSERT_TRUE(write_file_atomic(cfg_, "[journal]\npath = \"" + dir_ + "/journal.sqlite\"\n[ldap]\n"
                                        "uri = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=a\"\nbind_password_file = \"" +
                                            dir_ + "/ldap.secret\"\nbase_dn = \"dc=x\"\n[[server]]\nname = \"a\"\n"
                                            "mail_root = \"/srv/a\"\n[move]\nheadroom = 0\n")
                    .ok());
    auto r = run({"-c", cfg_, "plan", "--snapshot", dir_, "--no-journal", "--output", dir_ + "/plan.json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto text = read_file(dir_ + "/plan.json");
    ASSERT_TRUE(text.ok());
    doc_ = nlohmann::json::parse(*text);
    ASSERT_FALSE(doc_["moves"].empty());
  }

  // Runs `rebalance --plan` (dry run) on `doc` written to a file.
  ProcessResult rebalance(const nlohmann::json& doc) {
    plan_ = dir_ + "/edited.json";
    EXPECT_TRUE(write_file_atomic(plan_, doc.dump(1)).ok());
    return run({"-c", cfg_, "rebalance", "--plan", plan_, "--dry-run"});
  }

  void expect_refused(const nlohmann::json& doc, const std::string& why) {
    auto r = rebalance(doc);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err, "mailshard: --plan " + plan_ + ": " + why + "\n");
    EXPECT_EQ(r.out, "");
  }

  std::string dir_, cfg_, plan_;
  nlohmann::json doc_;
};

TEST_F(RebalancePlanFile, TheReviewedFileRuns) {
  auto r = rebalance(doc_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dry run: plan " + doc_["plan_hash"].get<std::string>()), std::string::npos) << r.out;
  // A dry run writes nothing: the plan is not in the journal afterwards.
  auto list = run({"-c", cfg_, "--json", "plan", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.find(doc_["plan_hash"].get<std::string>()), std::string::npos) << list.out;
}

TEST_F(RebalancePlanFile, WithoutItsHashIsRefused) {
  // Skipped the check entirely, and --dry-run stored the edited plan.
  doc_.erase("plan_hash");
  doc_["moves"][0]["to"] = 1;
  expect_refused(doc_, "plan JSON: missing 'plan_hash' (a plan file must carry the hash it was reviewed under)");
}

TEST_F(RebalancePlanFile, NullOrNumberHashIsRefused) {
  doc_["plan_hash"] = nullptr;  // aborted with nlohmann::json::type_error (exit 134)
  expect_refused(doc_, "plan JSON: plan: 'plan_hash' has the wrong type or is out of range");
  doc_["plan_hash"] = 5;
  expect_refused(doc_, "plan JSON: plan: 'plan_hash' has the wrong type or is out of range");
}

TEST_F(RebalancePlanFile, WrongJsonTypeIsRefused) {
  doc_["classes"] = "x";  // aborted with nlohmann::json::type_error (exit 134)
  expect_refused(doc_, "plan JSON: plan: 'classes' has the wrong type (expected an array)");
}

TEST_F(RebalancePlanFile, ServerIndexOutOfRangeIsRefused) {
  doc_["moves"][0]["from"] = 7;  // std::bad_alloc / heap-buffer-overflow in the dry-run listing
  expect_refused(doc_, "plan JSON: moves[0]: 'from' must be a server of the plan (0..2)");
}

TEST_F(RebalancePlanFile, IndexOf2To40IsNotTruncated) {
  // 2^40 + 2 was read as server 2, and the hash of the truncated plan matched.
  doc_["moves"][0]["to"] = (int64_t{1} << 40) + doc_["moves"][0]["to"].get<int64_t>();
  expect_refused(doc_, "plan JSON: moves[0]: 'to' has the wrong type or is out of range");
}

TEST_F(RebalancePlanFile, EditedContentIsRefused) {
  doc_["moves"][0]["bytes"] = 1;
  auto r = rebalance(doc_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("mailshard: --plan " + plan_ + ": plan_hash " + doc_["plan_hash"].get<std::string>() +
                            " does not match its content (",
                        0),
            0u)
      << r.err;
  EXPECT_NE(r.err.find("); the file was edited\n"), std::string::npos) << r.err;
}

// A plan chosen by its hash from the journal is re-hashed: a row changed
// since it was stored (by hand, or a damaged journal) is not executed.
TEST_F(RebalancePlanFile, AJournalPlanThatNoLongerMatchesItsHashIsRefused) {
  const std::string hash = doc_["plan_hash"].get<std::string>();
  // `plan` stores the reviewed plan in the journal (a dry run writes nothing).
  auto stored = run({"-c", cfg_, "plan", "--snapshot", dir_});
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  auto ok = run({"-c", cfg_, "rebalance", "--plan", hash, "--dry-run"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  auto edit = run_process({"sqlite3", dir_ + "/journal.sqlite",
                           "UPDATE plans SET plan = replace(plan, '\"bytes\":', '\"bytes\":1') WHERE hash = '" + hash +
                               "'"},
                          "", 30'000);
  ASSERT_TRUE(edit.ok() && edit->exit_code == 0) << (edit.ok() ? edit->err : edit.error().message());
  auto r = run({"-c", cfg_, "rebalance", "--plan", hash, "--dry-run"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("mailshard: plan " + hash + ": the journal's copy hashes to ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(": it changed since it was stored\n"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mailshard

namespace mailshard {
namespace {

// A plan of a named fleet (servers a, b, c; users with names), as the
// nightly run gets it, refused before any move for what it is.
class RebalanceRefuses : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/rebalance_refuses_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(make_dirs(dir_ + "/snap").ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/snap/servers.csv",
                                  "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n"
                                  "0,std,1000,0,16.0,0\n1,std,1000,0,16.0,0\n2,std,1000,0,16.0,0\n")
                    .ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/snap/users.csv",
                                  "user_id,server_id,class,size_bytes,activity,pinned\n"
                                  "0,0,std,300,0.0,0\n1,0,std,200,0.0,0\n2,0,std,150,0.0,0\n3,0,std,100,0.0,0\n"
                                  "4,1,std,100,0.0,0\n5,2,std,50,0.0,0\n")
                    .ok());
    ASSERT_TRUE(write_file_atomic(dir_ + "/ldap.secret", "x\n", 0600).ok());
  }

  // The snapshot taken `age_ms` ago, planned with a config of `servers`.
  void plan(int64_t age_ms, const std::string& servers = "abc", const std::string& extra = "") {
    nlohmann::json meta = {{"server_names", {"a", "b", "c"}},
                           {"user_names", {"u0@x", "u1@x", "u2@x", "u3@x", "u4@x", "u5@x"}},
                           {"taken_at_ms", now_ms() - age_ms},
                           {"source", "inventory"}};
    ASSERT_TRUE(write_file_atomic(dir_ + "/snap/meta.json", meta.dump()).ok());
    std::string cfg = "[journal]\npath = \"" + dir_ + "/journal.sqlite\"\n[ldap]\nuri = \"ldap://127.0.0.1:1\"\n"
                      "bind_dn = \"cn=a\"\nbind_password_file = \"" + dir_ + "/ldap.secret\"\nbase_dn = \"dc=x\"\n";
    for (char s : servers) cfg += fmt::format("[[server]]\nname = \"{}\"\nmail_root = \"/srv/{}\"\n", s, s);
    cfg += "[move]\nheadroom = 0\n" + extra;
    cfg_ = dir_ + "/mailshard.toml";
    ASSERT_TRUE(write_file_atomic(cfg_, cfg).ok());
    auto r = run({"-c", cfg_, "plan", "--snapshot", dir_ + "/snap", "--no-journal", "--output", dir_ + "/plan.json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto doc = nlohmann::json::parse(*read_file(dir_ + "/plan.json"));
    hash_ = doc["plan_hash"];
    ASSERT_FALSE(doc["moves"].empty());
  }
  static int64_t now_ms() { return SystemClock().now_ms(); }

  std::string dir_, cfg_, hash_;
};

TEST_F(RebalanceRefuses, AStalePlan) {
  plan(48 * 3'600'000);
  auto r = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("plan " + hash_), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is stale: its fleet snapshot is 2d old"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("max_plan_age 1d12h"), std::string::npos) << r.err;
}

TEST_F(RebalanceRefuses, AnUnapprovedPlanWhenApprovalIsRequired) {
  plan(60'000, "abc", "[rebalance]\nrequire_approval = true\n");
  auto file = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json"});
  EXPECT_EQ(file.exit_code, 1) << file.err;
  EXPECT_NE(file.err.find("is not approved and [rebalance] require_approval is on"), std::string::npos) << file.err;
  EXPECT_NE(file.err.find("mailshard plan approve " + hash_), std::string::npos) << file.err;
  auto latest = run({"-c", cfg_, "rebalance", "--plan", "latest"});
  EXPECT_EQ(latest.exit_code, 1) << latest.err;
  EXPECT_NE(latest.err.find("no approved plan in the journal"), std::string::npos) << latest.err;
  // Approved, the latest plan is the one the night runs.
  auto approve = run({"-c", cfg_, "plan", "approve", hash_});
  ASSERT_EQ(approve.exit_code, 0) << approve.err;
  auto dry = run({"-c", cfg_, "rebalance", "--plan", "latest", "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("dry run: plan " + hash_ + " (the latest approved)"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("would move u0@x a -> "), std::string::npos) << dry.out;
}

TEST_F(RebalanceRefuses, ASecondRunSaysWhoHoldsTheLease) {
  plan(60'000);
  SystemClock clock;
  auto j = SqliteJournal::open(dir_ + "/journal.sqlite", clock);
  ASSERT_TRUE(j.ok()) << j.error().message();
  auto lease = (*j)->lease_run("rebalance");
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  auto r = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("mailshard: another rebalance is running: pid " + std::to_string(::getpid()) + " on host ", 0), 0u)
      << r.err;
  // --stop finds the holder too (its run is not journaled here: say so).
  auto stop = run({"-c", cfg_, "rebalance", "--stop"});
  EXPECT_EQ(stop.exit_code, 1) << stop.err;
  lease->reset();
  auto none = run({"-c", cfg_, "rebalance", "--stop"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(none.err, "mailshard: no rebalance is running\n");
}

// A shared night and a plain rebalance exclude each other; shared ones run
// together (here: the shared lease held by this process, as another shared
// controller would hold it).
TEST_F(RebalanceRefuses, ASharedNightAndAPlainRebalanceExcludeEachOther) {
  plan(60'000);
  SystemClock clock;
  auto j = SqliteJournal::open(dir_ + "/journal.sqlite", clock);
  ASSERT_TRUE(j.ok()) << j.error().message();
  {
    auto shared = (*j)->lease_run_shared("rebalance");
    ASSERT_TRUE(shared.ok()) << shared.error().message();
    auto plain = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json"});
    EXPECT_EQ(plain.exit_code, 1) << plain.err;
    EXPECT_EQ(plain.err.rfind("mailshard: another rebalance is running: pid " + std::to_string(::getpid()), 0), 0u)
        << plain.err;
    // Another shared controller gets past the lease (and stops at LDAP, down here).
    auto second = run({"-c", cfg_, "rebalance", "--shared", "--plan", dir_ + "/plan.json"});
    EXPECT_EQ(second.exit_code, 1) << second.err;
    EXPECT_NE(second.err.find("LDAP ldap://127.0.0.1:1"), std::string::npos) << second.err;
  }
  auto plain = (*j)->lease_run("rebalance");
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  auto shared = run({"-c", cfg_, "rebalance", "--shared", "--plan", dir_ + "/plan.json"});
  EXPECT_EQ(shared.exit_code, 1) << shared.err;
  EXPECT_EQ(shared.err.rfind("mailshard: --shared: another rebalance is running: pid " + std::to_string(::getpid()), 0),
            0u)
      << shared.err;
}

TEST_F(RebalanceRefuses, ASharedNightNeedsAStoredPlan) {
  plan(60'000);
  auto r = run({"-c", cfg_, "rebalance", "--shared", "--snapshot", dir_ + "/snap"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err,
            "mailshard: --shared runs one stored plan on every controller: give --plan (latest, a hash or a file)\n");
}

TEST_F(RebalanceRefuses, APlanForAServerTheConfigDoesNotKnow) {
  plan(60'000, "abc");
  plan(60'000, "ab");  // the same fleet, a config without c
  auto r = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json", "--dry-run"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("server 'c' is not in the config"), std::string::npos) << r.err;
}

// LDAP (127.0.0.1:1 here) is down when the night starts: no move starts, one
// line names it, the run is journaled as failed, nobody was touched.
TEST_F(RebalanceRefuses, LdapDownAtTheStart) {
  plan(60'000);
  auto r = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("mailshard: rebalance plan " + hash_), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("LDAP ldap://127.0.0.1:1"), std::string::npos) << r.err;
  // The lease is released: the next night can run.
  auto again = run({"-c", cfg_, "rebalance", "--stop"});
  EXPECT_EQ(again.err, "mailshard: no rebalance is running\n");
}

TEST_F(RebalanceRefuses, AnUnwritableMetricsDirectory) {
  plan(60'000);
  auto r = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json", "--metrics-file", dir_ + "/no/such/dir/m.prom"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--metrics-file " + dir_ + "/no/such/dir/m.prom: cannot write in '" + dir_ + "/no/such/dir'"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("LDAP"), std::string::npos) << "refused before anything else: " << r.err;
}

TEST_F(RebalanceRefuses, BadDeadlines) {
  plan(60'000);
  auto bad = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json", "--deadline", "25:00"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_EQ(bad.err, "mailshard: --deadline: '25:00' is not a clock time HH:MM (00:00 to 23:59)\n");
  auto order = run({"-c", cfg_, "rebalance", "--plan", dir_ + "/plan.json", "--deadline", "5h", "--hard-deadline", "1h"});
  EXPECT_EQ(order.exit_code, 2) << order.err;
  EXPECT_NE(order.err.find("--hard-deadline"), std::string::npos) << order.err;
}

}  // namespace
}  // namespace mailshard
