// --dry-run changes nothing in LDAP, on disk or in the journal beyond one
// dry-run record.
#include <set>
#include <sstream>

#include "tests/integration/move_test_util.h"

namespace mailshard::testing {
namespace {

using ::testing::HasSubstr;

std::string tree(const std::string& dir) {
  RunResult r = Lab::get().run({"sh", "-c", "cd " + dir + " 2>/dev/null && find . -printf '%p %s %T@ %m %u\\n' | sort"});
  return r.out;
}

// Lines only in `a` ("- ...") or only in `b` ("+ ..."): empty when equal.
std::string changed_lines(const std::string& a, const std::string& b) {
  std::set<std::string> la, lb;
  std::istringstream ia(a), ib(b);
  for (std::string l; std::getline(ia, l);) la.insert(l);
  for (std::string l; std::getline(ib, l);) lb.insert(l);
  std::string out;
  for (const auto& l : la)
    if (!lb.count(l)) out += "- " + l + "\n";
  for (const auto& l : lb)
    if (!la.count(l)) out += "+ " + l + "\n";
  return out;
}

std::string ldap_entry(const std::string& user) {
  Lab& lab = Lab::get();
  RunResult r = lab.run({"ldapsearch", "-x", "-LLL", "-H", lab.env("LDAP_URI"), "-D", lab.env("LDAP_ADMIN_DN"), "-y",
                         lab.env("LDAP_ADMIN_PW_FILE"), "-b", lab.user_dn(user), "-s", "base", "*", "+"});
  return r.out;
}

std::string journal_rows(const std::string& journal) {
  RunResult r = Lab::get().run({"sqlite3", journal,
                                "select count(*) from moves; select count(*) from move_steps; select count(*) from "
                                "move_blobs; select group_concat(state) from moves;"});
  return r.out;
}

TEST(MoveDryRun, WritesNothingButOneRecord) {
  Lab& lab = Lab::get();
  const std::string cfg = lab.dir() + "/mailshard.toml";
  const std::string journal = lab.dir() + "/journal.sqlite";
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 50, 41);
  mailshard(cfg, {"status"});  // make sure the journal exists before taking its picture
  const std::string stores = lab.dir() + "/store1/mail " + lab.dir() + "/store2/mail";
  std::string t1 = tree(lab.dir() + "/store1/mail"), t2 = tree(lab.dir() + "/store2/mail");
  std::string entry = ldap_entry(user);
  std::string rows = journal_rows(journal);
  RunResult moves_before = lab.run({"sqlite3", journal, "select count(*) from moves where state = 'dry_run'"});

  RunResult r = mailshard(cfg, {"move", user, "--to", "store2", "--dry-run"});
  ASSERT_EQ(r.rc, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("dry run: move " + user + " store1 -> store2 would start now"));
  EXPECT_THAT(r.out, HasSubstr("nothing was changed"));

  EXPECT_EQ(changed_lines(t1, tree(lab.dir() + "/store1/mail")), "");
  EXPECT_EQ(changed_lines(t2, tree(lab.dir() + "/store2/mail")), "");
  EXPECT_EQ(ldap_entry(user), entry);
  RunResult moves_after = lab.run({"sqlite3", journal, "select count(*) from moves where state = 'dry_run'"});
  EXPECT_EQ(std::stoi(moves_after.out), std::stoi(moves_before.out) + 1);
  RunResult steps = lab.run({"sqlite3", journal,
                             "select count(*) from move_steps where move_id = (select max(id) from moves)"});
  EXPECT_EQ(std::stoi(steps.out), 0);
  // A dry run claims nothing: a real move can start right after it.
  RunResult real = mailshard(cfg, {"move", user, "--to", "store2"});
  EXPECT_EQ(real.rc, 0) << real.describe();
}

TEST(MoveDryRun, ReportsWhatWouldFail) {
  Lab& lab = Lab::get();
  const std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 20, 42);
  // A destination without room: the dry run says so and exits 1.
  const std::string cfg = lab_config("dry_nospace", {{R"(headroom = .*)", ""}}, "[move]\nheadroom = \"100TiB\"\n");
  RunResult r = mailshard(cfg, {"move", user, "--to", "store2", "--dry-run"});
  EXPECT_EQ(r.rc, 1) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("store2 has"));
  EXPECT_THAT(r.err, HasSubstr("plus 100.0 TiB headroom"));
}

}  // namespace
}  // namespace mailshard::testing
