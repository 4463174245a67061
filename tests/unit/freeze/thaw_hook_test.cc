#include "freeze/thaw_hook.h"

#include <gtest/gtest.h>

#include "freeze/freeze_table.h"
#include "util/fs.h"

namespace mailshard {
namespace {

// A gate that records its calls and can be told to fail its thaw.
class RecordingGate final : public FreezeBackend {
 public:
  std::string_view name() const override { return "recording"; }
  Status freeze(const FreezeTarget& t, int64_t) override {
    calls += "freeze " + t.user + ";";
    return {};
  }
  Status thaw(const FreezeTarget& t) override {
    calls += "thaw " + t.user + ";";
    if (fail_thaw) return Error::unavailable("gate down");
    return {};
  }
  std::string flip_assertion(const FreezeTarget&, int64_t) const override { return "(status=frozen)"; }
  std::string calls;
  bool fail_thaw = false;
};

class ThawHookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/thaw_hook_test_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(make_dirs(dir_).ok());
    log_ = dir_ + "/calls";
    ::unlink(log_.c_str());
    script_ = dir_ + "/hook.sh";
    ASSERT_TRUE(write_file_atomic(script_,
                                  "#!/bin/sh\n"
                                  "printf '%s|' \"$@\" >> " + log_ + "\n"
                                  "echo >> " + log_ + "\n"
                                  "[ \"$1\" = fail ] && { echo 'queue manager not running' >&2; exit 75; }\n"
                                  "exit 0\n",
                                  0755)
                    .ok());
  }
  std::unique_ptr<ThawHook> hook(std::vector<std::string> argv, RecordingGate** gate) {
    auto g = std::make_unique<RecordingGate>();
    *gate = g.get();
    return std::make_unique<ThawHook>(std::move(g), std::move(argv), 5'000);
  }
  std::string dir_, log_, script_;
};

TEST_F(ThawHookTest, RunsAfterTheThawWithTheUserSubstituted) {
  RecordingGate* gate;
  auto h = hook({script_, "-c", "/etc/postfix", "--rcpt={user}", "{user}"}, &gate);
  ASSERT_TRUE(h->thaw({"alice@example.org", ""}).ok());
  EXPECT_EQ(gate->calls, "thaw alice@example.org;");
  EXPECT_EQ(*read_file(log_), "-c|/etc/postfix|--rcpt=alice@example.org|alice@example.org|\n");
}

TEST_F(ThawHookTest, FreezeAndFlipAssertionPassThroughWithoutTheHook) {
  RecordingGate* gate;
  auto h = hook({script_}, &gate);
  ASSERT_TRUE(h->freeze({"bob", ""}, 1000).ok());
  EXPECT_EQ(gate->calls, "freeze bob;");
  EXPECT_EQ(h->flip_assertion(FreezeTarget{"alice", "uid=alice", "1.a"}, 1000), "(status=frozen)");
  EXPECT_EQ(h->name(), "recording");
  EXPECT_FALSE(read_file(log_).ok());  // the hook never ran
}

TEST_F(ThawHookTest, AFailingHookDoesNotFailTheThaw) {
  RecordingGate* gate;
  auto h = hook({script_, "fail"}, &gate);
  EXPECT_TRUE(h->thaw({"carol", ""}).ok());
  EXPECT_EQ(*read_file(log_), "fail|\n");
  auto missing = hook({"/nonexistent/postqueue", "-f"}, &gate);
  EXPECT_TRUE(missing->thaw({"carol", ""}).ok());
}

TEST_F(ThawHookTest, AFailedThawSkipsTheHookAndIsReturned) {
  RecordingGate* gate;
  auto h = hook({script_}, &gate);
  gate->fail_thaw = true;
  auto st = h->thaw({"dave", ""});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "gate down");
  EXPECT_FALSE(read_file(log_).ok());
}

}  // namespace
}  // namespace mailshard
