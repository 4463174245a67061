// The agent protocol from both ends: message encodings round-trip and refuse
// malformed payloads; the real agent refuses garbage, oversized frames and a
// version mismatch with an ERROR frame; the client reports an agent that
// speaks another version, is not an agent, or dies in the middle of a frame.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/maildir_scanner.h"
#include "tests/unit/movers/maildir_gen.h"
#include "transport/agent_transport.h"
#include "wire/wire.h"
#include "util/subprocess.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using wire::MsgType;

std::string fake_agent() { return std::string(MAILSHARD_SOURCE_DIR) + "/tests/unit/transport/fake_agent.py"; }

Result<std::unique_ptr<Transport>> fake(const std::string& mode) {
  AgentOptions o;
  o.argv = {"/usr/bin/python3", fake_agent(), mode};
  o.name = "agent:fake";
  return make_agent_transport(o);
}

TEST(Wire, MessagesRoundTrip) {
  std::vector<StatRequest> rq = {{"a/b", {true, 12}}, {"c", {false, -1}}};
  std::vector<StatRequest> back;
  bool last = false;
  ASSERT_TRUE(wire::decode_stat_requests(wire::encode_stat_requests(rq, 0, 2, true), back, last).ok());
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].path, "a/b");
  EXPECT_TRUE(back[0].hash.whole);
  EXPECT_EQ(back[0].hash.prefix_len, 12);
  EXPECT_TRUE(last);

  StatResult sr;
  sr.attrs.type = EntryType::kSymlink;
  sr.attrs.mtime_ns = -5;
  sr.link_target = "../x";
  sr.hash = hash_bytes("h");
  sr.error = Error::permission("nope");
  std::vector<StatResult> sres;
  ASSERT_TRUE(wire::decode_stat_results(wire::encode_stat_results({sr}, 0, 1, false), sres, last).ok());
  EXPECT_FALSE(last);
  EXPECT_EQ(sres[0].attrs, sr.attrs);
  EXPECT_EQ(sres[0].link_target, "../x");
  EXPECT_EQ(*sres[0].hash, *sr.hash);
  EXPECT_EQ(sres[0].error->code(), ErrorCode::kPermission);
  EXPECT_EQ(sres[0].error->message(), "nope");

  TreeOp op;
  op.kind = TreeOp::Kind::kLink;
  op.path = "p";
  op.from = "f";
  op.attr_mask = TreeOp::kMode;
  std::vector<TreeOp> ops;
  ASSERT_TRUE(wire::decode_ops(wire::encode_ops({op}, 0, 1, true), ops, last).ok());
  EXPECT_EQ(ops[0].kind, TreeOp::Kind::kLink);
  EXPECT_EQ(ops[0].from, "f");

  DirListing d{"Maildir/cur", {}, {{"a", EntryType::kFile}, {"b", EntryType::kDir}, {"c", EntryType::kSymlink}}};
  TreeListing tl;
  ASSERT_TRUE(wire::decode_list_dir(wire::encode_list_dir(d, 0, 2, false), tl).ok());
  ASSERT_TRUE(wire::decode_list_dir(wire::encode_list_dir(d, 2, 3, true), tl).ok());
  ASSERT_EQ(tl.size(), 1u);
  EXPECT_EQ(tl[0].entries.size(), 3u);
  EXPECT_EQ(tl[0].entries[2].type, EntryType::kSymlink);

  ReadSpec rs;
  rs.path = "x";
  rs.mode = ReadSpec::Mode::kBlockDiff;
  rs.block_size = 4096;
  rs.old_blocks = {hash_bytes("1"), hash_bytes("2")};
  ReadSpec rb;
  uint64_t sig = 9, nb = 0;
  ASSERT_TRUE(wire::decode_read_spec(wire::encode_read_spec(rs), rb, sig, nb).ok());
  EXPECT_EQ(rb.mode, ReadSpec::Mode::kBlockDiff);
  EXPECT_EQ(sig, 0u);
  EXPECT_EQ(nb, 2u);
}

TEST(Wire, MalformedPayloadsAreRefusedWithExactMessages) {
  std::vector<StatRequest> out;
  bool last;
  auto trunc = wire::decode_stat_requests(std::string("\x02\x00\x00\x00", 4), out, last);
  ASSERT_FALSE(trunc.ok());
  EXPECT_EQ(trunc.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(trunc.error().message(), "malformed frame: count exceeds payload");
  std::vector<TreeOp> ops;
  std::string bad_kind = wire::encode_ops({TreeOp{}}, 0, 1, true);
  bad_kind[4] = 42;
  EXPECT_EQ(wire::decode_ops(bad_kind, ops, last).error().message(), "malformed frame: bad operation kind");
  EXPECT_EQ(wire::decode_hello("HTTP/1.1 200 OK", false).error().message(),
            "malformed frame: not a mailshard agent greeting");
  std::string extra = wire::encode_error(Error::internal("x")) + "!";
  EXPECT_EQ(wire::decode_error(extra).error().message(), "malformed frame: trailing bytes");
  // Random bytes never crash a decoder (the fuzz target does this at scale).
  std::mt19937 rnd(1);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rnd() % 64, '\0');
    for (auto& c : junk) c = static_cast<char>(rnd());
    TreeListing tl;
    std::vector<WriteResult> wr;
    (void)wire::decode_list_dir(junk, tl);
    (void)wire::decode_write_results(junk, wr, last);
    (void)wire::decode_ops(junk, ops, last);
  }
}

// Talks to the real agent binary over its stdin/stdout.
class RawAgent {
 public:
  explicit RawAgent(const std::string& root) {
    auto c = spawn_piped({MAILSHARD_BIN, "agent", "--stdio", "--root", root});
    EXPECT_TRUE(c.ok());
    child_ = *c;
    ch_ = std::make_unique<wire::FrameChannel>(child_.stdout_fd, child_.stdin_fd, "agent");
  }
  ~RawAgent() { reap_child(child_, 2000); }
  wire::FrameChannel& ch() { return *ch_; }
  void raw(const std::string& bytes) {
    ASSERT_EQ(::write(child_.stdin_fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  int exit_code() { return reap_child(child_, 5000); }

 private:
  ChildProcess child_;
  std::unique_ptr<wire::FrameChannel> ch_;
};

std::string frame(uint8_t type, const std::string& payload) {
  uint32_t n = static_cast<uint32_t>(payload.size() + 1);
  std::string f(reinterpret_cast<const char*>(&n), 4);
  f.push_back(static_cast<char>(type));
  return f + payload;
}

class AgentServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::path(::testing::TempDir()) / "agent_server_root").string();
    fs::create_directories(root_ + "/home");
  }
  std::string root_;
};

TEST_F(AgentServerTest, VersionMismatchIsAnsweredWithAnErrorFrame) {
  RawAgent a(root_);
  wire::Hello h;
  h.version = 99;
  ASSERT_TRUE(a.ch().send(MsgType::kHello, wire::encode_hello(h, false)).ok());
  auto f = a.ch().recv();
  ASSERT_TRUE(f.ok()) << f.error().message();
  ASSERT_EQ(f->type, MsgType::kError);
  auto e = wire::decode_error(f->payload);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->error.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e->error.message(), "unsupported protocol version 99 (this agent speaks 4)");
  EXPECT_EQ(a.exit_code(), 1);
}

TEST_F(AgentServerTest, GarbageAndOversizedFramesAreRefused) {
  {
    RawAgent a(root_);
    a.raw(std::string("\xff\xff\xff\x7f", 4) + "garbage");  // 2 GiB frame announced
    auto f = a.ch().recv();
    ASSERT_TRUE(f.ok());
    auto e = wire::decode_error(f->payload);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->error.message(), "frame of 2147483647 bytes from client (the limit is 4194304)");
    EXPECT_EQ(a.exit_code(), 1);
  }
  {
    RawAgent a(root_);
    a.raw(frame(0x01, std::string("MSAG\x04\x00\x00\x00\x00\x00\x40\x00", 12)));
    auto ok = a.ch().recv();
    ASSERT_TRUE(ok.ok());
    ASSERT_EQ(ok->type, MsgType::kHelloOk);
    a.raw(frame(0x55, "what is this"));
    auto f = a.ch().recv();
    ASSERT_TRUE(f.ok());
    auto e = wire::decode_error(f->payload);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->error.message(), "protocol error: unexpected UNKNOWN frame (12 bytes)");
    EXPECT_EQ(a.exit_code(), 1);
  }
  {
    // A well-typed request with a malformed body, and a path escaping the root.
    RawAgent a(root_);
    a.raw(frame(0x01, std::string("MSAG\x04\x00\x00\x00\x00\x00\x40\x00", 12)));
    ASSERT_TRUE(a.ch().recv().ok());
    wire::Encoder enc;
    enc.str("../../etc");
    a.raw(frame(0x10, enc.bytes()));
    auto f = a.ch().recv();
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(f->type, MsgType::kError);
    EXPECT_EQ(wire::decode_error(f->payload)->error.message(), "invalid path '../../etc': '..' component");
    a.raw(frame(0x10, "\x05"));  // a truncated string
    auto g = a.ch().recv();
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(wire::decode_error(g->payload)->error.message(), "malformed frame: truncated payload");
    EXPECT_EQ(a.exit_code(), 1);
  }
}

TEST_F(AgentServerTest, ClientClosingIsACleanEnd) {
  RawAgent a(root_);
  a.raw(frame(0x01, std::string("MSAG\x04\x00\x00\x00\x00\x00\x40\x00", 12)));
  ASSERT_TRUE(a.ch().recv().ok());
  a.raw(frame(0x03, ""));  // BYE
  EXPECT_EQ(a.exit_code(), 0);
}

TEST(AgentClient, AgentOfAnotherVersionIsNamed) {
  auto t = fake("version");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(t.error().message(),
            "agent:fake: agent speaks protocol version 5, this mailshard speaks 4 (agent exit status 3)");
}

TEST(AgentClient, AgentRefusingOurVersionPassesItsMessageOn) {
  auto t = fake("refuse");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(t.error().message(),
            "agent:fake: unsupported protocol version 4 (this agent speaks 7) (agent exit status 3)");
}

TEST(AgentClient, SomethingThatIsNotAnAgent) {
  auto t = fake("notagent");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message(), "agent:fake: not a mailshard agent (bad greeting) (agent exit status 3)");
  auto g = fake("garbage");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(g.error().message(), "agent:fake: frame of 0 bytes from agent:fake (the limit is 4194304) (agent exit status 3)");
  auto o = fake("oversize");
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error().message(),
            "agent:fake: frame of 67108864 bytes from agent:fake (the limit is 4194304) (agent exit status 3)");
  AgentOptions missing;
  missing.argv = {"/nonexistent/mailshard", "agent"};
  missing.name = "agent:gone";
  auto m = make_agent_transport(missing);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(m.error().message(), "agent:gone: cannot run '/nonexistent/mailshard': No such file or directory");
}

TEST(AgentClient, AgentDyingMidFrameFailsTheOperation) {
  auto t = fake("midframe");
  ASSERT_TRUE(t.ok()) << t.error().message();
  auto l = (*t)->list_tree("home");
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(l.error().message(), "agent:fake closed the connection in the middle of a frame (agent exit status 3)");
}

TEST(AgentClient, RealAgentServesTheTransportOperations) {
  std::string root = (fs::path(::testing::TempDir()) / "agent_client_root").string();
  fs::remove_all(root);
  fs::create_directories(root + "/home/Maildir/cur");
  testing::write_file(root + "/home/Maildir/cur/m1:2,S", "hello", 1'600'000'000'000'000'007);
  AgentOptions o;
  o.argv = {MAILSHARD_BIN, "agent", "--stdio", "--root", root};
  o.name = "agent:test";
  auto t = make_agent_transport(o);
  ASSERT_TRUE(t.ok()) << t.error().message();
  auto l = (*t)->list_tree("home");
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_EQ(l->size(), 3u);
  auto st = (*t)->stat({{"home/Maildir/cur/m1:2,S", {true, 2}}, {"home/nope", {}}});
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)[0].attrs.mtime_ns, 1'600'000'000'000'000'007);
  EXPECT_EQ(*(*st)[0].hash, hash_bytes("hello"));
  EXPECT_EQ(*(*st)[0].prefix_hash, hash_bytes("he"));
  EXPECT_EQ((*st)[1].error->code(), ErrorCode::kNotFound);
  auto bad = (*t)->list_tree("../x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "invalid path '../x': '..' component");
  // The channel survives a request error.
  auto h = (*t)->head({"home/Maildir/cur/m1:2,S"}, 3);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*(*h)[0], "hel");
  auto sp = (*t)->space("home");
  ASSERT_TRUE(sp.ok());
  EXPECT_GT(sp->total_bytes, 0);
  // A place onto a taken name is refused there, and crosses the wire as kConflict.
  TreeOp place;
  place.kind = TreeOp::Kind::kPlace;
  place.from = "home/Maildir/cur/m1:2,S";
  place.path = "home/Maildir/cur";
  auto placed = (*t)->apply({place});
  ASSERT_TRUE(placed.ok()) << placed.error().message();
  EXPECT_EQ((*placed)[0].error().code(), ErrorCode::kConflict);
  place.path = "home/m1";
  placed = (*t)->apply({place});
  ASSERT_TRUE(placed.ok()) << placed.error().message();
  EXPECT_TRUE((*placed)[0].ok());
  EXPECT_TRUE(fs::exists(root + "/home/m1"));
}

// SIZE over a real `mailshard agent --stdio`: 600 homes (results cross
// several SIZE_RESULT frames) give exactly the local scan's figures, in
// order; a missing home is exists = false; bad and symlinked homes are
// per-home errors; the channel goes on serving afterwards.
TEST(AgentClient, RealAgentSizesHomesLikeTheLocalScan) {
  std::string root = (fs::path(::testing::TempDir()) / "agent_size_root").string();
  fs::remove_all(root);
  std::vector<std::string> homes;
  for (int u = 0; u < 600; ++u) {
    std::string home = fmt::format("example.org/u{:03}", u);
    homes.push_back(home);
    if (u % 7 == 3) continue;  // never got mail: no home on disk
    fs::create_directories(root + "/" + home + "/Maildir/cur");
    fs::create_directories(root + "/" + home + "/Maildir/new");
    for (int m = 0; m < u % 5; ++m)
      testing::write_file(fmt::format("{}/{}/Maildir/cur/17000000{:02}.M{}P1.h,S={},W=9:2,S", root, home, m, m, 10 + m),
                          std::string(10 + m, 'x'));
    testing::write_file(root + "/" + home + "/Maildir/dovecot-uidlist", std::string(u, 'l'));
  }
  fs::create_directories(root + "/elsewhere/Maildir");
  fs::create_symlink(root + "/elsewhere", root + "/example.org/linked");
  homes.push_back("example.org/linked");
  homes.push_back("example.org/../elsewhere");
  homes.push_back("/etc");

  AgentOptions o;
  o.argv = {MAILSHARD_BIN, "agent", "--stdio", "--root", root};
  o.name = "agent:test";
  auto t = make_agent_transport(o);
  ASSERT_TRUE(t.ok()) << t.error().message();
  std::vector<Result<MailboxSize>> got;
  Status st = (*t)->size_homes(homes, [&](size_t i, Result<MailboxSize> r) -> Status {
    EXPECT_EQ(i, got.size());
    got.push_back(std::move(r));
    return {};
  });
  ASSERT_TRUE(st.ok()) << st.error().message();
  ASSERT_EQ(got.size(), homes.size());
  for (int u = 0; u < 600; ++u) {
    ASSERT_TRUE(got[u].ok()) << homes[u] << ": " << got[u].error().message();
    int fd = *open_home(root, homes[u]);
    if (fd < 0) {
      EXPECT_FALSE(got[u]->exists) << homes[u];
      EXPECT_EQ(got[u]->bytes, 0);
      continue;
    }
    MailboxSize local = *scan_tree(fd, homes[u]);
    EXPECT_TRUE(got[u]->exists) << homes[u];
    EXPECT_EQ(got[u]->bytes, local.bytes) << homes[u];
    EXPECT_EQ(got[u]->messages, local.messages) << homes[u];
    EXPECT_EQ(got[u]->messages, u % 5) << homes[u];
    EXPECT_EQ(got[u]->files, local.files) << homes[u];
  }
  EXPECT_EQ(got[600].error().message(), "cannot open 'example.org/linked': path crosses a symlink");
  EXPECT_EQ(got[601].error().message(), "invalid path 'example.org/../elsewhere': '..' component");
  EXPECT_EQ(got[602].error().message(), "invalid path '/etc': absolute paths are not allowed");

  // A consumer that stops early costs that channel only; the next request gets a fresh agent.
  size_t seen = 0;
  Status stopped = (*t)->size_homes(homes, [&](size_t, Result<MailboxSize>) -> Status {
    return ++seen == 3 ? Status(Error::interrupted("enough")) : Status();
  });
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().message(), "enough");
  got.clear();
  ASSERT_TRUE((*t)->size_homes({homes[1], homes[3]}, [&](size_t, Result<MailboxSize> r) -> Status {
                     got.push_back(std::move(r));
                     return {};
                   }).ok());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]->messages, 1);
  EXPECT_FALSE(got[1]->exists);
  EXPECT_TRUE((*t)->list_tree("example.org/u001").ok());
}

// A SIZE request for more homes than the protocol allows is a protocol
// violation: ERROR, and the agent ends the session.
TEST_F(AgentServerTest, SizeRequestOverTheLimitEndsTheSession) {
  RawAgent a(root_);
  ASSERT_TRUE(a.ch().send(MsgType::kHello, wire::encode_hello(wire::Hello{}, false)).ok());
  auto hello = a.ch().recv();
  ASSERT_TRUE(hello.ok() && hello->type == MsgType::kHelloOk);
  std::vector<std::string> homes(50001, "h");
  ASSERT_TRUE(a.ch().send(MsgType::kSize, wire::encode_size_request(homes, 0, homes.size(), false)).ok());
  ASSERT_TRUE(a.ch().send(MsgType::kSize, wire::encode_size_request(homes, 0, homes.size(), true)).ok());
  ASSERT_TRUE(a.ch().flush().ok());
  auto f = a.ch().recv();
  ASSERT_TRUE(f.ok()) << f.error().message();
  ASSERT_EQ(f->type, MsgType::kError);
  EXPECT_EQ(wire::decode_error(f->payload)->error.message(),
            "malformed frame: SIZE: more than 100000 homes in one request");
  EXPECT_EQ(a.exit_code(), 1);
}

}  // namespace
}  // namespace mailshard
