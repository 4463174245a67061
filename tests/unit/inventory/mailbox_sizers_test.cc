#include "inventory/mailbox_sizers.h"

#include <gtest/gtest.h>

#include "tests/unit/doveadm/tiny_http_server.h"
#include "util/fs.h"
#include "tests/unit/inventory/maildir_test_util.h"

namespace mailshard {
namespace {

using testing::TempTree;

TEST(Maildirsize, AddsUpTheLinesAfterTheQuotaDefinition) {
  auto r = parse_maildirsize("1073741824S,10000C\n  1234 2\n-234 -1\n5000 1\n\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->bytes, 6000);
  EXPECT_EQ(r->messages, 2);
}

TEST(Maildirsize, MalformedLinesAreCorrupt) {
  auto r = parse_maildirsize("0S\n12 1\nlots of mail\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(r.error().message(), "maildirsize line 3: expected '<bytes> <count>', got 'lots of mail'");
  EXPECT_EQ(parse_maildirsize("").error().message(), "maildirsize is empty");
  EXPECT_EQ(parse_maildirsize("0S\n-5 -1\n").error().message(), "maildirsize adds up to -5 bytes / -1 messages");
}

ServerConfig server_at(const std::string& root) {
  ServerConfig s;
  s.name = "store1";
  s.mail_root = root;
  return s;
}

TEST(MaildirsizeSizer, ReadsTheFile) {
  TempTree t;
  t.dir("mail");
  t.standard_home("mail/alice");
  ASSERT_EQ(write_file_atomic(t.path("mail/alice/Maildir/maildirsize"), "0S\n62819 4\n333 1\n").ok(), true);
  MaildirsizeSizer sizer;
  auto r = sizer.size(server_at(t.path("mail")), {"alice", "alice"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->bytes, 63152);
  EXPECT_EQ(r->messages, 5);
  EXPECT_TRUE(r->notes.empty());
}

TEST(MaildirsizeSizer, FallsBackToAScanWithANote) {
  TempTree t;
  t.dir("mail");
  t.standard_home("mail/alice");
  MaildirsizeSizer sizer;
  auto r = sizer.size(server_at(t.path("mail")), {"alice", "alice"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->bytes, t.du("mail/alice"));
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_EQ(r->notes[0], "no usable 'alice/Maildir/maildirsize' (No such file or directory); scanned instead");

  ASSERT_TRUE(write_file_atomic(t.path("mail/alice/Maildir/maildirsize"), "0S\nrubbish\n").ok());
  r = sizer.size(server_at(t.path("mail")), {"alice", "alice"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, t.du("mail/alice"));
  EXPECT_EQ(r->notes.at(0), "maildirsize line 2: expected '<bytes> <count>', got 'rubbish'; scanned instead");
}

TEST(DoveadmSizer, UsesQuotaGetStorageInKib) {
  testing::TinyHttpServer srv([](const testing::TinyRequest&) {
    return testing::TinyResponse{
        200,
        R"([["doveadmResponse",[{"root":"User quota","type":"STORAGE","value":"2","limit":"1048576","percent":"0"},)"
        R"({"root":"User quota","type":"MESSAGE","value":"3","limit":"-","percent":"0"}],"mailshard"]])",
        "application/json"};
  });
  ServerConfig s = server_at("/nonexistent");
  s.doveadm_url = srv.url("/doveadm/v1");
  s.doveadm_password = Secret("pw");
  DoveadmSizer sizer(2000);
  auto r = sizer.size(s, {"user00001@example.org", "example.org/user00001"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->bytes, 2048);
  EXPECT_EQ(r->messages, 3);
  ASSERT_EQ(srv.requests().size(), 1u);
  EXPECT_EQ(srv.requests()[0].body, R"([["quotaGet",{"user":"user00001@example.org"},"mailshard"]])");
}

TEST(DoveadmSizer, NeedsADoveadmUrl) {
  DoveadmSizer sizer(2000);
  auto r = sizer.size(server_at("/srv/mail"), {"alice", "alice"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "server 'store1' has no doveadm_url");
}

}  // namespace
}  // namespace mailshard
