// Quota at the destination (the lab's stores run Dovecot's quota plugin, count
// backend, quota_vsizes; an LDAP mailQuotaRule gives one user a rule of their own).
//  - A mailbox larger than the user's quota limit on the destination is refused
//    in preflight: exit 1 with one line naming the user, the size and the
//    limit; the user stays on the source, active, and the destination has no
//    home (not even the empty one Dovecot creates to answer quota get).
//  - A move that fits ends with doveadm quota recalc on the destination:
//    `doveadm quota get` there reports the messages the user has over IMAP
//    (late mail swept after the final pass included) and their size.
#include <fstream>
#include <sstream>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

// `doveadm -f tab quota get -u USER` on STORE: type -> {value, limit} ("-" = -1).
std::map<std::string, std::pair<int64_t, int64_t>> doveadm_quota(const std::string& store, const std::string& user) {
  Lab& lab = Lab::get();
  RunResult r = lab.run({lab.dir() + "/bin/doveadm-" + store, "-f", "tab", "quota", "get", "-u", user});
  if (r.rc != 0) throw LabError("doveadm quota get: " + r.describe());
  std::map<std::string, std::pair<int64_t, int64_t>> out;
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, line);  // header: quota name, type, value, limit, %
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream cols(line);
    for (std::string c; std::getline(cols, c, '\t');) f.push_back(c);
    if (f.size() < 4) continue;
    auto num = [](const std::string& s) -> int64_t { return s == "-" ? -1 : std::stoll(s); };
    out[f[1]] = {num(f[2]), num(f[3])};
  }
  return out;
}

TEST(MoveQuota, AMailboxOverTheDestinationsLimitIsRefusedInPreflight) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 60, 31);
  nlohmann::json before = lab.imap_state(user, "nginx", /*detail=*/true);
  // The operator lowered this user's quota below what the mailbox holds
  // (the rule is the user's on every store; the mail predates it).
  ASSERT_EQ(lab.ldap_modify_assert(lab.user_dn(user), "add: mailQuotaRule\nmailQuotaRule: *:storage=20K\n", ""), 0);
  ASSERT_EQ(doveadm_quota("store1", user)["STORAGE"].second, 20);

  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_THAT(r.err, ::testing::ContainsRegex("move " + std::string(user) +
                                              ": user " + user + " has [0-9.]+ [KM]iB of mail \\([0-9]+ messages\\) but "
                                              "the quota 'User quota' on store2 allows 20\\.0 KiB"));
  EXPECT_EQ(lab.ldap_get(user, "mailHost"), "store1");
  EXPECT_EQ(lab.ldap_get(user, "mailAccountStatus").value_or("active"), "active") << "never frozen";
  const std::string dst = lab.home_path("store2", user);
  EXPECT_FALSE(path_exists(dst)) << "no home left on store2, not even Dovecot's empty one";
  EXPECT_TRUE(staging_dirs(dst).empty());
  nlohmann::json m = latest_move(cfg, user);
  EXPECT_EQ(m["state"], "rolled_back");
  EXPECT_EQ(m["step"], "preflight");
  nlohmann::json after = lab.imap_state(user, "nginx", /*detail=*/true);
  EXPECT_EQ(after["store"], "store1");
  expect_same_imap_state(before, after);
}

TEST(MoveQuota, AfterTheMoveTheDestinationsQuotaCountsEveryMessage) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 80, 32);
  ASSERT_EQ(lab.ldap_modify_assert(lab.user_dn(user), "add: mailQuotaRule\nmailQuotaRule: *:storage=50M\n", ""), 0);
  // Late mail: an MTA that ignores the freeze delivers to store1 after the
  // final pass; the sweep carries it, behind the destination Dovecot's back.
  std::string late = "run:/usr/bin/python3 " + lab.env("LAB_SCRIPTS") + "/deliver.py --lab " + lab.dir() +
                     " --user " + user + " --count 3 --tag quotalate";
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=verify.end:" + late});
  ASSERT_EQ(r.rc, 0) << r.describe();

  nlohmann::json m = latest_move(cfg, user);
  ASSERT_EQ(m["state"], "done") << m.dump();
  EXPECT_EQ(m["detail"]["quota_limit_kib"], 50 * 1024);
  EXPECT_EQ(m["detail"]["quota_recalc"], "done") << m["detail"].dump();
  EXPECT_EQ(m["detail"]["swept"], 3);

  // What a client sees on store2: every message and its RFC822.SIZE (the
  // virtual size, which quota_vsizes counts).
  nlohmann::json state = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(state["store"], "store2");
  int64_t messages = 0, bytes = 0;
  for (const auto& [name, f] : state["folders"].items()) {
    messages += f["messages"].get<int64_t>();
    for (const auto& row : f["detail"]) bytes += row["size"].get<int64_t>();
  }
  // doveadm shows STORAGE in KiB, rounded up.
  const int64_t kib = (bytes + 1023) / 1024;
  auto q = doveadm_quota("store2", user);
  EXPECT_EQ(q["MESSAGE"].first, messages);
  EXPECT_EQ(q["STORAGE"].first, kib);
  EXPECT_EQ(q["STORAGE"].second, 50 * 1024);
  EXPECT_EQ(m["detail"]["quota_messages"], messages);
  EXPECT_EQ(m["detail"]["quota_storage_kib"], kib);
}

// Maildir++ quota (Dovecot's maildir backend, this user only): maildirsize is
// copied with the final pass, before the late mail the sweep adds; Dovecot
// does not rescan for it. quota_recalc makes it count every message.
TEST(MoveQuota, MaildirsizeCountsTheSweptMailAfterTheMove) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string user = lab.add_user("store1");
  ASSERT_EQ(lab.ldap_modify_assert(lab.user_dn(user), "add: mailQuotaBackend\nmailQuotaBackend: maildir:User quota\n", ""),
            0);
  lab.fill_mailbox(user, 50, 33);
  const std::string src_size = lab.maildir_path("store1", user) + "/maildirsize";
  ASSERT_TRUE(path_exists(src_size)) << "the user's quota is Maildir++";
  std::string late = "run:/usr/bin/python3 " + lab.env("LAB_SCRIPTS") + "/deliver.py --lab " + lab.dir() +
                     " --user " + user + " --count 4 --tag maildirsize";
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2"}, {"MAILSHARD_TEST_AT=verify.end:" + late});
  ASSERT_EQ(r.rc, 0) << r.describe();
  nlohmann::json m = latest_move(cfg, user);
  ASSERT_EQ(m["detail"]["swept"], 4) << m.dump();
  EXPECT_EQ(m["detail"]["quota_recalc"], "done");

  // maildirsize on store2: the header line, then "<bytes> <count>" lines
  // whose sums are the totals.
  std::ifstream in(lab.maildir_path("store2", user) + "/maildirsize");
  ASSERT_TRUE(in.good());
  std::string line;
  std::getline(in, line);
  int64_t bytes = 0, count = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    int64_t b = 0, c = 0;
    f >> b >> c;
    bytes += b;
    count += c;
  }
  nlohmann::json state = lab.imap_state(user, "nginx", /*detail=*/true);
  ASSERT_EQ(state["store"], "store2");
  int64_t messages = 0, sizes = 0;
  for (const auto& [name, f] : state["folders"].items()) {
    messages += f["messages"].get<int64_t>();
    for (const auto& row : f["detail"]) sizes += row["size"].get<int64_t>();
  }
  EXPECT_EQ(count, messages) << "every message, the 4 swept ones included";
  // The maildir backend counts the files' sizes (",S=" in their names), not
  // the RFC822.SIZE a client sees.
  int64_t file_bytes = 0, files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(lab.maildir_path("store2", user))) {
    std::string dir = e.path().parent_path().filename().string(), name = e.path().filename().string();
    if (!e.is_regular_file() || (dir != "cur" && dir != "new")) continue;
    auto s = name.find(",S=");
    ASSERT_NE(s, std::string::npos) << name;
    file_bytes += std::stoll(name.substr(s + 3));
    ++files;
  }
  EXPECT_EQ(files, messages);
  EXPECT_EQ(bytes, file_bytes);
  EXPECT_GT(sizes, file_bytes);  // CRLF: the sizes a client sees are larger
}

}  // namespace
}  // namespace mailshard::testing
