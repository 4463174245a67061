// Courier -> Dovecot: a generated Courier-IMAP Maildir++ (several folders, a
// UTF-8 folder name, keywords in :list and in updates, subscriptions, UID
// gaps) on store1, declared `courier:~/Maildir`, moved to store2
// (`maildir:~/Maildir`) while LMTP deliveries race the move. Afterwards
// Dovecot reports over IMAP exactly the UIDVALIDITY, UIDs, flags, keywords
// and subscriptions that Courier's files said before the move (read by
// tests/lab/courier_mailbox.py, which shares no code with mailshard), and
// every delivered message is there exactly once.
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

// The move and its checks; `dst_location` is store2's mail_location for this
// user (given to Dovecot there through split-users when it is not the lab's
// default).
void move_courier_to_dovecot(const std::string& tag, const std::string& dst_location) {
  Lab& lab = Lab::get();
  const std::string cfg =
      lab_config(tag, {{"(name = \"store1\"\n)", "$1mail_location = \"courier:~/Maildir\"\n"},
                       {"(name = \"store2\"\n)", "$1mail_location = \"" + dst_location + "\"\n"}});
  const std::string user = lab.add_user("store1");
  if (dst_location != "maildir:~/Maildir") set_user_mail_location(lab, "store2", user, dst_location);
  const std::string home = lab.home_path("store1", user);
  const std::string maildir = lab.maildir_path("store1", user);
  const std::string script = lab.env("LAB_SCRIPTS") + "/courier_mailbox.py";
  RunResult gen = lab.run({"/usr/bin/python3", script, "generate", "--maildir", maildir, "--messages", "400", "--seed",
                           "11"});
  ASSERT_EQ(gen.rc, 0) << gen.describe();
  ASSERT_EQ(lab.run({"chown", "dovecot:dovecot", home}).rc, 0);
  RunResult exp = lab.run({"/usr/bin/python3", script, "expect", "--maildir", maildir});
  ASSERT_EQ(exp.rc, 0) << exp.describe();
  const nlohmann::json want = nlohmann::json::parse(exp.out);
  ASSERT_EQ(want["folders"].size(), 5u);
  ASSERT_TRUE(want["folders"].contains("Entwürfe"));

  // Deliveries for the whole move (over LMTP to whatever mailHost says).
  nlohmann::json delivered;
  std::thread mta([&] { delivered = lab.deliver(user, 40, "courier-race", {"--interval", "0.02"}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  mta.join();
  ASSERT_EQ(r.rc, 0) << r.describe();
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "done") << m.dump();

  nlohmann::json got = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(got["store"], "store2");
  for (const auto& [name, f] : want["folders"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(got["folders"].contains(name)) << got["folders"].dump();
    const auto& g = got["folders"][name];
    EXPECT_EQ(g["uidvalidity"], f["uidvalidity"]);
    std::map<std::string, nlohmann::json> by_uid;
    for (const auto& row : g["detail"]) by_uid[std::to_string(row["uid"].get<int64_t>())] = row;
    for (const auto& [uid, msg] : f["messages"].items()) {
      SCOPED_TRACE("UID " + uid);
      ASSERT_TRUE(by_uid.count(uid)) << "missing";
      EXPECT_EQ(by_uid[uid]["flags"], msg["flags"]);
      EXPECT_EQ(by_uid[uid]["message_id"], msg["message_id"]);
    }
    // Anything else is a racing delivery, numbered from Courier's next UID on.
    for (const auto& [uid, row] : by_uid) {
      if (f["messages"].contains(uid)) continue;
      EXPECT_EQ(name, "INBOX") << "UID " << uid << " appeared in " << name;
      EXPECT_GE(row["uid"].get<int64_t>(), f["uidnext"].get<int64_t>()) << row.dump();
    }
    if (name != "INBOX") {
      EXPECT_EQ(g["uidnext"], f["uidnext"]);
    }
  }
  // No other folder (LAYOUT=fs would list any directory Courier left as one),
  // but what the lab's Dovecot creates itself.
  for (const auto& [name, g] : got["folders"].items())
    EXPECT_TRUE(want["folders"].contains(name) || name == "Drafts" || name == "Trash") << "extra folder " << name;
  if (dst_location.find("LAYOUT=fs") != std::string::npos) {
    const std::string m = lab.maildir_path("store2", user);
    EXPECT_TRUE(std::filesystem::is_directory(m + "/Lists/dev/cur"));
    EXPECT_FALSE(std::filesystem::exists(m + "/.Lists.dev"));
    EXPECT_FALSE(std::filesystem::exists(m + "/courierimapkeywords"));
  }
  // Subscriptions: Courier's, plus what the lab's Dovecot auto-subscribes.
  std::set<std::string> subs;
  for (const auto& s : got["subscriptions"]) subs.insert(s.get<std::string>());
  for (const auto& s : want["subscriptions"]) EXPECT_TRUE(subs.erase(s.get<std::string>())) << s;
  for (const auto& s : subs) EXPECT_TRUE(s == "Drafts" || s == "Sent" || s == "Trash") << "extra subscription " << s;

  ASSERT_EQ(delivered["delivered"], 40);
  auto counts = message_id_counts(got);
  for (const auto& d : delivered["messages"]) {
    std::string id = d["message_id"];
    EXPECT_EQ(counts[id], 1) << id << " delivered to " << d["store"];
  }
}

TEST(MoveCourier, ConvertedMailboxShowsWhatCourierShowedAndRacingDeliveriesArrive) {
  move_courier_to_dovecot("courier_move", "maildir:~/Maildir");
}

// The same into Dovecot's LAYOUT=fs: folders are nested directories
// (".Lists.dev" becomes "Lists/dev"), and no directory of Courier's is left
// for Dovecot to list as a folder.
TEST(MoveCourier, IntoLayoutFsDovecotShowsWhatCourierShowed) {
  move_courier_to_dovecot("courier_move_fs", "maildir:~/Maildir:LAYOUT=fs");
}

}  // namespace
}  // namespace mailshard::testing
