// A user whose Dovecot keeps index and control files outside the home
// (mail_location maildir:~/Maildir:INDEX=ROOT/index/%d/%n:CONTROL=ROOT/control/%d/%n
// on both stores: the lab's split-users userdb gives the user that location)
// moves from store1 to store2 while LMTP deliveries race the move. Over IMAP
// afterwards: every folder's UIDVALIDITY, every UID with its flags and
// INTERNALDATE are the source's, and every delivered message is there exactly
// once. On disk: the uidlists are in store2's control tree, and no staging
// directory is left in any tree. A second test makes the same move with both stores behind
// agents and the direct data path (store2's agent copies every tree from store1's).
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

std::string split_location(const std::string& root) {
  return "maildir:~/Maildir:INDEX=" + root + "/index/%d/%n:CONTROL=" + root + "/control/%d/%n";
}

// Gives `user` its split location on `store` (Dovecot's side).
void split_user(Lab& lab, const std::string& store, const std::string& user) {
  const std::string root = lab.store_env(store, "MAIL_ROOT");
  const auto at = user.find('@');
  const std::string domain = user.substr(at + 1), name = user.substr(0, at);
  // The index and control disks as an administrator prepares them (mount
  // points there before any user is): the mail user's, like the mail root.
  RunResult mk = lab.run({"install", "-d", "-o", lab.env("MAIL_UID"), "-g", lab.env("MAIL_GID"), root + "/index",
                          root + "/control"});
  if (mk.rc != 0) throw LabError("install -d " + root + "/index " + root + "/control: " + mk.describe());
  set_user_mail_location(lab, store, user,
                         "maildir:~/Maildir:INDEX=" + root + "/index/" + domain + "/" + name + ":CONTROL=" + root +
                             "/control/" + domain + "/" + name);
}

// The move of a user with split trees, through the config that `edits`
// make of the lab's (the stores' mail_location is set here).
void move_split_user(const std::string& name, std::vector<std::pair<std::string, std::string>> edits,
                     const std::string& expect_in_log = {}) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  split_user(lab, "store1", user);
  split_user(lab, "store2", user);
  nlohmann::json fill = lab.fill_mailbox(user, 300, 11);
  ASSERT_EQ(fill["appended"], 300);
  const std::string root1 = lab.store_env("store1", "MAIL_ROOT"), root2 = lab.store_env("store2", "MAIL_ROOT");
  const auto at = user.find('@');
  const std::string rel = user.substr(at + 1) + "/" + user.substr(0, at);
  // Dovecot really keeps them apart: the INBOX's uidlist is in the control tree.
  ASSERT_TRUE(path_exists(root1 + "/control/" + rel + "/.INBOX/dovecot-uidlist"));
  ASSERT_TRUE(path_exists(root1 + "/index/" + rel));
  EXPECT_FALSE(path_exists(lab.maildir_path("store1", user) + "/dovecot-uidlist"));

  nlohmann::json before = lab.imap_state(user, "store1", /*detail=*/true);
  edits.push_back({"(name = \"store1\"\n)", "$1mail_location = \"" + split_location(root1) + "\"\n"});
  edits.push_back({"(name = \"store2\"\n)", "$1mail_location = \"" + split_location(root2) + "\"\n"});
  const std::string cfg = lab_config(name, edits);
  nlohmann::json delivered;
  std::thread mta([&] { delivered = lab.deliver(user, 60, "split", {"--interval", "0.02"}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  mta.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr(user + " store1 -> store2: done"));
  if (!expect_in_log.empty()) {
    EXPECT_THAT(r.err, HasSubstr(expect_in_log));
  }
  ASSERT_EQ(delivered["delivered"], 60);
  EXPECT_GT(delivered["stores"].value("store1", 0), 0) << "deliveries raced the move on the source";

  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(after["store"], "store2");
  // Every folder keeps its UIDVALIDITY; every message that was there keeps
  // its UID, flags and INTERNALDATE.
  expect_uids_kept(before, after);
  // Nothing delivered during the move is lost or doubled.
  auto counts = message_id_counts(after);
  for (const auto& m : delivered["messages"])
    EXPECT_EQ(counts[m["message_id"].get<std::string>()], 1) << m.dump();

  // On disk: the trees at their own paths on store2, no staging anywhere.
  EXPECT_TRUE(path_exists(root2 + "/control/" + rel + "/.INBOX/dovecot-uidlist"));
  EXPECT_TRUE(path_exists(root2 + "/index/" + rel));
  for (const std::string& home : {lab.home_path("store2", user), root2 + "/index/" + rel, root2 + "/control/" + rel})
    EXPECT_TRUE(staging_dirs(home).empty()) << home;
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done");
  ASSERT_EQ(m["detail"]["trees"].size(), 2u) << m["detail"].dump();
  EXPECT_GE(m["detail"]["trees"][1]["uidlists_checked"].get<int64_t>(), 1) << m["detail"].dump();

  // Purge removes every source tree.
  RunResult p = mailshard(cfg, {"purge", "--user", user, "--older-than", "0s"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  EXPECT_FALSE(path_exists(lab.home_path("store1", user)));
  EXPECT_FALSE(path_exists(root1 + "/control/" + rel));
  EXPECT_FALSE(path_exists(root1 + "/index/" + rel));
}

TEST(MoveExtraTrees, IndexAndControlOutsideTheHomeMoveWithEveryUid) { move_split_user("extra_trees", {}); }

// The same with both stores behind agents (each confined to its mail root,
// which holds the index and control trees too) and the direct data path:
// store2's agent copies every tree straight from store1's.
TEST(MoveExtraTrees, BehindAgentsEveryTreeGoesServerToServer) {
  Lab& lab = Lab::get();
  const std::string root1 = lab.store_env("store1", "MAIL_ROOT"), root2 = lab.store_env("store2", "MAIL_ROOT");
  const std::string agent1 = mailshard_bin() + " agent --stdio --root " + root1;
  const std::string agent2 = mailshard_bin() + " agent --stdio --root " + root2;
  auto behind_agent = [](const std::string& root, const std::string& extra) {
    return std::pair<std::string, std::string>{
        "(mail_root = \"" + root + "\"[^\\n]*\\n(?:[^\\n]*\\n)*?)transport = \"local\"",
        "$1transport = \"agent\"\n" + extra};
  };
  move_split_user("extra_trees_agents",
                  {behind_agent(root1, "agent_command = \"" + agent1 + "\"\npeer_command = \"" + agent1 + "\""),
                   behind_agent(root2, "agent_command = \"" + agent2 + "\"\npeer_transport = \"direct\"")},
                  "data path direct: store2's agent copies from store1");
}

}  // namespace
}  // namespace mailshard::testing
