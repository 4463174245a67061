// The Journal contract (core/journal.h), tested once for every backend:
// journal_contract_test.cc holds the TEST_Ps; each backend's test file
// instantiates them with a JournalBackend (SQLite in unit_journal, PostgreSQL
// in the lab's integration_pg_journal).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/journal.h"
#include "tests/support/fakes.h"
#include "util/result.h"

namespace mailshard::testing {

// One backend under test. fresh() gives each test an empty journal store of
// its own; open() may be called again for a second "host" on the same store.
class JournalBackend {
 public:
  virtual ~JournalBackend() = default;
  // Makes an empty store for test `test` (a file name, a database).
  virtual void fresh(const std::string& test) = 0;
  virtual Result<std::unique_ptr<Journal>> open(Clock& clock) = 0;
  // Where the fake clock starts: a backend that compares clocks with a server
  // wants real time.
  virtual int64_t clock_start_ms() const { return 1'700'000'000'000; }  // 2023-11-14T22:13:20Z
  // Drops the store (every journal of it is closed by then).
  virtual void drop() {}
};

struct JournalBackendParam {
  std::string name;  // the instantiation's test name suffix
  std::function<std::unique_ptr<JournalBackend>()> make;
};

// A planned move of `user` from store1 to store2.
inline MoveRecord move_of(const std::string& user) {
  MoveRecord m;
  m.user = user;
  m.from_server = "store1";
  m.to_server = "store2";
  m.state = MoveState::kPlanned;
  return m;
}

// A plan whose JSON lists `moves` moves.
inline PlanRecord plan_of(const std::string& hash, int64_t created_at_ms, int moves) {
  PlanRecord p;
  p.hash = hash;
  p.created_at_ms = created_at_ms;
  p.strategy = "balance";
  std::string list;
  for (int i = 0; i < moves; ++i) list += (i ? ",{\"user\":" : "{\"user\":") + std::to_string(i) + "}";
  p.plan_json = "{\"strategy\":\"balance\",\"moves\":[" + list + "]}";
  return p;
}

inline std::string backend_name(const ::testing::TestParamInfo<JournalBackendParam>& info) { return info.param.name; }

class JournalContractTest : public ::testing::TestWithParam<JournalBackendParam> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    clock_.set(backend_->clock_start_ms());
    backend_->fresh(::testing::UnitTest::GetInstance()->current_test_info()->name());
    j_ = open_journal();
    ASSERT_NE(j_, nullptr);
  }
  void TearDown() override {
    j_.reset();
    if (backend_) backend_->drop();
  }
  // Another journal on the same store: a second controller.
  std::unique_ptr<Journal> open_journal() {
    auto j = backend_->open(clock_);
    EXPECT_TRUE(j.ok()) << j.error().message();
    return j.ok() ? std::move(*j) : nullptr;
  }
  std::unique_ptr<JournalBackend> backend_;
  FakeClock clock_;
  std::unique_ptr<Journal> j_;
};

}  // namespace mailshard::testing
