#include "util/lazy_library.h"

#include <unistd.h>

#include <gtest/gtest.h>

namespace mailshard {
namespace {

TEST(LazyLibrary, MissingLibraryIsUnavailableAndNamed) {
  LazyLibrary lib("libmailshard-does-not-exist.so.7");
  auto st = lib.load();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(st.error().message().rfind("cannot load libmailshard-does-not-exist.so.7: ", 0), 0u) << st.error().message();
  // A second call gives the same answer without trying again.
  EXPECT_EQ(lib.load().error().message(), st.error().message());
}

TEST(LazyLibrary, ResolvesAFunctionOfTheLoadedLibrary) {
  LazyLibrary lib("libc.so.6");
  ASSERT_TRUE(lib.load().ok());
  auto fn = reinterpret_cast<pid_t (*)()>(lib.symbol("getpid"));
  ASSERT_NE(fn, nullptr);
  EXPECT_EQ(fn(), ::getpid());
}

TEST(LazyLibraryDeathTest, CallingAMissingSymbolStopsWithItsName) {
  LazyLibrary lib("libc.so.6");
  ASSERT_TRUE(lib.load().ok());
  EXPECT_DEATH(lib.symbol("mailshard_no_such_function"), "libc.so.6 has no symbol mailshard_no_such_function");
}

}  // namespace
}  // namespace mailshard
