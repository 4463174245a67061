#include "doveadm/doveadm_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "doveadm/doveadm_fleet.h"
#include "doveadm/http_client.h"
#include "tests/unit/doveadm/tiny_http_server.h"

namespace mailshard {
namespace {

using testing::TinyHttpServer;
using testing::TinyRequest;
using testing::TinyResponse;

TEST(DoveadmParse, ReturnsThePayloadOfTheTaggedEntry) {
  auto r = parse_doveadm_response(R"([["doveadmResponse",[],"a"],["doveadmResponse",[{"x":"1"}],"b"]])", "who", "b");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->dump(), R"([{"x":"1"}])");
}

TEST(DoveadmParse, ExitCode68IsNotFound) {
  auto r = parse_doveadm_response(R"([["error",{"type":"exitCode","exitCode":68},"k1"]])", "kick", "k1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.error().message(), "doveadm kick: exit code 68 (not found)");
}

TEST(DoveadmParse, ExitCodesMapToWhatTheCallerDoesNext) {
  struct Case {
    int code;
    ErrorCode want;
    const char* text;
  } cases[] = {
      {67, ErrorCode::kNotFound, "doveadm quotaGet: exit code 67 (unknown user)"},
      {75, ErrorCode::kUnavailable, "doveadm quotaGet: exit code 75 (temporary failure)"},
      {77, ErrorCode::kPermission, "doveadm quotaGet: exit code 77 (permission denied)"},
      {64, ErrorCode::kInvalidInput, "doveadm quotaGet: exit code 64 (invalid parameters)"},
      {70, ErrorCode::kInternal, "doveadm quotaGet: exit code 70"},
  };
  for (const auto& c : cases) {
    auto body = R"([["error",{"type":"exitCode", "exitCode":)" + std::to_string(c.code) + R"(},"q"]])";
    auto r = parse_doveadm_response(body, "quotaGet", "q");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), c.want) << c.code;
    EXPECT_EQ(r.error().message(), c.text);
  }
}

TEST(DoveadmParse, UnknownMethodIsInvalidInput) {
  auto r = parse_doveadm_response(R"([["error",{"type":"unknownMethod", "exitCode":0},"w"]])", "nosuch", "w");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(r.error().message(), "doveadm nosuch: error 'unknownMethod'");
}

TEST(DoveadmParse, GarbageIsCorrupt) {
  auto r = parse_doveadm_response("<html>login</html>", "who", "w");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(r.error().message(), "doveadm who: reply is not JSON: '<html>login</html>'");

  r = parse_doveadm_response(R"({"a":1})", "who", "w");
  EXPECT_EQ(r.error().message(), R"(doveadm who: reply is not a JSON array: '{"a":1}')");
  r = parse_doveadm_response(R"([["doveadmResponse",[]]])", "who", "w");
  EXPECT_EQ(r.error().message(), R"(doveadm who: malformed reply entry '["doveadmResponse",[]]')");
  r = parse_doveadm_response(R"([["doveadmResponse",[],"other"]])", "who", "w");
  EXPECT_EQ(r.error().message(), R"(doveadm who: no reply tagged 'w' in '[["doveadmResponse",[],"other"]]')");
}

TEST(DoveadmParse, Who) {
  auto payload = nlohmann::json::parse(
      R"J([{"username":"user00001@example.org","connections":"2","service":"imap","pids":"(20808 20809)","ips":"(127.0.0.1 10.0.0.2)"}])J");
  auto r = parse_who(payload);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].user, "user00001@example.org");
  EXPECT_EQ((*r)[0].service, "imap");
  EXPECT_EQ((*r)[0].connections, 2);
  EXPECT_EQ((*r)[0].ips, (std::vector<std::string>{"127.0.0.1", "10.0.0.2"}));
}

TEST(DoveadmParse, QuotaGetReportsKibAndMessages) {
  auto payload = nlohmann::json::parse(
      R"([{"root":"User quota","type":"STORAGE","value":"2","limit":"1048576","percent":"0"},
          {"root":"User quota","type":"MESSAGE","value":"3","limit":"-","percent":"0"}])");
  auto r = parse_quota(payload);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].root, "User quota");
  EXPECT_EQ((*r)[0].storage_kib, 2);
  EXPECT_EQ((*r)[0].storage_limit_kib, 1048576);
  EXPECT_EQ((*r)[0].messages, 3);
  EXPECT_EQ((*r)[0].message_limit, -1);

  auto bad = parse_quota(nlohmann::json::parse(R"([{"type":"STORAGE","value":"lots"}])"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), R"(doveadm quotaGet: STORAGE value '"lots"' is not a number)");
}

TEST(DoveadmParse, MailboxStatus) {
  auto payload = nlohmann::json::parse(
      R"([{"mailbox":"INBOX","messages":"3","recent":"3","uidnext":"4","uidvalidity":"1795748738","unseen":"3",
           "highestmodseq":"4","vsize":"1884","guid":"2013463182f3086b6b50000083ecc375"},
          {"mailbox":"Sent","messages":"0","uidnext":"1","uidvalidity":"1795748739"}])");
  auto r = parse_mailbox_status(payload);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].mailbox, "INBOX");
  EXPECT_EQ((*r)[0].messages, 3);
  EXPECT_EQ((*r)[0].uidnext, 4);
  EXPECT_EQ((*r)[0].uidvalidity, 1795748738);
  EXPECT_EQ((*r)[0].vsize, 1884);
  EXPECT_EQ((*r)[0].guid, "2013463182f3086b6b50000083ecc375");
  EXPECT_EQ((*r)[1].vsize, -1);
}

DoveadmClient client_for(const TinyHttpServer& srv, const std::string& password = "doveadmsecret") {
  DoveadmOptions o;
  o.url = srv.url("/doveadm/v1");
  o.user = "doveadm";
  o.password = Secret(password);
  o.timeout_ms = 2000;
  return DoveadmClient(o);
}

TEST(DoveadmClient, PostsTheCommandWithBasicAuth) {
  TinyHttpServer srv([](const TinyRequest&) {
    return TinyResponse{200, R"([["doveadmResponse",[{"result":"alice@example.org"}],"mailshard"]])", "application/json"};
  });
  auto r = client_for(srv).kick("alice@example.org");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->had_sessions);
  EXPECT_EQ(r->kicked, std::vector<std::string>{"alice@example.org"});
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/doveadm/v1");
  EXPECT_EQ(reqs[0].body, R"([["kick",{"mask":"alice@example.org"},"mailshard"]])");
  // base64("doveadm:doveadmsecret")
  EXPECT_NE(reqs[0].headers.find("Authorization: Basic ZG92ZWFkbTpkb3ZlYWRtc2VjcmV0"), std::string::npos);
  EXPECT_NE(reqs[0].headers.find("Content-Type: application/json"), std::string::npos);
}

TEST(DoveadmClient, KickWithNobodyToKickIsSuccess) {
  TinyHttpServer srv([](const TinyRequest&) {
    return TinyResponse{200, R"([["error",{"type":"exitCode","exitCode":68},"mailshard"]])", "application/json"};
  });
  auto r = client_for(srv).kick("bob@example.org");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_FALSE(r->had_sessions);
  EXPECT_TRUE(r->kicked.empty());
}

TEST(DoveadmClient, WrongPasswordIsPermissionAndTheSecretIsNotShown) {
  TinyHttpServer srv([](const TinyRequest&) { return TinyResponse{401, "", "text/plain"}; });
  auto r = client_for(srv, "s3cr3t-value").who();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPermission);
  EXPECT_EQ(r.error().message(),
            "doveadm who: POST " + srv.url("/doveadm/v1") + ": HTTP 401 Unauthorized (check the credentials)");
  EXPECT_EQ(r.error().message().find("s3cr3t"), std::string::npos);
}

TEST(DoveadmClient, UnreachableIsUnavailable) {
  DoveadmOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(TinyHttpServer::closed_port()) + "/doveadm/v1";
  o.timeout_ms = 2000;
  auto r = DoveadmClient(o).quota_get("alice");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message(), "doveadm quotaGet: POST " + o.url + ": Couldn't connect to server");
}

TEST(DoveadmClient, ServerWithoutUrlIsAConfigError) {
  ServerConfig s;
  s.name = "store1";
  auto r = DoveadmClient::for_server(s, 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(r.error().message(), "server 'store1' has no doveadm_url");
}

TEST(DoveadmParse, MailboxContentsGroupsFetchedMessagesByMailbox) {
  auto status = nlohmann::json::parse(
      R"([{"mailbox":"INBOX","guid":"aa01","messages":"2","uidvalidity":"1795748738","uidnext":"9"},
          {"mailbox":"Sent","guid":"bb02","messages":"0","uidvalidity":"1795748739","uidnext":"1"}])");
  std::vector<nlohmann::json> fetched = {nlohmann::json::parse(R"({"mailbox":"INBOX","uid":"8","guid":"g8"})"),
                                         nlohmann::json::parse(R"({"mailbox":"INBOX","uid":"3","guid":"g3"})")};
  auto r = parse_mailbox_contents(status, fetched);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].status.mailbox, "INBOX");
  EXPECT_EQ((*r)[0].status.uidnext, 9);
  EXPECT_EQ((*r)[0].guid, "aa01");
  EXPECT_EQ((*r)[0].messages, (std::vector<MailboxMessage>{{3, "g3"}, {8, "g8"}})) << "ascending UID";
  EXPECT_TRUE((*r)[1].messages.empty());
  auto stray = parse_mailbox_contents(status, {nlohmann::json::parse(R"({"mailbox":"Junk","uid":"1","guid":"x"})")});
  ASSERT_FALSE(stray.ok());
  EXPECT_EQ(stray.error().message(), "doveadm fetch: a message in mailbox 'Junk' that mailboxStatus did not list");
  auto no_uid = parse_mailbox_contents(nlohmann::json::parse(R"([{"mailbox":"INBOX","messages":"1"}])"), {});
  ASSERT_FALSE(no_uid.ok());
  EXPECT_EQ(no_uid.error().code(), ErrorCode::kCorrupt);
}

TEST(DoveadmClient, MailboxContentsAsksStatusThenFetch) {
  TinyHttpServer srv([](const TinyRequest& rq) {
    if (rq.body.find("\"mailboxStatus\"") != std::string::npos)
      return TinyResponse{200, R"([["doveadmResponse",[{"mailbox":"INBOX","guid":"aa","messages":"1","uidvalidity":"7","uidnext":"2"}],"mailshard"]])",
                          "application/json"};
    return TinyResponse{200, R"([["doveadmResponse",[{"mailbox":"INBOX","uid":"1","guid":"g1"}],"mailshard"]])",
                        "application/json"};
  });
  auto r = client_for(srv).mailbox_contents("alice@example.org");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].messages, (std::vector<MailboxMessage>{{1, "g1"}}));
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].body, R"([["mailboxStatus",{"field":["guid","messages","uidvalidity","uidnext"],"mailboxMask":["*"],"user":"alice@example.org"},"mailshard"]])");
  EXPECT_EQ(reqs[1].body, R"([["fetch",{"field":["mailbox","uid","guid"],"query":["all"],"user":"alice@example.org"},"mailshard"]])");
}

TEST(DoveadmClient, ImportNamesTheSourceLocationAndTheQuery) {
  TinyHttpServer srv([](const TinyRequest&) {
    return TinyResponse{200, R"([["doveadmResponse",[],"mailshard"]])", "application/json"};
  });
  Status st = client_for(srv).import("alice@example.org", "mdbox:/srv/side/mdbox:ALT=/srv/side-alt", "",
                                     {"mailbox", "INBOX", "uid", "5:*"});
  ASSERT_TRUE(st.ok()) << st.error().message();
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body, R"([["import",{"destParentMailbox":"","query":["mailbox","INBOX","uid","5:*"],"sourceLocation":"mdbox:/srv/side/mdbox:ALT=/srv/side-alt","user":"alice@example.org"},"mailshard"]])");
}

TEST(HttpClient, RedactsUserinfoInUrls) {
  EXPECT_EQ(redact_url("http://user:pw@host:8080/x?a=b"), "http://host:8080/x?a=b");
  EXPECT_EQ(redact_url("http://host/p@th"), "http://host/p@th");
  EXPECT_EQ(redact_url("https://host"), "https://host");
}

TEST(HttpClient, OversizedResponseIsCorrupt) {
  TinyHttpServer srv([](const TinyRequest&) { return TinyResponse{200, std::string(5000, 'x')}; });
  HttpRequest req;
  req.url = srv.url("/metrics");
  req.max_response_bytes = 1000;
  auto r = http_request(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(r.error().message(), "GET " + srv.url("/metrics") + ": response larger than 1000 bytes");
}

TEST(HttpClient, SlowServerTimesOut) {
  TinyHttpServer srv([](const TinyRequest&) { return TinyResponse{200, "late", "text/plain", 1500}; });
  HttpRequest req;
  req.url = srv.url("/metrics");
  req.timeout_ms = 200;
  auto r = http_request(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kTimeout);
  EXPECT_EQ(r.error().message(), "GET " + srv.url("/metrics") + ": Timeout was reached");
}

}  // namespace
}  // namespace mailshard

namespace mailshard {
namespace {

TEST(DoveadmClient, QuotaRecalcPostsTheUser) {
  TinyHttpServer srv([](const TinyRequest&) {
    return TinyResponse{200, R"([["doveadmResponse",[],"mailshard"]])", "application/json"};
  });
  Status st = client_for(srv).quota_recalc("alice@example.org");
  ASSERT_TRUE(st.ok()) << st.error().message();
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body, R"([["quotaRecalc",{"user":"alice@example.org"},"mailshard"]])");
}

Config fleet_config(const TinyHttpServer& srv) {
  Config c;
  ServerConfig with;
  with.name = "store1";
  with.doveadm_url = srv.url("/doveadm/v1");
  with.doveadm_user = "doveadm";
  with.doveadm_password = Secret("doveadmsecret");
  ServerConfig without;
  without.name = "store2";
  c.servers = {with, without};
  return c;
}

TEST(DoveadmFleetQuota, LimitsPerRootAndNoDoveadmOrNoPluginIsUnsupported) {
  std::string reply = R"([["doveadmResponse",[{"root":"User quota","type":"STORAGE","value":"20","limit":"100"},)"
                      R"({"root":"User quota","type":"MESSAGE","value":"3","limit":"-"}],"mailshard"]])";
  TinyHttpServer srv([&](const TinyRequest&) { return TinyResponse{200, reply, "application/json"}; });
  Config cfg = fleet_config(srv);
  DoveadmFleet fleet(cfg, 2000);
  auto q = fleet.quota("alice", "store1");
  ASSERT_TRUE(q.ok()) << q.error().message();
  ASSERT_EQ(q->size(), 1u);
  EXPECT_EQ((*q)[0].root, "User quota");
  EXPECT_EQ((*q)[0].storage_kib, 20);
  EXPECT_EQ((*q)[0].storage_limit_kib, 100);
  EXPECT_EQ((*q)[0].messages, 3);
  EXPECT_EQ((*q)[0].message_limit, -1);
  auto none = fleet.quota("alice", "store2");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kUnsupported);
  // A Dovecot without the quota plugin does not know the commands.
  reply = R"([["error",{"type":"unknownMethod"},"mailshard"]])";
  auto no_plugin = fleet.quota("alice", "store1");
  ASSERT_FALSE(no_plugin.ok());
  EXPECT_EQ(no_plugin.error().code(), ErrorCode::kUnsupported);
  EXPECT_THAT(no_plugin.error().message(), ::testing::HasSubstr("store1 has no quota plugin"));
  Status recalc = fleet.recalc_quota("alice", "store1");
  ASSERT_FALSE(recalc.ok());
  EXPECT_EQ(recalc.error().code(), ErrorCode::kUnsupported);
  // Other failures keep their code: a temporary failure is not "no quota".
  reply = R"([["error",{"type":"exitCode","exitCode":75},"mailshard"]])";
  recalc = fleet.recalc_quota("alice", "store1");
  ASSERT_FALSE(recalc.ok());
  EXPECT_EQ(recalc.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(recalc.error().message(), "quota recalc on store1: doveadm quotaRecalc: exit code 75 (temporary failure)");
}

}  // namespace
}  // namespace mailshard
