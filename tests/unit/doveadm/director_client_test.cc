#include "doveadm/director_client.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

using nlohmann::json;

// What Dovecot 2.3.19's doveadm HTTP API answered in the lab (directorStatus without and with a user).
TEST(DirectorClient, ParsesTheRingStatus) {
  auto r = parse_director_status(json::parse(
      R"([{"mail server ip":"127.2.0.1","tag":"","vhosts":"100","state":"up","state-changed":"-","users":"1"},
          {"mail server ip":"127.2.0.2","tag":"","vhosts":"100","state":"up","state-changed":"-","users":"0"}])"));
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].host, "127.2.0.1");
  EXPECT_EQ((*r)[0].state, "up");
  EXPECT_EQ((*r)[0].vhosts, 100);
  EXPECT_EQ((*r)[0].users, 1);
  EXPECT_FALSE(parse_director_status(json::parse(R"([{"tag":""}])")).ok());
  EXPECT_FALSE(parse_director_status(json::parse(R"({})")).ok());
}

TEST(DirectorClient, ParsesAUsersMapping) {
  auto mapped = parse_director_user_status(json::parse(
      R"([{"status":"127.2.0.2","expires":"2026-12-05 17:47:13","hashed":"127.2.0.1","initial-config":"127.2.0.1"}])"));
  ASSERT_TRUE(mapped.ok()) << mapped.error().message();
  EXPECT_EQ(mapped->current, "127.2.0.2");
  EXPECT_EQ(mapped->hashed, "127.2.0.1");
  EXPECT_EQ(mapped->expires, "2026-12-05 17:47:13");
  // No mapping: the hash decides.
  auto none = parse_director_user_status(
      json::parse(R"([{"status":"n/a","expires":"-1","hashed":"127.2.0.1","initial-config":"127.2.0.1"}])"));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->current, "");
  EXPECT_EQ(none->expires, "");
  auto bad = parse_director_user_status(json::parse(R"([])"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace mailshard
