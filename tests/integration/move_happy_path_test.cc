// A user with 2,000 messages, folders, flags, keywords, expunge gaps, a sieve
// script and subscriptions moves from store1 to store2. Through nginx the IMAP
// state is identical; mailHost is flipped; the status is active; the move is
// journaled with its lockout; verify and purge work on it.
#include <chrono>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

TEST(MoveHappyPath, TwoThousandMessagesKeepEveryUidFlagAndDate) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  nlohmann::json fill = lab.fill_mailbox(user, 2000, 7);
  ASSERT_EQ(fill["appended"], 2000);
  lab.deliver(user, 10, "before");
  const std::string src = lab.home_path("store1", user), dst = lab.home_path("store2", user);
  nlohmann::json before = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(before["store"], "store1");
  EXPECT_GE(before["folders"].size(), 10u);

  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr(user + " store1 -> store2: done"));

  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus"), "active");
  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  EXPECT_EQ(after["store"], "store2");
  expect_same_imap_state(before, after);

  // The copy keeps Dovecot's owner, the sieve symlink and no staging directory.
  struct stat st {};
  ASSERT_EQ(::stat((dst + "/Maildir").c_str(), &st), 0);
  EXPECT_EQ(std::to_string(st.st_uid), lab.env("MAIL_UID"));
  EXPECT_EQ(std::filesystem::read_symlink(dst + "/.dovecot.sieve"), "sieve/main.sieve");
  EXPECT_TRUE(staging_dirs(dst).empty());
  EXPECT_TRUE(path_exists(src)) << "the source copy is kept for the grace period";

  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done");
  EXPECT_EQ(m["from"], "store1");
  EXPECT_EQ(m["to"], "store2");
  EXPECT_TRUE(m["lockout_ms"].is_number());
  EXPECT_LT(m["lockout_ms"].get<int64_t>(), 10'000);
  EXPECT_GT(m["bytes_transferred"].get<int64_t>(), 1'000'000);
  for (const char* k : {"user", "started_at", "finished_at", "error"}) EXPECT_TRUE(m.contains(k)) << k;
  // The destination's quota: checked in preflight, recounted after the sweep.
  EXPECT_EQ(m["detail"]["quota_recalc"], "done") << m["detail"].dump();
  EXPECT_TRUE(m["detail"]["quota_limit_kib"].is_number()) << m["detail"].dump();
  int64_t messages = 0;
  for (const auto& [name, f] : after["folders"].items()) messages += f["messages"].get<int64_t>();
  EXPECT_EQ(m["detail"]["quota_messages"], messages);

  // New mail follows mailHost, and the copy matches the move's manifest.
  nlohmann::json late = lab.deliver(user, 1, "after");
  EXPECT_EQ(late["messages"][0]["store"], "store2");
  RunResult v = mailshard(cfg, {"verify", user});
  EXPECT_EQ(v.rc, 0) << v.describe();
  EXPECT_THAT(v.out, HasSubstr("0 gone since"));
  // Real Dovecot's uid lists on store2, after a delivery there, against store1's copy.
  EXPECT_THAT(v.out, ::testing::ContainsRegex("; [1-9][0-9]* UIDs in [1-9][0-9]* folders as the source copy has them"));

  // Purge: nothing inside the grace period; with it over, the source copy goes.
  RunResult p0 = mailshard(cfg, {"purge", "--user", user});
  EXPECT_EQ(p0.rc, 0) << p0.describe();
  EXPECT_THAT(p0.out, HasSubstr("nothing to purge"));
  EXPECT_TRUE(path_exists(src));
  RunResult p1 = mailshard(cfg, {"purge", "--user", user, "--older-than", "0s"});
  EXPECT_EQ(p1.rc, 0) << p1.describe();
  EXPECT_FALSE(path_exists(src));
  EXPECT_EQ(latest_move(cfg, user)["state"], "purged");
  nlohmann::json purged = lab.imap_state(user);
  EXPECT_EQ(purged["store"], "store2");
  EXPECT_EQ(purged["folders"]["INBOX"]["messages"].get<int>(), after["folders"]["INBOX"]["messages"].get<int>() + 1);
}

TEST(MoveHappyPath, MoveBackBeforePurgeReplacesTheStaleCopy) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 200, 3);
  ASSERT_EQ(mailshard(cfg, {"move", user, "--to", "store2"}).rc, 0);
  lab.deliver(user, 5, "on2");  // lands on store2 only
  nlohmann::json before = lab.imap_state(user, "nginx", true);
  // store1 still holds the old copy; moving back must not merge into it or fail.
  RunResult back = mailshard(cfg, {"move", user, "--to", "store1"});
  ASSERT_EQ(back.rc, 0) << back.describe();
  nlohmann::json after = lab.imap_state(user, "nginx", true);
  EXPECT_EQ(after["store"], "store1");
  expect_same_imap_state(before, after);
}

// Both stores behind agents, store1 with a peer_command: store2's agent
// copies the mailbox straight from store1's (the direct data path), while
// LMTP deliveries (held during the freeze, like a queueing MTA) race the
// copy passes. The IMAP state is the same through nginx,
// every delivery is there once, and the controller logged the direct path.
TEST(MoveHappyPath, AgentToAgentMoveCopiesServerToServer) {
  Lab& lab = Lab::get();
  const std::string root1 = lab.store_env("store1", "MAIL_ROOT"), root2 = lab.store_env("store2", "MAIL_ROOT");
  const std::string agent1 = mailshard_bin() + " agent --stdio --root " + root1;
  const std::string agent2 = mailshard_bin() + " agent --stdio --root " + root2;
  std::ifstream in(lab.dir() + "/mailshard.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto behind_agent = [&](const std::string& root, const std::string& extra) {
    text = std::regex_replace(text,
                              std::regex("(mail_root = \"" + root + "\"[^\\n]*\\n(?:[^\\n]*\\n)*?)transport = \"local\""),
                              "$1transport = \"agent\"\n" + extra);
  };
  behind_agent(root1, "agent_command = \"" + agent1 + "\"\npeer_command = \"" + agent1 + "\"");
  behind_agent(root2, "agent_command = \"" + agent2 + "\"\npeer_transport = \"direct\"");
  ASSERT_THAT(text, HasSubstr("peer_command = \"" + agent1 + "\""));
  ASSERT_THAT(text, HasSubstr("peer_transport = \"direct\""));
  const std::string cfg = lab.dir() + "/mailshard-direct.toml";
  std::ofstream(cfg) << text;

  const std::string user = lab.add_user("store1");
  nlohmann::json fill = lab.fill_mailbox(user, 600, 11);
  ASSERT_EQ(fill["appended"], 600);
  nlohmann::json before = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(before["store"], "store1");

  nlohmann::json delivered;
  // An MTA that queues while the user is frozen (Postfix with the freeze
  // map): mail goes to store1 before the freeze and to store2 after the flip.
  std::thread mta([&] { delivered = lab.deliver(user, 60, "direct", {"--interval", "0.02", "--honor-freeze"}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  mta.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("data path direct: store2's agent copies from store1"));
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
  ASSERT_EQ(delivered["delivered"], 60);

  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  EXPECT_EQ(after["store"], "store2");
  // Every folder but INBOX (where the racing mail went) is exactly as it was.
  for (const auto& [name, f] : before["folders"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(after["folders"].contains(name));
    EXPECT_EQ(after["folders"][name]["uidvalidity"], f["uidvalidity"]);
    if (name != "INBOX") {
      EXPECT_EQ(after["folders"][name], f);
    }
  }
  auto counts = message_id_counts(after);
  for (const auto& d : delivered["messages"]) {
    const std::string id = d["message_id"];
    EXPECT_EQ(counts[id], 1) << id << " delivered to " << d["store"] << "\n" << r.err;
  }
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done");
  EXPECT_GT(m["bytes_transferred"].get<int64_t>(), 100'000);
}

}  // namespace
}  // namespace mailshard::testing
