// The lab is real: mail delivered over LMTP is read over IMAP through nginx, a mailbox copied by
// hand and flipped in LDAP with a compare-and-swap is served from the new store with an
// identical IMAP state, and the freeze gate refuses logins with [UNAVAILABLE].
// Scenario checks for mailshard itself live in their own files; this one proves the harness.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/lab.h"

namespace mailshard::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Files under DIR (recursively) whose content contains NEEDLE.
int count_files_containing(const fs::path& dir, const std::string& needle) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (content.find(needle) != std::string::npos) ++n;
  }
  return n;
}

// Deletes dovecot.index* and dovecot.list.index* under DIR; returns how many.
int remove_dovecot_indexes(const fs::path& dir) {
  std::vector<fs::path> doomed;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && (name.starts_with("dovecot.index") || name.starts_with("dovecot.list.index"))) {
      doomed.push_back(e.path());
    }
  }
  for (const auto& p : doomed) fs::remove(p);
  return static_cast<int>(doomed.size());
}

void expect_same_imap_state(const nlohmann::json& before, const nlohmann::json& after) {
  ASSERT_EQ(before["folders"].size(), after["folders"].size());
  for (const auto& [name, f] : before["folders"].items()) {
    SCOPED_TRACE("folder " + name);
    ASSERT_TRUE(after["folders"].contains(name));
    const auto& g = after["folders"][name];
    EXPECT_EQ(f["uidvalidity"], g["uidvalidity"]);
    EXPECT_EQ(f["uidnext"], g["uidnext"]);
    EXPECT_EQ(f["messages"], g["messages"]);
    EXPECT_EQ(f["hash"], g["hash"]);
    EXPECT_EQ(f["detail"], g["detail"]);  // uid, flags, INTERNALDATE (file mtime), size, Message-ID
  }
  EXPECT_EQ(before["subscriptions"], after["subscriptions"]);
  EXPECT_EQ(before["hash"], after["hash"]);
}

TEST(LabIsReal, MailboxCopiedByHandAndFlippedKeepsImapStateAndRoutesToNewStore) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  ASSERT_EQ(lab.ldap_get(user, "mailHost"), "store1");

  // A realistic mailbox (folders, flags, keywords, UID gaps, hard-linked copies, sieve) plus
  // 20 messages over LMTP, all on store1.
  nlohmann::json fill = lab.fill_mailbox(user, 60, 11);
  ASSERT_EQ(fill["appended"], 60);
  ASSERT_EQ(fill["store"], "store1");
  nlohmann::json delivered = lab.deliver(user, 20, "real");
  ASSERT_EQ(delivered["delivered"], 20);
  ASSERT_EQ(delivered["stores"]["store1"], 20);
  const fs::path src = lab.home_path("store1", user), dst = lab.home_path("store2", user);
  EXPECT_EQ(count_files_containing(src / "Maildir" / "new", "X-Mlab-Store: store1"), 20);
  struct stat st {};
  ASSERT_EQ(::stat((src / "Maildir").c_str(), &st), 0);
  EXPECT_EQ(std::to_string(st.st_uid), lab.env("MAIL_UID")) << "Dovecot must own the mail, not root";

  nlohmann::json before = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(before["store"], "store1");
  const int inbox_before = before["folders"]["INBOX"]["messages"];
  EXPECT_EQ(inbox_before, fill["folders"]["INBOX"]["appended"].get<int>() -
                              fill["folders"]["INBOX"]["expunged"].get<int>() + 20);
  EXPECT_GE(before["folders"].size(), 10u);
  EXPECT_THAT(before["subscriptions"].dump(), HasSubstr("Archive/2024"));
  for (const auto& m : delivered["messages"]) {
    EXPECT_THAT(before["folders"]["INBOX"]["detail"].dump(), HasSubstr(m["message_id"].get<std::string>()));
  }

  // The move, by hand: copy (cp -a keeps owner, mtimes, hard links, symlinks), then flip mailHost
  // with a compare-and-swap on the old value. A second swap with the stale assertion must fail.
  ASSERT_FALSE(fs::exists(dst));
  RunResult cp = lab.run({"cp", "-a", src.string(), dst.string()});
  ASSERT_EQ(cp.rc, 0) << cp.describe();
  // Drop Dovecot's index/cache files in the copy: it then rebuilds the state from the Maildir
  // files alone (UIDs from dovecot-uidlist, keywords from dovecot-keywords, flags from file
  // names, INTERNALDATE from file mtimes), so the comparison below checks what was copied.
  EXPECT_GT(remove_dovecot_indexes(dst / "Maildir"), 0);
  const std::string dn = lab.user_dn(user);
  ASSERT_EQ(lab.ldap_modify_assert(dn, "replace: mailHost\nmailHost: store2\n", "(mailHost=store1)"), 0);
  EXPECT_EQ(lab.ldap_modify_assert(dn, "replace: mailHost\nmailHost: store3\n", "(mailHost=store1)"), 122);
  ASSERT_EQ(lab.ldap_get(user, "mailHost"), "store2");
  EXPECT_EQ(fs::read_symlink(dst / ".dovecot.sieve"), "sieve/main.sieve");

  // Take store1's copy away: if routing still pointed there, the state below could not match.
  fs::rename(src, src.string() + ".moved-aside");
  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  EXPECT_EQ(after["store"], "store2");
  EXPECT_THAT(lab.last_auth_decision(user), HasSubstr("decision=ok store=store2 port=" + lab.env("STORE2_IMAP_PORT")));
  expect_same_imap_state(before, after);

  // New mail follows mailHost: it lands on store2 and shows up through nginx.
  nlohmann::json late = lab.deliver(user, 1, "late");
  ASSERT_EQ(late["messages"][0]["store"], "store2");
  EXPECT_EQ(count_files_containing(dst / "Maildir" / "new", "X-Mlab-Store: store2"), 1);
  nlohmann::json last = lab.imap_state(user);
  EXPECT_EQ(last["folders"]["INBOX"]["messages"], inbox_before + 1);
  EXPECT_EQ(last["folders"]["INBOX"]["uidnext"], before["folders"]["INBOX"]["uidnext"].get<int>() + 1);
  EXPECT_EQ(last["folders"]["INBOX"]["uidvalidity"], before["folders"]["INBOX"]["uidvalidity"]);
}

TEST(LabIsReal, FreezeGateRefusesLoginsThroughNginxAndDeliveryWaits) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store3");
  const std::string dn = lab.user_dn(user);
  ASSERT_EQ(lab.imap_state(user)["store"], "store3");

  ASSERT_EQ(lab.ldap_modify_assert(dn, "replace: mailAccountStatus\nmailAccountStatus: frozen\n",
                                   "(mailAccountStatus=active)"),
            0);
  RunResult frozen = lab.run_script("imap_state.py", {"--user", user});
  EXPECT_EQ(frozen.rc, 3) << frozen.describe();
  EXPECT_THAT(frozen.err, HasSubstr("[UNAVAILABLE]"));
  EXPECT_THAT(lab.last_auth_decision(user), HasSubstr("decision=frozen"));

  // A delivery that honours the freeze waits until the thaw, then lands on the store.
  nlohmann::json waited;
  std::string deliver_error;
  std::thread mta([&] {
    try {
      waited = lab.deliver(user, 1, "thaw", {"--honor-freeze"});
    } catch (const std::exception& e) {
      deliver_error = e.what();
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the MTA must be seen waiting
  ASSERT_EQ(lab.ldap_modify_assert(dn, "replace: mailAccountStatus\nmailAccountStatus: active\n",
                                   "(mailAccountStatus=frozen)"),
            0);
  mta.join();
  ASSERT_EQ(deliver_error, "");
  EXPECT_EQ(waited["delivered"], 1);
  EXPECT_GE(waited["freeze_wait_s"].get<double>(), 1.0);

  nlohmann::json thawed = lab.imap_state(user);
  EXPECT_EQ(thawed["store"], "store3");
  EXPECT_EQ(thawed["folders"]["INBOX"]["messages"], 1);

  ASSERT_EQ(lab.ldap_modify_assert(dn, "replace: mailAccountStatus\nmailAccountStatus: disabled\n", ""), 0);
  RunResult disabled = lab.run_script("imap_state.py", {"--user", user});
  EXPECT_EQ(disabled.rc, 4) << disabled.describe();
  EXPECT_THAT(disabled.err, HasSubstr("[CONTACTADMIN]"));

  ASSERT_EQ(lab.ldap_modify_assert(dn, "replace: mailAccountStatus\nmailAccountStatus: active\n", ""), 0);
  RunResult wrong = lab.run_script("imap_state.py", {"--user", user, "--password", "not-secret"});
  EXPECT_EQ(wrong.rc, 4) << wrong.describe();
  EXPECT_THAT(wrong.err, HasSubstr("[AUTHENTICATIONFAILED]"));
}

TEST(LabIsReal, NodeExporterAndDoveadmHttpAnswer) {
  Lab& lab = Lab::get();
  {
    std::ofstream prom(lab.env("NODE_EXPORTER_TEXTFILE_DIR") + "/lab_is_real.prom");
    prom << "mlab_lab_is_real 1\n";
  }
  RunResult metrics = lab.run({"curl", "-sS", "--max-time", "10", lab.env("NODE_EXPORTER_URL")});
  ASSERT_EQ(metrics.rc, 0) << metrics.describe();
  EXPECT_THAT(metrics.out, HasSubstr("node_filesystem_avail_bytes{"));
  EXPECT_THAT(metrics.out, HasSubstr("node_load1 "));
  EXPECT_THAT(metrics.out, HasSubstr("mlab_lab_is_real 1"));

  // kick of a user with no session answers exit code 68 (EX_NOUSER), with either credential.
  const std::string body = R"([["kick",{"mask":"nobody@example.org"},"k1"]])";
  for (const auto& store : lab.stores()) {
    SCOPED_TRACE(store);
    RunResult basic = lab.run({"curl", "-sS", "--max-time", "10", "-u", "doveadm:" + lab.env("DOVEADM_PW"), "-H",
                               "Content-Type: application/json", "--data-binary", "@-",
                               lab.store_env(store, "DOVEADM_URL")},
                              body);
    ASSERT_EQ(basic.rc, 0) << basic.describe();
    EXPECT_THAT(basic.out, HasSubstr("\"exitCode\":68"));
  }
  RunResult key = lab.run({"curl", "-sS", "--max-time", "10", "-H",
                           "Authorization: X-Dovecot-API ZG92ZWFkbWtleQ==",  // base64("doveadmkey")
                           "-H", "Content-Type: application/json", "--data-binary", "@-",
                           lab.store_env("store1", "DOVEADM_URL")},
                          body);
  ASSERT_EQ(key.rc, 0) << key.describe();
  EXPECT_THAT(key.out, HasSubstr("\"exitCode\":68"));
  EXPECT_EQ(lab.env("DOVEADM_KEY"), "doveadmkey");
}

}  // namespace
}  // namespace mailshard::testing
