// Dovecot reads a copy made by the sync engine exactly as it read the
// original: a real mailbox on store1 (filled over IMAP: folders, flags,
// keywords, UID gaps, hard-linked COPYs, sieve), copied to store2 by
// `mailshard sync` (a warm pass, more mail delivered over LMTP, the frozen
// pass through the agent transport), then read over IMAP straight from each
// store: UIDVALIDITY, UIDNEXT, UIDs, flags, keywords, INTERNALDATE and
// subscriptions must be identical.
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/lab.h"

namespace mailshard::testing {
namespace {

namespace fs = std::filesystem;

std::string bin() {
  const char* b = std::getenv("MAILSHARD_BIN");
  if (!b) throw LabError("MAILSHARD_BIN is not set (run through ctest)");
  return b;
}

TEST(SyncDovecot, DovecotSeesTheSameMailboxOnTheCopy) {
  Lab& lab = Lab::get();
  std::string user = lab.add_user("store1");
  lab.fill_mailbox(user, 80, 7, "store1");
  std::string src = lab.home_path("store1", user);
  std::string dst = lab.home_path("store2", user);
  ASSERT_TRUE(fs::is_directory(src)) << src;
  ASSERT_FALSE(fs::exists(dst)) << "the destination must be untouched before the first pass";
  std::string state = lab.dir() + "/sync-" + user + ".state";

  // Warm pass (local transports), then mail keeps arriving at the source.
  auto warm = lab.run({bin(), "--json", "sync", src, dst, "--state", state, "--verify"});
  ASSERT_EQ(warm.rc, 0) << warm.describe();
  auto w = nlohmann::json::parse(warm.out);
  EXPECT_GT(w["pass"]["files_copied"].get<int>(), 60);
  lab.deliver(user, 5, "during-move");

  // The frozen pass, writing through the agent protocol.
  auto fin = lab.run({bin(), "--json", "sync", src, "agent:" + dst, "--state", state, "--final", "--verify"});
  ASSERT_EQ(fin.rc, 0) << fin.describe();
  auto f = nlohmann::json::parse(fin.out);
  EXPECT_GE(f["pass"]["files_copied"].get<int>(), 5);
  EXPECT_GE(f["verify"]["uidlists_checked"].get<int>(), 3);

  // Owner kept: the files belong to the dovecot user, not to root.
  struct stat s, d;
  ASSERT_EQ(::stat((src + "/Maildir/dovecot-uidlist").c_str(), &s), 0);
  ASSERT_EQ(::stat((dst + "/Maildir/dovecot-uidlist").c_str(), &d), 0);
  EXPECT_EQ(s.st_uid, d.st_uid);
  EXPECT_NE(d.st_uid, 0u);

  auto before = lab.imap_state(user, "store1", true);
  auto after = lab.imap_state(user, "store2", true);
  EXPECT_EQ(before["store"], "store1");
  EXPECT_EQ(after["store"], "store2");
  ASSERT_GE(before["folders"].size(), 3u);
  ASSERT_EQ(before["folders"].size(), after["folders"].size());
  for (const auto& [name, folder] : before["folders"].items()) {
    SCOPED_TRACE("folder " + name);
    ASSERT_TRUE(after["folders"].contains(name));
    const auto& copy = after["folders"][name];
    EXPECT_EQ(folder["uidvalidity"], copy["uidvalidity"]);
    EXPECT_EQ(folder["uidnext"], copy["uidnext"]);
    EXPECT_EQ(folder["messages"], copy["messages"]);
    EXPECT_EQ(folder["hash"], copy["hash"]);      // UIDs, flags incl. keywords, Message-IDs
    EXPECT_EQ(folder["detail"], copy["detail"]);  // + INTERNALDATE and sizes
  }
  EXPECT_EQ(before["subscriptions"], after["subscriptions"]);
  EXPECT_EQ(before["hash"], after["hash"]);
}

}  // namespace
}  // namespace mailshard::testing
