// The sync engine against inputs that once made the copy silently wrong or
// stuck (issue 13, part 1): an inode reused between passes, two messages
// with one base name, entries that change type, sparse files, hard links
// out of the home. Each test failed on the engine before its fix.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "movers/sync_engine.h"
#include "tests/unit/movers/maildir_gen.h"
#include "tests/unit/movers/sync_fixture.h"

namespace mailshard {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::read_whole;
using testing::write_file;

constexpr int64_t k2024 = 1'704'067'200'000'000'000;  // 2024-01-01T00:00:00Z in ns

class SyncHostileTest : public testing::SyncEngineFixture {
 protected:
  void make_folder(const std::string& folder) {
    for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(src_home() + "/" + folder + "/" + sub);
  }
  // Every name of a destination directory -> its content.
  std::map<std::string, std::string> dst_files(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(dst_home() + "/" + dir))
      if (e.is_regular_file()) out[e.path().filename().string()] = read_whole(e.path().string());
    return out;
  }
  ino_t ino(const std::string& path) {
    struct stat st;
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_ino;
  }
};

// Issue 13 §1.1: a message expunged after a pass frees its inode; a new
// message of the same size and mtime gets it and is hard-linked into another
// folder. Same inode, size and mtime as the old copy: the old engine linked
// both new names to the old content and verify said "verified".
TEST_F(SyncHostileTest, ReusedInodeIsNeverLinkedToTheOldContent) {
  for (bool agent_transport : {false, true}) {
    SCOPED_TRACE(agent_transport ? "agent" : "local");
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    auto src = agent_transport ? agent(src_root_) : local(src_root_);
    auto dst = agent_transport ? agent(dst_root_) : local(dst_root_);
    make_folder("Maildir");
    make_folder("Maildir/.Sub");
    const std::string old_name = "Maildir/cur/100.E.h,S=10:2,S";
    write_file(src_home() + "/" + old_name, "AAAAAAAAA", k2024);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    ASSERT_TRUE(e.warm_pass(state).ok());

    fs::remove(src_home() + "/" + old_name);
    const std::string a = src_home() + "/Maildir/cur/200.F.h,S=10:2,S";
    const std::string b = src_home() + "/Maildir/.Sub/cur/200.F.h,S=10:2,S";
    write_file(a, "BBBBBBBBB", k2024);
    ASSERT_EQ(::link(a.c_str(), b.c_str()), 0);
    // ext4 usually hands the freed inode to the next file; where it did not,
    // the state is made to say it did (what matters is what the state says).
    EntryState& es = state.dirs["Maildir/cur"].entries.at("100.E.h,S=10:2,S");
    es.attrs.ino = ino(a);

    auto r = e.warm_pass(state);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->files_copied, 1);
    EXPECT_EQ(r->hard_links, 1);  // the second name, to the content copied in this pass
    EXPECT_EQ(read_whole(dst_home() + "/Maildir/cur/200.F.h,S=10:2,S"), "BBBBBBBBB");
    EXPECT_EQ(read_whole(dst_home() + "/Maildir/.Sub/cur/200.F.h,S=10:2,S"), "BBBBBBBBB");
    EXPECT_EQ(ino(dst_home() + "/Maildir/cur/200.F.h,S=10:2,S"), ino(dst_home() + "/Maildir/.Sub/cur/200.F.h,S=10:2,S"));
    EXPECT_FALSE(fs::exists(dst_home() + "/" + old_name));
    auto v = e.verify(state, VerifyScope::kWritten);
    ASSERT_TRUE(v.ok()) << v.error().message();
    EXPECT_EQ(v->files_hashed, 2);  // the copy and the link: every name the pass created
    ASSERT_TRUE(e.verify(state, VerifyScope::kFull).ok());
    ASSERT_TRUE(e.verify_frozen_copy(state).ok());
    expect_identical();
  }
}

// The link target's content is checked against the source of the new name,
// and verify() re-hashes linked names: a copy changed behind the engine's
// back is found through either name.
TEST_F(SyncHostileTest, VerifyCoversHardLinksThePassMade) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  make_folder("Maildir");
  make_folder("Maildir/.Sub");
  const std::string a = src_home() + "/Maildir/cur/1.A.h,S=3:2,S";
  write_file(a, "abc", k2024);
  ASSERT_EQ(::link(a.c_str(), (src_home() + "/Maildir/.Sub/cur/1.A.h,S=3:2,S").c_str()), 0);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  auto r = e.warm_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->hard_links, 1);
  // Tamper with the shared inode on the destination (same size and mtime).
  write_file(dst_home() + "/Maildir/cur/1.A.h,S=3:2,S", "xyz", k2024);
  ASSERT_EQ(read_whole(dst_home() + "/Maildir/.Sub/cur/1.A.h,S=3:2,S"), "xyz");
  // The pass copied one name ('.Sub' sorts first) and linked the other.
  auto v = e.verify(state, VerifyScope::kWritten);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error().message(), HasSubstr("'Maildir/.Sub/cur/1.A.h,S=3:2,S' differs: content hash"));
  EXPECT_THAT(v.error().message(), HasSubstr("'Maildir/cur/1.A.h,S=3:2,S' differs: content hash"));
  auto f = e.verify_frozen_copy(state);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.error().message(), HasSubstr("'Maildir/.Sub/cur/1.A.h,S=3:2,S' differs: content hash differs"));
  EXPECT_THAT(f.error().message(), HasSubstr("'Maildir/cur/1.A.h,S=3:2,S' differs: content hash differs"));
}

// verify_frozen_copy no longer lists the destination after a frozen pass of
// this engine: it checks each name that pass changed. Every kind of change
// the pass made (rename, expunge, new message, hard link, symlink, new and
// removed folders, metadata), undone or altered behind its back, is still a
// mismatch naming the path; and a state read back from the journal (which
// does not know what the pass changed) lists the destination as before.
TEST_F(SyncHostileTest, FrozenVerifyCoversEveryNameTheFrozenPassChanged) {
  struct Case {
    const char* what;
    std::function<void(const std::string& d)> tamper;  // d: the destination home
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"renamed message gone", [](const std::string& d) { fs::remove(d + "/Maildir/cur/1.A.h,S=3:2,FS"); },
       "missing on the destination: 'Maildir/cur/1.A.h,S=3:2,FS'"},
      {"old name back", [](const std::string& d) { write_file(d + "/Maildir/cur/1.A.h,S=3:2,S", "abc", k2024); },
       "extra on the destination: 'Maildir/cur/1.A.h,S=3:2,S'"},
      {"expunged message back", [](const std::string& d) { write_file(d + "/Maildir/cur/2.B.h,S=3:2,S", "def", k2024); },
       "extra on the destination: 'Maildir/cur/2.B.h,S=3:2,S'"},
      {"new message changed", [](const std::string& d) { write_file(d + "/Maildir/new/4.D.h,S=3", "xyz", k2024); },
       "'Maildir/new/4.D.h,S=3' differs: content hash"},
      {"linked name replaced",
       [](const std::string& d) {
         fs::remove(d + "/Maildir/.New/cur/4.D.h,S=3:2,S");
         write_file(d + "/Maildir/.New/cur/4.D.h,S=3:2,S", "xyz", k2024);
       },
       "'Maildir/.New/cur/4.D.h,S=3:2,S' differs: content hash"},
      {"symlink retargeted",
       [](const std::string& d) {
         fs::remove(d + "/.dovecot.sieve");
         fs::create_symlink("sieve/other.sieve", d + "/.dovecot.sieve");
       },
       "symlink target 'sieve/x.sieve' != 'sieve/other.sieve'"},
      {"new folder gone", [](const std::string& d) { fs::remove_all(d + "/Maildir/.New"); },
       "directory missing on the destination: 'Maildir/.New'"},
      {"removed folder back", [](const std::string& d) { fs::create_directories(d + "/Maildir/.Old/cur"); },
       "extra on the destination: 'Maildir/.Old'"},
      {"uidlist changed",
       [](const std::string& d) { write_file(d + "/Maildir/dovecot-uidlist", "3 V1 N4 G0\n1 1.A.h\n4 4.X.h\n", k2024 + 1); },
       "'Maildir/dovecot-uidlist' differs: content hash differs"},  // same size and mtime
  };
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    make_folder("Maildir");
    make_folder("Maildir/.Old");
    make_folder("Maildir/.Keep");
    write_file(src_home() + "/Maildir/cur/1.A.h,S=3:2,S", "abc", k2024);
    write_file(src_home() + "/Maildir/cur/2.B.h,S=3:2,S", "def", k2024);
    write_file(src_home() + "/Maildir/.Old/cur/3.C.h,S=3:2,S", "ghi", k2024);
    write_file(src_home() + "/Maildir/dovecot-uidlist", "3 V1 N4 G0\n1 1.A.h\n", k2024);
    fs::create_directories(src_home() + "/sieve");
    write_file(src_home() + "/sieve/x.sieve", "keep;", k2024);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    ASSERT_TRUE(e.warm_pass(state).ok());

    // The frozen window's changes: a flag change, an expunge, a delivery and
    // its COPY (a hard link into a new folder), a new symlink, a removed
    // folder, an appended uidlist.
    fs::rename(src_home() + "/Maildir/cur/1.A.h,S=3:2,S", src_home() + "/Maildir/cur/1.A.h,S=3:2,FS");
    fs::remove(src_home() + "/Maildir/cur/2.B.h,S=3:2,S");
    write_file(src_home() + "/Maildir/new/4.D.h,S=3", "jkl", k2024);
    make_folder("Maildir/.New");
    ASSERT_EQ(::link((src_home() + "/Maildir/new/4.D.h,S=3").c_str(),
                     (src_home() + "/Maildir/.New/cur/4.D.h,S=3:2,S").c_str()), 0);
    fs::create_symlink("sieve/x.sieve", src_home() + "/.dovecot.sieve");
    fs::remove_all(src_home() + "/Maildir/.Old");
    write_file(src_home() + "/Maildir/dovecot-uidlist", "3 V1 N4 G0\n1 1.A.h\n4 4.D.h\n", k2024 + 1);
    auto fin = e.final_pass(state);
    ASSERT_TRUE(fin.ok()) << fin.error().message();
    EXPECT_EQ(fin->renames, 1);
    EXPECT_EQ(fin->hard_links, 1);
    expect_identical();
    ASSERT_TRUE(state.last_changes_known);
    auto ok = e.verify_frozen_copy(state);
    ASSERT_TRUE(ok.ok()) << ok.error().message();

    c.tamper(dst_home());
    auto v = e.verify_frozen_copy(state);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().code(), ErrorCode::kVerifyFailed);
    EXPECT_THAT(v.error().message(), HasSubstr(c.expect));
  }

  // Read back from the journal, the state cannot say what the pass changed:
  // the destination is listed, and a stray file where the pass wrote nothing
  // is found too.
  fs::remove_all(dst_root_ + "/staging");
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.warm_pass(state).ok());
  ASSERT_TRUE(e.final_pass(state).ok());
  auto loaded = SyncState::deserialize(state.serialize());
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->last_changes_known);
  ASSERT_TRUE(e.verify_frozen_copy(*loaded).ok());
  write_file(dst_home() + "/Maildir/.Keep/cur/9.Z.h,S=1:2,S", "z", k2024);
  auto v = e.verify_frozen_copy(*loaded);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error().message(), HasSubstr("extra on the destination: 'Maildir/.Keep/cur/9.Z.h,S=1:2,S'"));
}

// Issue 13 §1.2: two names with one base name in a folder. Dovecot keeps
// both; the old engine dropped one or gave it the other's content, a
// different way on each pass.
TEST_F(SyncHostileTest, DuplicateBaseNamesKeepTheirOwnContentOnEveryPass) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  make_folder("Maildir");
  write_file(src_home() + "/Maildir/cur/1.M1.h:2,S", "one", k2024);
  write_file(src_home() + "/Maildir/cur/1.M1.h:2,RS", "two", k2024 + 1);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  const std::map<std::string, std::string> both{{"1.M1.h:2,RS", "two"}, {"1.M1.h:2,S", "one"}};
  for (int pass = 0; pass < 4; ++pass) {
    SCOPED_TRACE(pass);
    auto r = e.warm_pass(state);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(dst_files("Maildir/cur"), both);
    if (pass > 0) {
      EXPECT_EQ(r->files_copied + r->renames + r->deletes, 0);  // stable: nothing to do
    }
    ASSERT_TRUE(e.verify(state, VerifyScope::kFull).ok());
  }
  // A flag change on one of them: the base cannot tell which, so the changed
  // name is copied anew and the old one removed; each keeps its content.
  fs::rename(src_home() + "/Maildir/cur/1.M1.h:2,RS", src_home() + "/Maildir/cur/1.M1.h:2,RST");
  auto r = e.final_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(dst_files("Maildir/cur"),
            (std::map<std::string, std::string>{{"1.M1.h:2,RST", "two"}, {"1.M1.h:2,S", "one"}}));
  ASSERT_TRUE(e.verify_frozen_copy(state).ok());
  // And when one of them goes, the other is renamed no more.
  fs::remove(src_home() + "/Maildir/cur/1.M1.h:2,S");
  fs::rename(src_home() + "/Maildir/cur/1.M1.h:2,RST", src_home() + "/Maildir/cur/1.M1.h:2,T");
  ASSERT_TRUE(e.warm_pass(state).ok());
  EXPECT_EQ(dst_files("Maildir/cur"), (std::map<std::string, std::string>{{"1.M1.h:2,T", "two"}}));
  expect_identical();
}

// Issue 13 §1.3: an entry that changes type between passes, in every kind of
// place (the home, a Maildir folder, a message in cur/), must not block the
// sync ("exists and is not a directory" on every later pass).
TEST_F(SyncHostileTest, EntriesThatChangeTypeBetweenPassesAreReplaced) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  make_folder("Maildir");
  make_folder("Maildir/.Old");
  write_file(src_home() + "/notes", "a file", k2024);
  write_file(src_home() + "/Maildir/cur/7.M7.h,S=3:2,S", "abc", k2024);
  write_file(src_home() + "/Maildir/.Old/cur/8.M8.h,S=3:2,S", "def", k2024);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.warm_pass(state).ok());

  // file -> directory, directory -> file, message -> directory.
  fs::remove(src_home() + "/notes");
  fs::create_directory(src_home() + "/notes");
  write_file(src_home() + "/notes/inside", "now a directory", k2024);
  fs::remove_all(src_home() + "/Maildir/.Old");
  write_file(src_home() + "/Maildir/.Old", "now a file", k2024);
  fs::remove(src_home() + "/Maildir/cur/7.M7.h,S=3:2,S");
  fs::create_directory(src_home() + "/Maildir/cur/7.M7.h,S=3:2,S");
  for (int pass = 0; pass < 2; ++pass) {
    auto r = e.warm_pass(state);
    ASSERT_TRUE(r.ok()) << r.error().message();
    expect_identical();
  }
  // And back again.
  fs::remove_all(src_home() + "/notes");
  write_file(src_home() + "/notes", "a file again", k2024);
  fs::remove(src_home() + "/Maildir/.Old");
  make_folder("Maildir/.Old");
  fs::remove(src_home() + "/Maildir/cur/7.M7.h,S=3:2,S");
  write_file(src_home() + "/Maildir/cur/7.M7.h,S=3:2,S", "abc", k2024);
  auto r = e.final_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  expect_identical();
  ASSERT_TRUE(e.verify(state, VerifyScope::kFull).ok());
}

// ... and when the destination holds the wrong type where a folder goes (a
// plain file at Maildir/cur, a symlink at Maildir): the first pass replaces
// it inside the staging tree and follows no symlink.
TEST_F(SyncHostileTest, WrongTypesOnTheDestinationAreReplacedNotFollowed) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  testing::generate_home(src_home(), gen_);
  fs::create_directories(dst_home() + "/Maildir");
  write_file(dst_home() + "/Maildir/cur", "not a directory");
  fs::create_directories(dst_home() + "/Maildir/.Sent");
  fs::create_directory_symlink(base_ / "outside", dst_home() + "/Maildir/.Sent/cur");
  fs::create_directories(base_ / "outside");
  fs::create_directory_symlink(base_ / "outside", dst_home() + "/sieve");
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  auto r = e.warm_pass(state);
  ASSERT_TRUE(r.ok()) << r.error().message();
  expect_identical();
  EXPECT_TRUE(fs::is_empty(base_ / "outside"));

  // The state says Maildir/cur is a directory, but someone replaced it: the
  // pass fails with a clear error or repairs it, and the next one repairs it.
  fs::remove_all(dst_home() + "/Maildir/.Archive");
  write_file(dst_home() + "/Maildir/.Archive", "planted");
  testing::write_file(src_home() + "/Maildir/.Archive/new/9.M9.h,S=4", "late", k2024);
  auto r2 = e.warm_pass(state);
  if (!r2.ok()) {
    EXPECT_THAT(r2.error().message(), HasSubstr("Maildir/.Archive"));
  }
  auto r3 = e.warm_pass(state);
  ASSERT_TRUE(r3.ok()) << r3.error().message();
  expect_identical();
}

// Issue 13 §1.4: sparse files keep their holes (the old copy wrote every
// zero: 2.2 GB allocated for 4 KiB of data).
TEST_F(SyncHostileTest, SparseFilesKeepTheirHoles) {
  constexpr int64_t kApparent = 64ll << 20;
  auto make_sparse = [&](const std::string& path, bool hole_at_end) {
    fs::create_directories(fs::path(path).parent_path());
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "head", 4, 0), 4);
    ASSERT_EQ(::pwrite(fd, "middle", 6, kApparent / 2), 6);
    if (hole_at_end) ASSERT_EQ(::ftruncate(fd, kApparent), 0);
    else ASSERT_EQ(::pwrite(fd, "tail", 4, kApparent - 4), 4);
    ::close(fd);
  };
  auto allocated = [](const std::string& path) {
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return static_cast<int64_t>(st.st_blocks) * 512;
  };
  for (bool agent_transport : {false, true}) {
    SCOPED_TRACE(agent_transport ? "agent" : "local");
    fs::remove_all(src_home());
    fs::remove_all(dst_root_ + "/staging");
    make_folder("Maildir");
    make_sparse(src_home() + "/Maildir/cur/1.S.h,S=67108864:2,S", false);
    make_sparse(src_home() + "/mail/archive.mbox", true);
    ASSERT_LT(allocated(src_home() + "/mail/archive.mbox"), 1 << 20);
    auto src = agent_transport ? agent(src_root_) : local(src_root_);
    auto dst = agent_transport ? agent(dst_root_) : local(dst_root_);
    SyncState state = SyncState::fresh();
    SyncEngine e = engine(*src, *dst);
    auto r = e.warm_pass(state);
    ASSERT_TRUE(r.ok()) << r.error().message();
    for (const char* p : {"/Maildir/cur/1.S.h,S=67108864:2,S", "/mail/archive.mbox"}) {
      SCOPED_TRACE(p);
      EXPECT_EQ(fs::file_size(dst_home() + p), static_cast<uintmax_t>(kApparent));
      EXPECT_LT(allocated(dst_home() + p), 1 << 20);
    }
    EXPECT_LT(r->bytes_sent, 1 << 20);  // the holes did not travel
    auto v = e.verify(state, VerifyScope::kFull);
    ASSERT_TRUE(v.ok()) << v.error().message();
    expect_identical();
  }
}

// Issue 13 §1.5: a message hard-linked to a file outside the home (its
// source link count counts a name the copy cannot have) verifies; a full
// verify hashes each message once and reports each difference once.
TEST_F(SyncHostileTest, VerifyAcceptsLinksOutOfTheHomeAndReportsOnce) {
  auto src = local(src_root_);
  auto dst = local(dst_root_);
  make_folder("Maildir");
  const std::string m = src_home() + "/Maildir/cur/1.L.h,S=4:2,S";
  write_file(m, "link", k2024);
  ASSERT_EQ(::link(m.c_str(), (src_root_ + "/elsewhere").c_str()), 0);
  write_file(src_home() + "/Maildir/cur/2.N.h,S=4:2,S", "none", k2024);
  SyncState state = SyncState::fresh();
  SyncEngine e = engine(*src, *dst);
  ASSERT_TRUE(e.warm_pass(state).ok());
  auto v = e.verify(state, VerifyScope::kWritten);
  ASSERT_TRUE(v.ok()) << v.error().message();
  auto full = e.verify(state, VerifyScope::kFull);
  ASSERT_TRUE(full.ok()) << full.error().message();
  EXPECT_EQ(full->files_hashed, 2);
  // One wrong message: one difference, reported once.
  write_file(dst_home() + "/Maildir/cur/2.N.h,S=4:2,S", "NONE", k2024);
  auto bad = e.verify(state, VerifyScope::kFull);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message(), HasSubstr(": 1 difference: "));
  EXPECT_THAT(bad.error().message(), HasSubstr("'Maildir/cur/2.N.h,S=4:2,S' differs: content hash"));
  // Two names that are one file on the destination but two on the source.
  fs::remove(dst_home() + "/Maildir/cur/2.N.h,S=4:2,S");
  ASSERT_EQ(::link((dst_home() + "/Maildir/cur/1.L.h,S=4:2,S").c_str(), (dst_home() + "/Maildir/cur/2.N.h,S=4:2,S").c_str()),
            0);
  auto joined = e.verify(state, VerifyScope::kFull);
  ASSERT_FALSE(joined.ok());
  EXPECT_THAT(joined.error().message(), HasSubstr("are one file on the destination but not on the source"));
}

}  // namespace
}  // namespace mailshard
