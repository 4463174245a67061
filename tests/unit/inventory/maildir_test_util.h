// Building small Maildir trees on disk for the sizing tests, and the
// reference size `du -s --apparent-size -B1` gives for them.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "util/strings.h"
#include "util/subprocess.h"

namespace mailshard::testing {

// A temporary directory (mode 0755 so a dropped-privilege child can enter),
// removed with everything in it at the end of the test.
class TempTree {
 public:
  TempTree() {
    char tmpl[] = "/tmp/inv-unit-XXXXXX";
    root_ = mkdtemp(tmpl);
    chmod(root_.c_str(), 0755);
  }
  ~TempTree() {
    // Make everything removable again (tests chmod 000 some directories).
    (void)run_process({"chmod", "-R", "u+rwx", root_});
    (void)run_process({"rm", "-rf", root_});
  }
  const std::string& root() const { return root_; }
  std::string path(const std::string& rel) const { return root_ + "/" + rel; }

  void dir(const std::string& rel) const { ASSERT_EQ(mkdir(path(rel).c_str(), 0755), 0) << rel; }
  void file(const std::string& rel, size_t bytes) const {
    int fd = open(path(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << printable(rel);
    std::string data(bytes, 'm');
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    close(fd);
  }
  // A Maildir message: name "<base>,S=<bytes>,W=<bytes+lines>" with `bytes` bytes of content.
  std::string message(const std::string& folder_dir, const std::string& base, size_t bytes,
                      const std::string& flags = ":2,S") const {
    std::string name = base + ",S=" + std::to_string(bytes) + ",W=" + std::to_string(bytes + 2) + flags;
    file(folder_dir + "/" + name, bytes);
    return name;
  }
  void symlink_to(const std::string& target, const std::string& rel) const {
    ASSERT_EQ(symlink(target.c_str(), path(rel).c_str()), 0) << rel;
  }
  void hardlink(const std::string& from, const std::string& to) const {
    ASSERT_EQ(link(path(from).c_str(), path(to).c_str()), 0);
  }

  // du -s --apparent-size -B1 of root/rel.
  int64_t du(const std::string& rel) const {
    auto r = run_process({"du", "-s", "--apparent-size", "-B1", path(rel)});
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.error().message());
    if (!r.ok()) return -1;
    return std::atoll(r->out.c_str());
  }

  // A home with INBOX, a .Sent folder, tmp/, index files, a symlink and a
  // message without S=; returns how many message files it holds.
  int standard_home(const std::string& home) const {
    dir(home);
    dir(home + "/Maildir");
    for (const char* d : {"cur", "new", "tmp"}) dir(home + "/Maildir/" + d);
    dir(home + "/Maildir/.Sent");
    for (const char* d : {"cur", "new", "tmp"}) dir(home + "/Maildir/.Sent/" + std::string(d));
    message(home + "/Maildir/cur", "1700000000.M1P1.mx1", 1234);
    message(home + "/Maildir/cur", "1700000001.M2P1.mx1", 56789);
    message(home + "/Maildir/new", "1700000002.M3P1.mx1", 700, "");
    message(home + "/Maildir/.Sent/cur", "1700000003.M4P1.mx1", 4096);
    file(home + "/Maildir/cur/1700000004.M5P1.mx1:2,S", 333);  // no S=: needs a stat
    file(home + "/Maildir/tmp/1700000005.M6P1.mx1", 50);      // in-flight delivery, not a message
    file(home + "/Maildir/dovecot-uidlist", 120);
    file(home + "/Maildir/dovecot.index.cache", 2048);
    file(home + "/Maildir/.Sent/maildirfolder", 0);
    dir(home + "/sieve");
    file(home + "/sieve/main.sieve", 99);
    symlink_to("sieve/main.sieve", home + "/.dovecot.sieve");
    return 5;
  }

 private:
  std::string root_;
};

}  // namespace mailshard::testing
