#include "util/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include <gtest/gtest.h>

namespace mailshard {
namespace {

std::string temp_path(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/fs_test";
  EXPECT_TRUE(make_dirs(dir).ok());
  std::string p = dir + "/" + name;
  ::unlink(p.c_str());
  return p;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode;
}

// The old writer opened <path>.tmp.<pid> with O_CREAT|O_TRUNC and no
// O_NOFOLLOW: a symlink planted there had its target overwritten.
TEST(Fs, WriteFileAtomicNeverFollowsAPlantedSymlink) {
  std::string victim = temp_path("victim");
  ASSERT_TRUE(write_file_atomic(victim, "precious\n").ok());
  std::string path = temp_path("state");
  std::string planted = path + ".tmp." + std::to_string(::getpid());
  ::unlink(planted.c_str());
  ASSERT_EQ(::symlink(victim.c_str(), planted.c_str()), 0);
  ASSERT_TRUE(write_file_atomic(path, "new state\n").ok());
  EXPECT_EQ(*read_file(victim), "precious\n");
  EXPECT_EQ(*read_file(path), "new state\n");
  EXPECT_TRUE(S_ISREG(mode_of(path)));
  ::unlink(planted.c_str());
}

TEST(Fs, WriteFileAtomicGivesAConfiguredGroupReadAccess) {
  ::umask(022);
  std::string path = temp_path("grouped");
  auto gid = group_id("daemon");
  ASSERT_TRUE(gid.ok()) << gid.error().message();
  ASSERT_TRUE(write_file_atomic(path, "x", FileAccess(0640, *gid), FileSync::kNoSync).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(static_cast<int>(st.st_gid), *gid);
  EXPECT_EQ(group_id("no-such-group-x").error().message(), "no group 'no-such-group-x' on this host");
}

TEST(Fs, WriteFileAtomicCreatesPrivateFilesAndLeavesNoTemp) {
  std::string path = temp_path("private");
  ASSERT_TRUE(write_file_atomic(path, "x", 0600, FileSync::kNoSync).ok());
  EXPECT_EQ(mode_of(path) & 0777, 0600u);
  ASSERT_TRUE(write_file_atomic(path, "y").ok());  // the default mode is 0600 too (was 0644)
  EXPECT_EQ(mode_of(path) & 0777, 0600u);
  EXPECT_EQ(*read_file(path), "y");
  // Replacing a symlink at the path replaces the link, never its target.
  std::string target = temp_path("target");
  ASSERT_TRUE(write_file_atomic(target, "t").ok());
  std::string link = temp_path("link");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  ASSERT_TRUE(write_file_atomic(link, "l").ok());
  EXPECT_EQ(*read_file(target), "t");
  EXPECT_TRUE(S_ISREG(mode_of(link)));
}

// A file for another reader (node_exporter's textfile collector) keeps its
// 0644 under a umask that would take the read bits away at create time.
TEST(Fs, WriteFileAtomicGivesExactlyTheModeWhateverTheUmask) {
  std::string path = temp_path("shared");
  mode_t old = ::umask(077);
  Status st = write_file_atomic(path, "m", 0644, FileSync::kNoSync);
  ::umask(old);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(mode_of(path) & 0777, 0644u);
}

// Opening a FIFO for reading used to wait for a writer for ever.
TEST(Fs, ReadFileRefusesAFifoWithoutBlocking) {
  std::string fifo = temp_path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto fut = std::async(std::launch::async, [&] { return read_file(fifo); });
  if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "read_file blocked on a FIFO";
    int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // lets the blocked open return
    if (fd >= 0) ::close(fd);
  }
  auto r = fut.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "cannot read '" + fifo + "': not a regular file");
}

TEST(Fs, SecretFilesReadableByOthersAreRefused) {
  std::string path = temp_path("secret");
  ASSERT_TRUE(write_file_atomic(path, "pw\n", 0600).ok());
  EXPECT_EQ(*read_secret_file(path, GroupReadable::kRefuse), "pw\n");
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  auto group = read_secret_file(path, GroupReadable::kRefuse);
  ASSERT_FALSE(group.ok());
  EXPECT_EQ(group.error().code(), ErrorCode::kPermission);
  EXPECT_EQ(group.error().message(),
            "secret file '" + path + "' is readable by group or others (mode 0640); chmod 600 it");
  EXPECT_EQ(*read_secret_file(path, GroupReadable::kAllow), "pw\n");
  ASSERT_EQ(::chmod(path.c_str(), 0604), 0);
  EXPECT_EQ(read_secret_file(path, GroupReadable::kAllow).error().message(),
            "secret file '" + path + "' is readable by others (mode 0604); chmod 600 it");
}

}  // namespace
}  // namespace mailshard
