#include "util/result.h"

#include <gtest/gtest.h>

namespace mailshard {
namespace {

Result<int> half(int x) {
  if (x % 2) return Error::invalid("odd number");
  return x / 2;
}

Result<int> quarter(int x) {
  int h = MS_TRY_CTX(half(x), "first half");
  return MS_TRY(half(h));
}

Status check_even(int x) {
  MS_CHECK_CTX(half(x), "check");
  return {};
}

TEST(Result, ValueAndError) {
  auto ok = half(4);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 2);
  auto bad = half(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(bad.error().message(), "odd number");
}

TEST(Result, TryPropagatesWithContext) {
  EXPECT_EQ(*quarter(8), 2);
  auto e1 = quarter(3);
  ASSERT_FALSE(e1.ok());
  EXPECT_EQ(e1.error().message(), "first half: odd number");
  auto e2 = quarter(6);  // 6/2 = 3, then odd without context
  ASSERT_FALSE(e2.ok());
  EXPECT_EQ(e2.error().message(), "odd number");
  EXPECT_EQ(check_even(5).error().message(), "check: odd number");
  EXPECT_TRUE(check_even(4).ok());
}

TEST(Result, ContextChainsOutward) {
  Error e = Error::no_space("rename a: No space left on device");
  e.context("final_sync store2").context("move alice@example.org");
  EXPECT_EQ(e.message(), "move alice@example.org: final_sync store2: rename a: No space left on device");
  EXPECT_EQ(e.code(), ErrorCode::kNoSpace);
}

TEST(Result, FromErrnoPicksCodeByWhatCallerDoesNext) {
  EXPECT_EQ(Error::from_errno(ENOSPC, "write x").code(), ErrorCode::kNoSpace);
  EXPECT_EQ(Error::from_errno(EACCES, "open x").code(), ErrorCode::kPermission);
  EXPECT_EQ(Error::from_errno(ENOENT, "open x").code(), ErrorCode::kNotFound);
  EXPECT_EQ(Error::from_errno(ECONNREFUSED, "connect").code(), ErrorCode::kUnavailable);
  EXPECT_EQ(Error::from_errno(ELOOP, "open x").code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(Error::from_errno(ENOENT, "open x").message(), "open x: No such file or directory");
}

TEST(Result, VoidResultContextOnlyOnError) {
  Status s;
  s.context("ignored");
  EXPECT_TRUE(s.ok());
  Status bad = Error::timeout("slow");
  bad.context("ldap");
  EXPECT_EQ(bad.error().message(), "ldap: slow");
  EXPECT_EQ(error_code_name(bad.error().code()), "timeout");
}

}  // namespace
}  // namespace mailshard
