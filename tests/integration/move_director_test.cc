// A move behind the lab's Dovecot director (examples/dovecot-director/): shared1 and shared2 are
// two backends over ONE mail root, storage group "nfs1" in DIR/mailshard-director.toml
// ([router] method = "director"). A move between them is `doveadm director move`: the director
// ends the session on the old backend and sends the next login to the new one; LDAP mailHost is
// flipped; no mail file is copied. Plus the faults: a backend the director does not know, a
// destination outside the storage group, the director unreachable, and a crash after the
// director moved the user but before the flip (resume finishes it).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kMessages = 12;
constexpr int kKickWaitMs = 5000;  // the kicked session must end within this

std::string director_config() { return Lab::get().env("DIRECTOR_CONFIG"); }

// DIR/mailshard-director.toml with `re` replaced by `rep`, under a new name.
std::string director_config_with(const std::string& name, const std::string& re, const std::string& rep) {
  std::ifstream in(director_config());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text = std::regex_replace(text, std::regex(re), rep);
  std::string path = Lab::get().dir() + "/" + name + ".toml";
  std::ofstream(path) << text;
  return path;
}

// doveadm director ... against the lab's director; stdout.
std::string director(std::vector<std::string> args) {
  args.insert(args.begin(), {Lab::get().env("DIRECTOR_DOVEADM"), "director"});
  RunResult r = Lab::get().run(args, {}, 30);
  if (r.rc != 0) throw LabError("doveadm director: " + r.describe());
  return r.out;
}

// The backend the director maps USER to now ("Current: 127.2.0.1 (expires ...)").
std::string director_current(const std::string& user) {
  std::string out = director({"status", user});
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("Current: ([0-9.]+|n/a)"))) throw LabError("director status: " + out);
  return m[1];
}

// An IMAP session through the director, held open: which backend it reached, and whether the
// server ended it.
class Session {
 public:
  explicit Session(const std::string& user) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::stoi(Lab::get().env("DIRECTOR_IMAP_PORT"))));
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw LabError("connect to the director");
    read_until("* OK");
    send("a LOGIN " + user + " secret\r\n");
    read_until("a OK");
    send("b ID NIL\r\n");
    std::string id = read_until("b OK");
    std::smatch m;
    if (std::regex_search(id, m, std::regex("\"x-mlab-store\" \"([a-z0-9]+)\""))) store_ = m[1];
  }
  ~Session() { ::close(fd_); }
  const std::string& store() const { return store_; }
  // True when the server closes the connection within `ms` (a BYE may come first).
  bool ended_within(int ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      if (::recv(fd_, buf, sizeof buf, 0) <= 0) return true;
    }
    return false;
  }

 private:
  void send(const std::string& s) { (void)::send(fd_, s.data(), s.size(), MSG_NOSIGNAL); }
  std::string read_until(const std::string& marker) {
    std::string got;
    char buf[4096];
    while (got.find(marker) == std::string::npos) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 15000) <= 0) throw LabError("IMAP via director: no '" + marker + "' in: " + got);
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) throw LabError("IMAP via director: closed before '" + marker + "': " + got);
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
  int fd_ = -1;
  std::string store_;
};

// Every message file under the shared mail root (path relative to it, size), and every
// directory: a director move must add none and change none.
std::set<std::string> mail_files() {
  std::set<std::string> out;
  const fs::path root = Lab::get().store_env("shared1", "MAIL_ROOT");
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const std::string rel = fs::relative(it->path(), root).string();
    if (it->is_directory()) out.insert(rel + "/");
    else if (rel.find("/cur/") != std::string::npos || rel.find("/new/") != std::string::npos)
      out.insert(rel + " " + std::to_string(it->file_size()));
  }
  return out;
}

// A user of storage group nfs1 on shared1 (LDAP), with mail, whom the director routes to shared1.
std::string shared1_user() {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("shared1");
  lab.fill_mailbox(user, kMessages, 7, "shared1");
  if (director_current(user) != lab.store_env("shared1", "ROUTED_ADDR")) {
    director({"move", user, lab.store_env("shared1", "ROUTED_ADDR")});
    EXPECT_EQ(director_current(user), lab.store_env("shared1", "ROUTED_ADDR"));
  }
  return user;
}

TEST(MoveDirector, MovesInsideTheStorageGroupWithoutCopying) {
  Lab& lab = Lab::get();
  const std::string user = shared1_user();
  const nlohmann::json before = lab.imap_state(user, "director", /*detail=*/true);
  ASSERT_EQ(before["store"], "shared1");
  Session session(user);
  ASSERT_EQ(session.store(), "shared1");
  const auto files_before = mail_files();

  const auto t0 = std::chrono::steady_clock::now();
  RunResult r = mailshard(director_config(), {"move", user, "--to", "shared2"});
  const double move_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.rc, 0) << r.describe();

  EXPECT_TRUE(session.ended_within(kKickWaitMs)) << "the session on shared1 outlived the director move";
  EXPECT_EQ(director_current(user), lab.store_env("shared2", "ROUTED_ADDR"));
  const auto t1 = std::chrono::steady_clock::now();
  const nlohmann::json after = lab.imap_state(user, "director", /*detail=*/true);
  const double login_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  EXPECT_EQ(after["store"], "shared2");
  expect_same_imap_state(before, after);
  EXPECT_EQ(mail_files(), files_before) << "a director move must not copy or touch a mail file";
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "shared2");

  const nlohmann::json m = latest_move(director_config(), user);
  EXPECT_EQ(m["state"], "done");
  EXPECT_EQ(m["bytes_transferred"], 0);
  EXPECT_EQ(m["detail"]["kind"], "director");
  EXPECT_EQ(m["detail"]["director_moved"], true);
  RunResult steps = mailshard(director_config(), {"status", user});
  EXPECT_EQ(steps.rc, 0) << steps.describe();
  // Nothing was copied, so verify has no copy to check, and says why.
  RunResult verify = mailshard(director_config(), {"verify", user});
  EXPECT_EQ(verify.rc, 0) << verify.describe();
  EXPECT_THAT(verify.out + verify.err, ::testing::HasSubstr("was a director move inside storage group 'nfs1'"))
      << verify.describe();
  std::printf("director move %.2f s, next login through the director %.2f s, 0 bytes copied\n", move_s, login_s);
}

TEST(MoveDirector, RefusalsChangeNothing) {
  Lab& lab = Lab::get();
  const std::string user = shared1_user();
  const std::string a = lab.store_env("shared1", "ROUTED_ADDR");

  // A director_host the director does not know: one line naming the server and the IP.
  std::string cfg = director_config_with("director-unknown-host", "director_host = \"127\\.2\\.0\\.2\"",
                                         "director_host = \"127.2.0.9\"");
  RunResult r = mailshard(cfg, {"move", user, "--to", "shared2"});
  EXPECT_EQ(r.rc, 2) << r.describe();
  EXPECT_THAT(r.err, ::testing::HasSubstr("does not know server shared2 (director_host 127.2.0.9); it knows: "
                                          "127.2.0.1, 127.2.0.2"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  // Outside the storage group: refused, exit 2 (a copy move would leave the director routing
  // the user to nfs1 whatever mailHost says).
  r = mailshard(director_config(), {"move", user, "--to", "store1"});
  EXPECT_EQ(r.rc, 2) << r.describe();
  EXPECT_THAT(r.err, ::testing::HasSubstr("is on shared1 (storage group 'nfs1') and store1 is in no storage group"));

  // The director unreachable (nothing listens on B+151).
  const std::string dead = "127.0.0.1:" + std::to_string(std::stoi(lab.env("LAB_PORT_BASE")) + 151);
  cfg = director_config_with("director-unreachable", "director_url = \"http://127\\.0\\.0\\.1:[0-9]+/",
                             "director_url = \"http://" + dead + "/");
  r = mailshard(cfg, {"move", user, "--to", "shared2"});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_THAT(r.err, ::testing::HasSubstr("director http://" + dead + "/doveadm/v1"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "shared1");
  EXPECT_EQ(director_current(user), a);
  EXPECT_EQ(latest_move(director_config(), user)["state"], "rolled_back");
}

// kill -9 right after the director moved the user, before the LDAP flip: resume flips and
// finishes; the director keeps the user on shared2.
TEST(MoveDirector, CrashAfterTheDirectorMoveThenResume) {
  Lab& lab = Lab::get();
  const std::string user = shared1_user();
  RunResult r = mailshard(director_config(), {"move", user, "--to", "shared2"},
                          {"MAILSHARD_TEST_AT=director_move.end:kill"});
  ASSERT_EQ(r.rc, 128 + 9) << r.describe();
  nlohmann::json m = latest_move(director_config(), user);
  EXPECT_EQ(m["step"], "director_move");
  EXPECT_EQ(m["state"], "planned");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "shared1");
  EXPECT_EQ(director_current(user), lab.store_env("shared2", "ROUTED_ADDR"));

  RunResult res = mailshard(director_config(), {"resume"});
  ASSERT_EQ(res.rc, 0) << res.describe();
  m = latest_move(director_config(), user);
  EXPECT_EQ(m["state"], "done");
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "shared2");
  EXPECT_EQ(director_current(user), lab.store_env("shared2", "ROUTED_ADDR"));
  EXPECT_EQ(lab.imap_state(user, "director")["store"], "shared2");
}

// The planner's load strategy on a director fleet (issue 12): the storage group is a class of its
// own, balanced by load alone, with moves that copy nothing, and the nightly job runs them as
// director moves. Four users of load 10 on shared1, none on shared2: two move.
TEST(MoveDirector, TheNightBalancesTheGroupsLoadByDirectorMovesAlone) {
  Lab& lab = Lab::get();
  std::set<std::string> hot;
  for (int i = 0; i < 4; ++i) {
    const std::string user = shared1_user();
    ASSERT_EQ(lab.ldap_modify_assert(lab.user_dn(user), "add: mailActivity\nmailActivity: 10\n", ""), 0) << user;
    hot.insert(user);
  }
  const std::string dir = lab.dir() + "/director-night";
  lab.run({"rm", "-rf", dir});
  lab.run({"mkdir", "-p", dir});
  const auto files_before = mail_files();

  RunResult p = mailshard(director_config(), {"plan", "--no-journal", "--output", dir + "/plan.json"});
  ASSERT_EQ(p.rc, 0) << p.describe();
  std::ifstream in(dir + "/plan.json");
  const nlohmann::json plan = nlohmann::json::parse(in);
  auto name = [&](const nlohmann::json& id) { return plan["servers"][id.get<size_t>()]["name"].get<std::string>(); };
  std::set<std::string> planned;
  for (const auto& m : plan["moves"]) {
    EXPECT_EQ(name(m["from"]), "shared1") << m.dump();
    EXPECT_EQ(name(m["to"]), "shared2") << m.dump();
    EXPECT_EQ(m["bytes"], 0) << m.dump();
    EXPECT_EQ(m["reason"], "load") << m.dump();
    planned.insert(m["user"].get<std::string>());
  }
  ASSERT_EQ(planned.size(), 2u) << p.describe();
  for (const auto& u : planned) EXPECT_EQ(hot.count(u), 1u) << u << " is not one of the active users";

  RunResult r = mailshard(director_config(), {"--json", "rebalance", "--plan", dir + "/plan.json"}, {}, 600);
  ASSERT_EQ(r.rc, 0) << r.describe();
  const nlohmann::json rep = nlohmann::json::parse(r.out);
  EXPECT_EQ(rep["done"], 2);
  EXPECT_EQ(rep["failed"], 0);
  for (const auto& u : hot) {
    const bool moved = planned.count(u) > 0;
    EXPECT_EQ(lab.ldap_get(u, "mailHost"), moved ? "shared2" : "shared1") << u;
    EXPECT_EQ(director_current(u), lab.store_env(moved ? "shared2" : "shared1", "ROUTED_ADDR")) << u;
    if (moved) {
      EXPECT_EQ(latest_move(director_config(), u)["detail"]["kind"], "director") << u;
    }
  }
  EXPECT_EQ(mail_files(), files_before) << "the night copied or touched a mail file";
  // Planned again, the group is inside its load band: nothing to do.
  RunResult again = mailshard(director_config(), {"plan", "--no-journal", "--output", dir + "/again.json"});
  ASSERT_EQ(again.rc, 0) << again.describe();
  std::ifstream in2(dir + "/again.json");
  EXPECT_EQ(nlohmann::json::parse(in2)["moves"].size(), 0u);
}

}  // namespace
}  // namespace mailshard::testing
