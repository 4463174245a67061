// Mail by SMTP through the lab's Postfix while its recipients move. Postfix
// routes every recipient by LDAP (mailHost -> that store's LMTP) and defers a
// frozen one in its queue; mailshard's [thaw] command flushes the queue. Every
// message must be delivered exactly once, to the new home, none bounced.
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

constexpr int kUsers = 5;
constexpr int kPerUser = 100;
constexpr int kQueueDrainS = 120;  // bound on waiting for Postfix's queue to empty

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Message-IDs of every message file in a Maildir++ tree (new/ and cur/ of every folder).
std::multiset<std::string> message_ids_on_disk(const std::string& maildir) {
  std::multiset<std::string> ids;
  static const std::regex kId(R"((?:^|\n)Message-ID:\s*(<[^>\r\n]+>))", std::regex::icase);
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(maildir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const auto& p = it->path();
    const std::string parent = p.parent_path().filename().string();
    if (!it->is_regular_file() || (parent != "new" && parent != "cur")) continue;
    std::ifstream in(p, std::ios::binary);
    std::string head(8192, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(in.gcount()));
    std::smatch m;
    if (std::regex_search(head, m, kId)) ids.insert(m[1]);
  }
  return ids;
}

bool queue_empty(const Lab& lab) {
  RunResult q = lab.run({lab.env("POSTQUEUE"), "-p"}, {}, 30);
  return q.rc == 0 && q.out.find("Mail queue is empty") != std::string::npos;
}

// What the Postfix log says about each queued message of a run.
struct QueuedMessage {
  std::string message_id;
  std::string recipient;
  int deferrals = 0;
  int sent = 0;
  double delay_s = -1;     // Postfix's delay= on the status=sent line: arrival -> delivered
  std::string relay;       // where it was delivered (relay=...)
};

std::map<std::string, QueuedMessage> parse_postfix_log(const std::string& log) {
  std::map<std::string, QueuedMessage> by_queue_id;
  static const std::regex kCleanup(R"(cleanup\[\d+\]: ([0-9A-F]+): message-id=(<[^>]+>))");
  static const std::regex kStatus(
      R"(: ([0-9A-F]+): to=<([^>]+)>, relay=([^,]+), .*delay=([0-9.]+), .*status=(\w+))");
  std::istringstream in(log);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kCleanup)) {
      by_queue_id[m[1]].message_id = m[2];
    } else if (std::regex_search(line, m, kStatus)) {
      QueuedMessage& q = by_queue_id[m[1]];
      q.recipient = m[2];
      if (m[5] == "deferred") ++q.deferrals;
      if (m[5] == "sent") {
        ++q.sent;
        q.delay_s = std::stod(m[4]);
        q.relay = m[3];
      }
    }
  }
  return by_queue_id;
}

TEST(MovePostfix, SmtpDuringTheMovesArrivesOnceAtTheNewHome) {
  Lab& lab = Lab::get();
  const int max_backoff_s = std::stoi(lab.env("POSTFIX_MAX_BACKOFF_S"));
  // The thaw flushes Postfix's queue. The settle is longer than the queue
  // manager's 30 s routing cache: mail routed to store1 before the freeze by an
  // answer Postfix still holds lands there after the first sweep and is swept.
  const std::string cfg = lab_config("postfix", {},
                                     "\n[thaw]\ncommand = [\"" + lab.env("POSTQUEUE") +
                                         "\", \"-f\"]\ntimeout = \"20s\"\n\n[move]\nsweep_settle = \"31s\"\n");
  // The sender is a lab user too: a DSN would land in its mailbox.
  const std::string sender = lab.add_user("store3");
  std::vector<std::string> users;
  for (int i = 0; i < kUsers; ++i) {
    users.push_back(lab.add_user("store1"));
    lab.fill_mailbox(users.back(), 30, 40 + i);
  }
  const size_t log_start = read_all(lab.env("POSTFIX_LOG")).size();

  // One SMTP sender per user, 100 messages each over ~30 s; the moves start
  // while they send, staggered, and run in parallel.
  std::vector<nlohmann::json> sent(kUsers);
  std::vector<std::thread> senders;
  for (int i = 0; i < kUsers; ++i)
    senders.emplace_back([&, i] {
      RunResult r = lab.run_script("smtp_send.py", {"--user", users[i], "--count", std::to_string(kPerUser), "--tag",
                                                    "pf" + std::to_string(i), "--sender", sender, "--interval", "0.3"},
                                   300);
      sent[i] = r.rc == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{{"error", r.describe()}};
    });
  std::vector<RunResult> moves(kUsers);
  std::vector<std::thread> movers;
  for (int i = 0; i < kUsers; ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(3));
    // The lab's final pass of a 30-message mailbox takes ~0.1 s, too short for a
    // sender every 0.3 s to meet the freeze: hold the freeze 4 s longer, like a
    // bigger mailbox's final pass would.
    movers.emplace_back([&, i] {
      moves[i] = mailshard(cfg, {"move", users[i], "--to", "store2"}, {"MAILSHARD_TEST_AT=kick.end:run:/bin/sleep 4"});
    });
  }
  for (auto& t : senders) t.join();
  for (auto& t : movers) t.join();
  for (int i = 0; i < kUsers; ++i) {
    ASSERT_EQ(moves[i].rc, 0) << users[i] << ": " << moves[i].describe();
    EXPECT_EQ(moves[i].err.find("thaw hook"), std::string::npos) << moves[i].err;
    ASSERT_EQ(sent[i].value("accepted", 0), kPerUser) << sent[i].dump();
  }

  // Bounded wait for Postfix to deliver everything it deferred.
  const auto drain_start = std::chrono::steady_clock::now();
  while (!queue_empty(lab)) {
    ASSERT_LT(std::chrono::steady_clock::now() - drain_start, std::chrono::seconds(kQueueDrainS))
        << "Postfix's queue is not empty after " << kQueueDrainS << " s:\n"
        << lab.run({lab.env("POSTQUEUE"), "-p"}).out;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const double drain_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - drain_start).count();

  const std::string log = read_all(lab.env("POSTFIX_LOG")).substr(log_start);
  EXPECT_EQ(log.find("status=bounced"), std::string::npos) << "Postfix bounced mail";
  EXPECT_EQ(log.find("status=expired"), std::string::npos);
  const auto queued = parse_postfix_log(log);

  double longest_deferred_s = 0, worst_bound_s = 0;
  std::string longest_user;
  int deferred_messages = 0, via_store1 = 0;
  const std::string store1_lmtp = ":" + lab.store_env("store1", "LMTP_PORT");
  for (int i = 0; i < kUsers; ++i) {
    const std::string& user = users[i];
    // Every message exactly once, at the new home, as a client sees it.
    nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
    EXPECT_EQ(after["store"], "store2") << user;
    auto counts = message_id_counts(after);
    int seen = 0;
    for (const auto& m : sent[i]["messages"]) {
      const std::string id = m["message_id"];
      EXPECT_EQ(counts[id], 1) << user << " " << id;
      seen += counts[id] == 1;
    }
    EXPECT_EQ(seen, kPerUser) << user;
    // Nothing on the old home that the new one lacks: whatever Postfix put on
    // store1 (before the flip, or late by a cached route) was copied or swept.
    for (const auto& id : message_ids_on_disk(lab.maildir_path("store1", user)))
      EXPECT_GE(counts[id], 1) << user << ": " << id << " is on store1 only";

    nlohmann::json move = latest_move(cfg, user);
    EXPECT_EQ(move["state"], "done") << move.dump();
    const double lockout_s = move["lockout_ms"].is_number() ? move["lockout_ms"].get<double>() / 1000 : 0;
    double longest = 0;
    for (const auto& [qid, q] : queued) {
      if (q.recipient != user) continue;
      EXPECT_EQ(q.sent, 1) << user << " queue id " << qid << " " << q.message_id;
      via_store1 += q.relay.find(store1_lmtp) != std::string::npos;
      if (q.deferrals == 0) continue;
      ++deferred_messages;
      longest = std::max(longest, q.delay_s);
    }
    const double bound = lockout_s + 2.0 * max_backoff_s;
    std::printf("postfix race: %s lockout %.2f s, longest deferred delivery %.2f s, bound lockout+2x%d s = %.2f s%s\n",
                user.c_str(), lockout_s, longest, max_backoff_s, bound, longest <= bound ? "" : "  (OVER)");
    if (longest > longest_deferred_s) longest_deferred_s = longest, longest_user = user;
    worst_bound_s = std::max(worst_bound_s, longest - bound);
  }
  // No DSN anywhere: the sender's mailbox stayed empty.
  nlohmann::json sender_state = lab.imap_state(sender, "nginx", /*detail=*/true);
  EXPECT_TRUE(message_id_counts(sender_state).empty()) << sender_state.dump();

  std::printf("postfix race: %d messages by SMTP to %d users, %d deferred at least once, %d delivered via store1 "
              "(before the flip), queue empty %.1f s after the last move; longest deferred delivery %.2f s (%s), "
              "worst excess over lockout+2x retry %.2f s\n",
              kUsers * kPerUser, kUsers, deferred_messages, via_store1, drain_s, longest_deferred_s,
              longest_user.c_str(), worst_bound_s);
  EXPECT_GT(deferred_messages, 0) << "no message was ever deferred: the freeze was not exercised";
}

// A thaw hook that fails is a warning; the move still completes.
TEST(MovePostfix, FailingThawHookIsLoggedAndTheMoveCompletes) {
  Lab& lab = Lab::get();
  const std::string cfg =
      lab_config("postfix-hook-fails", {}, "\n[thaw]\ncommand = [\"" + lab.env("POSTQUEUE") + "\", \"-x\"]\n");
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 10, 7);
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.err, ::testing::HasSubstr("thaw hook for " + user + ": '" + lab.env("POSTQUEUE") +
                                          "' exited with status"));
  EXPECT_THAT(r.err, ::testing::HasSubstr("the thaw itself succeeded; the move goes on"));
  EXPECT_EQ(latest_move(cfg, user)["state"], "done");
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus").value_or("active"), "active");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store2");
}

}  // namespace
}  // namespace mailshard::testing
