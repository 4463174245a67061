#include "inventory/maildir_scanner.h"

#include <sys/wait.h>

#include <gtest/gtest.h>

#include "tests/unit/inventory/maildir_test_util.h"

namespace mailshard {
namespace {

using testing::TempTree;

ServerConfig server_at(const std::string& root) {
  ServerConfig s;
  s.name = "store1";
  s.mail_root = root;
  return s;
}

Result<MailboxSize> size_of(const TempTree& t, const std::string& home_rel) {
  ScanMailboxSizer sizer;
  return sizer.size(server_at(t.path("mail")), MailboxRef{"alice", home_rel});
}

TEST(MaildirNameSize, ReadsTheSFieldBeforeTheInfoPart) {
  EXPECT_EQ(maildir_name_size("1700000000.M1P2.host,S=1234,W=1260:2,S"), 1234);
  EXPECT_EQ(maildir_name_size("1700000000.M1P2.host,S=1234"), 1234);
  EXPECT_EQ(maildir_name_size("1700000000.M1P2.host,W=9,S=77:2,"), 77);
  EXPECT_EQ(maildir_name_size("1700000000.M1P2.host:2,S"), std::nullopt);   // flag S, no size
  EXPECT_EQ(maildir_name_size("1700000000.M1P2.host:2,,S=5"), std::nullopt); // S= after the info part
  EXPECT_EQ(maildir_name_size("x,S=,W=1"), std::nullopt);
  EXPECT_EQ(maildir_name_size("x,S=12a"), std::nullopt);
  EXPECT_EQ(maildir_name_size("x,S=99999999999999999999999"), std::nullopt);  // overflow
}

TEST(MaildirScanner, MatchesDuApparentSizeWithoutAStatPerMessage) {
  TempTree t;
  t.dir("mail");
  t.dir("mail/example.org");
  int messages = t.standard_home("mail/example.org/alice");
  auto r = size_of(t, "example.org/alice");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->exists);
  EXPECT_EQ(r->bytes, t.du("mail/example.org/alice"));
  EXPECT_EQ(r->messages, messages);
  EXPECT_EQ(r->files, 11);
  // Only the 7 entries that are not S= messages were stat'ed: the message
  // without S=, tmp/'s file, the uidlist, the index, maildirfolder,
  // main.sieve and the symlink.
  EXPECT_EQ(r->stat_calls, 7);
}

TEST(MaildirScanner, HardLinkedMessagesCountOnceLikeDu) {
  TempTree t;
  t.dir("mail");
  t.dir("mail/h");
  t.dir("mail/h/Maildir");
  t.dir("mail/h/Maildir/cur");
  t.dir("mail/h/Maildir/.Archive");
  t.dir("mail/h/Maildir/.Archive/cur");
  std::string name = t.message("mail/h/Maildir/cur", "1700000000.M1P1.mx1", 10000);
  t.hardlink("mail/h/Maildir/cur/" + name, "mail/h/Maildir/.Archive/cur/1700000009.M9P9.mx1,S=10000,W=10002:2,");
  t.file("mail/h/Maildir/dovecot-keywords", 40);
  t.hardlink("mail/h/Maildir/dovecot-keywords", "mail/h/Maildir/.Archive/dovecot-keywords");
  auto r = size_of(t, "h");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->bytes, t.du("mail/h"));
  EXPECT_EQ(r->messages, 2);  // two messages, one inode
}

TEST(MaildirScanner, SymlinkLoopsAreCountedNotFollowed) {
  TempTree t;
  t.dir("mail");
  t.standard_home("mail/alice");
  t.symlink_to("loop", "mail/alice/Maildir/loop");         // points at itself
  t.symlink_to("b", "mail/alice/Maildir/a");               // a -> b -> a
  t.symlink_to("a", "mail/alice/Maildir/b");
  t.symlink_to("..", "mail/alice/Maildir/cur/up");          // a directory cycle
  t.symlink_to("/etc", "mail/alice/Maildir/.Sent/escape");  // out of the mail root
  auto r = size_of(t, "alice");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->bytes, t.du("mail/alice"));
  EXPECT_EQ(r->messages, 5);  // "up" in cur/ is a symlink, not a message
}

TEST(MaildirScanner, HomeThatIsASymlinkIsRefused) {
  TempTree t;
  t.dir("mail");
  t.dir("mail/example.org");
  t.standard_home("mail/example.org/real");
  t.symlink_to("real", "mail/example.org/alice");
  t.symlink_to("self", "mail/example.org/self");
  auto r = size_of(t, "example.org/alice");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(r.error().message(),
            "'example.org/alice' under mail_root '" + t.path("mail") + "' is a symbolic link (never followed)");
  auto loop = size_of(t, "example.org/self/Maildir");
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.error().message(),
            "'example.org/self' under mail_root '" + t.path("mail") + "' is a symbolic link (never followed)");
}

TEST(MaildirScanner, LongNamesAndPathsBeyondPathMax) {
  TempTree t;
  t.dir("mail");
  t.dir("mail/alice");
  t.dir("mail/alice/Maildir");
  t.dir("mail/alice/Maildir/cur");
  // The longest file name ext4 allows (255 bytes), as a message.
  std::string base(255 - std::string(",S=42,W=44:2,S").size(), 'n');
  std::string name = t.message("mail/alice/Maildir/cur", base, 42);
  ASSERT_EQ(name.size(), 255u);
  std::string deep = "mail/alice/Maildir/.deep";
  t.dir(deep);
  // A directory chain whose path is longer than 4 KB (PATH_MAX), built
  // relative to an fd because mkdir() cannot name it.
  std::string seg(250, 'd');
  int fd = open(t.path(deep).c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 18; ++i) {
    ASSERT_EQ(mkdirat(fd, seg.c_str(), 0755), 0);
    int next = openat(fd, seg.c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(next, 0);
    close(fd);
    fd = next;
  }
  int f = openat(fd, "deep-file", O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(f, 0);
  ASSERT_EQ(write(f, "12345", 5), 5);
  close(f);
  close(fd);
  auto r = size_of(t, "alice");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->bytes, t.du("mail/alice"));
  EXPECT_EQ(r->messages, 1);
}

TEST(MaildirScanner, NonUtf8NamesAreCounted) {
  TempTree t;
  t.dir("mail");
  t.dir("mail/alice");
  t.dir("mail/alice/Maildir");
  t.dir("mail/alice/Maildir/cur");
  t.dir("mail/alice/Maildir/.Caf\xe9");  // Latin-1 folder name
  t.dir("mail/alice/Maildir/.Caf\xe9/cur");
  t.message("mail/alice/Maildir/cur", "1700000000.M1P1.\xff\xfe", 321);
  t.message("mail/alice/Maildir/.Caf\xe9/cur", "1700000001.M1P1.mx1", 123);
  t.file("mail/alice/Maildir/\x80\x81-notes", 17);
  auto r = size_of(t, "alice");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->bytes, t.du("mail/alice"));
  EXPECT_EQ(r->messages, 2);
}

TEST(MaildirScanner, MissingHomeIsAnEmptyMailbox) {
  TempTree t;
  t.dir("mail");
  auto r = size_of(t, "example.org/nobody");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_FALSE(r->exists);
  EXPECT_EQ(r->bytes, 0);
  EXPECT_EQ(r->messages, 0);
}

TEST(MaildirScanner, MissingMailRootIsNotFound) {
  TempTree t;
  auto r = size_of(t, "example.org/alice");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.error().message(), "mail_root '" + t.path("mail") + "': No such file or directory");
}

TEST(MaildirScanner, HomeThatIsAFileIsRefused) {
  TempTree t;
  t.dir("mail");
  t.file("mail/alice", 10);
  auto r = size_of(t, "alice");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "'alice' under mail_root '" + t.path("mail") + "' is not a directory");
}

// Root reads every directory, so the permission test drops to nobody in a child.
TEST(MaildirScanner, UnreadableDirectoryIsAPermissionError) {
  TempTree t;
  t.dir("mail");
  t.dir("mail/example.org");
  t.standard_home("mail/example.org/alice");
  ASSERT_EQ(chmod(t.path("mail/example.org/alice/Maildir/cur").c_str(), 0), 0);
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    auto r = size_of(t, "example.org/alice");
    std::string out = r.ok() ? "ok" : std::string(error_code_name(r.error().code())) + "|" + r.error().message();
    (void)!write(pipefd[1], out.data(), out.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(got, "permission|scan 'example.org/alice/Maildir/cur': Permission denied");
}

}  // namespace
}  // namespace mailshard
