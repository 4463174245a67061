// The sync engine test fixture: a scratch directory per test with a source
// and a destination mail root, local and agent transports, an injected clock.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "movers/sync_engine.h"
#include "tests/support/fakes.h"
#include "tests/unit/movers/maildir_gen.h"
#include "transport/agent_transport.h"
#include "transport/transport_factory.h"

namespace mailshard::testing {

namespace fs = std::filesystem;

// A scratch directory per test: <tmp>/sync_engine_<test>/{src,dst}root.
class SyncEngineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    // The pid too: the same test may run in two trees at once (plain, ASan, TSan).
    base_ = fs::path(::testing::TempDir()) /
            ("sync_engine_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
             std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_ / "srcroot");
    fs::create_directories(base_ / "dstroot");
    src_root_ = (base_ / "srcroot").string();
    dst_root_ = (base_ / "dstroot").string();
    if (::geteuid() == 0) {
      gen_.uid = 1234;
      gen_.gid = 2345;
    }
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(base_);
  }

  std::string src_home() const { return src_root_ + "/example.org/alice"; }
  std::string dst_home() const { return dst_root_ + "/staging/alice"; }

  std::unique_ptr<Transport> local(const std::string& root) {
    auto t = make_local_transport(root, 2);
    EXPECT_TRUE(t.ok()) << t.error().message();
    return std::move(*t);
  }
  std::unique_ptr<Transport> agent(const std::string& root, const std::vector<std::string>& extra = {}) {
    AgentOptions o;
    o.argv = {MAILSHARD_BIN, "agent", "--stdio", "--root", root};
    o.argv.insert(o.argv.end(), extra.begin(), extra.end());
    o.name = "agent:" + root;
    o.max_streams = 2;
    auto t = make_agent_transport(o);
    EXPECT_TRUE(t.ok()) << t.error().message();
    return std::move(*t);
  }

  SyncEngine engine(Transport& src, Transport& dst, SyncOptions o = {}) {
    return SyncEngine(src, "example.org/alice", dst, "staging/alice", o, clock_);
  }

  void expect_identical() {
    auto diffs = compare_trees(src_home(), dst_home());
    EXPECT_TRUE(diffs.empty()) << ::testing::PrintToString(diffs);
  }

  fs::path base_;
  std::string src_root_, dst_root_;
  GenOptions gen_;
  FakeClock clock_;
};

}  // namespace mailshard::testing
