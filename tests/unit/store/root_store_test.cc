// RootFs / RootStore: the server-side file operations. Confinement (no "..",
// no absolute path, no symlink followed, for both resolvers), the write
// protocol (nothing under a final name before commit, hashes checked), and
// the read modes (whole, tail, block diff, librsync delta) round-tripping
// through a writer.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "store/content_hasher.h"
#include "store/root_fs.h"
#include "store/root_store.h"
#include "core/maildir_scanner.h"
#include "tests/unit/movers/maildir_gen.h"

namespace mailshard::store {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using mailshard::testing::read_whole;
using mailshard::testing::write_file;

class RootStoreTest : public ::testing::TestWithParam<RootFs::Resolver> {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& c : name)
      if (c == '/') c = '_';
    base_ = fs::path(::testing::TempDir()) / ("root_store_" + name);
    fs::remove_all(base_);
    fs::create_directories(base_ / "root/home/Maildir/cur");
    fs::create_directories(base_ / "outside");
    root_ = (base_ / "root").string();
    write_file(base_ / "outside/secret", "top secret\n");
    fs::create_symlink(base_ / "outside", base_ / "root/home/link_dir");
    fs::create_symlink(base_ / "outside/secret", base_ / "root/home/link_file");
    RootStore::Options o;
    o.resolver = GetParam();
    auto s = RootStore::open(root_, o);
    if (!s.ok() && s.error().code() == ErrorCode::kUnsupported) GTEST_SKIP() << s.error().message();
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
  }
  void TearDown() override { fs::remove_all(base_); }

  // A writer fed from this store's own reader.
  Result<std::vector<WriteResult>> copy(const ReadSpec& rs, WriteSpec ws) {
    auto r = MS_TRY(store_->open_reader({rs}));
    auto item = MS_TRY(r->next());
    if (item.status != ReadStatus::kOk) return Error::internal("not readable");
    auto w = MS_TRY(store_->open_writer({}));
    ws.attrs = item.file->attrs();
    MS_CHECK(w->write(ws, *item.file));
    return w->commit();
  }

  fs::path base_;
  std::string root_;
  std::unique_ptr<RootStore> store_;
};

TEST_P(RootStoreTest, DotDotAbsoluteAndSymlinkPathsAreRefused) {
  auto up = store_->fs().open_path("home/../../outside/secret", O_RDONLY);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().message(), "invalid path 'home/../../outside/secret': '..' component");
  auto abs = store_->fs().open_path("/etc/passwd", O_RDONLY);
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.error().message(), "invalid path '/etc/passwd': absolute paths are not allowed");
  auto via = store_->fs().open_path("home/link_dir/secret", O_RDONLY);
  ASSERT_FALSE(via.ok());
  EXPECT_EQ(via.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(via.error().message(), "cannot open 'home/link_dir/secret': path crosses a symlink");
  auto last = store_->fs().open_path("home/link_file", O_RDONLY);
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().message(), "cannot open 'home/link_file': path crosses a symlink");
  auto empty = store_->fs().open_path("home//x", O_RDONLY);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().message(), "invalid path 'home//x': empty component");
}

TEST_P(RootStoreTest, NothingOutsideTheRootIsReadThroughSymlinks) {
  // head, stat and read see the symlink itself, never its target.
  auto h = store_->head({"home/link_file", "home/link_dir/secret"}, 100);
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE((*h)[0].ok());
  EXPECT_FALSE((*h)[1].ok());
  EXPECT_EQ((*h)[1].error().message(), "'home/link_dir/secret': cannot open 'home/link_dir': path crosses a symlink");
  auto st = store_->stat({{"home/link_file", {true, -1}}});
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)[0].attrs.type, EntryType::kSymlink);
  EXPECT_EQ((*st)[0].link_target, (base_ / "outside/secret").string());
  EXPECT_FALSE((*st)[0].hash.has_value());
  auto r = store_->open_reader({ReadSpec{"home/link_file"}, ReadSpec{"home/link_dir/secret"}});
  ASSERT_TRUE(r.ok());
  auto a = (*r)->next();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->status, ReadStatus::kNotRegular);
  auto b = (*r)->next();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->status, ReadStatus::kFailed);
  // Setting attributes on a symlink never touches what it points to.
  struct stat before;
  ASSERT_EQ(::stat((base_ / "outside/secret").c_str(), &before), 0);
  TreeOp op;
  op.kind = TreeOp::Kind::kSetAttrs;
  op.path = "home/link_file";
  op.attrs.mode = 0777;
  op.attrs.mtime_ns = 1'000'000'000;
  op.attr_mask = TreeOp::kAllAttrs;
  auto res = store_->apply({op});
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE((*res)[0].ok()) << (*res)[0].error().message();
  struct stat after;
  ASSERT_EQ(::stat((base_ / "outside/secret").c_str(), &after), 0);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  // And a listing does not descend into a symlinked directory.
  auto l = store_->list_tree("home");
  ASSERT_TRUE(l.ok());
  for (const auto& d : *l) EXPECT_EQ(d.path.find("link_dir"), std::string::npos);
}

TEST_P(RootStoreTest, WritesAppearOnlyAtCommitAndAreHashChecked) {
  write_file(root_ + "/home/Maildir/cur/src", std::string(100'000, 'x'), 1'600'000'000'123'456'789, 0640);
  auto r = store_->open_reader({ReadSpec{"home/Maildir/cur/src"}});
  ASSERT_TRUE(r.ok());
  auto item = (*r)->next();
  ASSERT_TRUE(item.ok());
  auto w = store_->open_writer({});
  ASSERT_TRUE(w.ok());
  WriteSpec ws;
  ws.path = "home/Maildir/cur/dst";
  ws.attrs = item->file->attrs();
  ASSERT_TRUE((*w)->write(ws, *item->file).ok());
  EXPECT_FALSE(fs::exists(root_ + "/home/Maildir/cur/dst"));  // not before commit
  auto res = (*w)->commit();
  ASSERT_TRUE(res.ok());
  ASSERT_EQ(res->size(), 1u);
  EXPECT_EQ((*res)[0].status, WriteStatus::kOk);
  EXPECT_EQ(read_whole(root_ + "/home/Maildir/cur/dst"), std::string(100'000, 'x'));
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/home/Maildir/cur/dst").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123'456'789);
  // No temp file anywhere.
  for (const auto& e : fs::directory_iterator(root_ + "/home/Maildir/cur"))
    EXPECT_EQ(e.path().filename().string().rfind(kTempPrefix, 0), std::string::npos);
}

// A source whose trailer lies about the hash.
class LyingSource final : public SourceFile {
 public:
  explicit LyingSource(std::string data) : data_(std::move(data)) {
    attrs_.type = EntryType::kFile;
    attrs_.mode = 0600;
    attrs_.size = static_cast<int64_t>(data_.size());
  }
  const FileAttrs& attrs() const override { return attrs_; }
  Result<bool> next_chunk(Chunk& c) override {
    if (done_) return false;
    done_ = true;
    c = Chunk{0, data_.data(), data_.size()};
    return true;
  }
  Result<SourceTrailer> finish() override {
    SourceTrailer t;
    t.hash = hash_bytes("something else");
    t.size = attrs_.size;
    return t;
  }

 private:
  std::string data_;
  FileAttrs attrs_;
  bool done_ = false;
};

TEST_P(RootStoreTest, HashMismatchPublishesNothing) {
  write_file(root_ + "/home/Maildir/cur/keep", "old content");
  auto w = store_->open_writer({});
  ASSERT_TRUE(w.ok());
  LyingSource src("new content");
  WriteSpec ws;
  ws.path = "home/Maildir/cur/keep";
  ws.attrs = src.attrs();
  ASSERT_TRUE((*w)->write(ws, src).ok());
  auto res = (*w)->commit();
  ASSERT_TRUE(res.ok());
  EXPECT_EQ((*res)[0].status, WriteStatus::kHashMismatch);
  EXPECT_EQ((*res)[0].error->code(), ErrorCode::kVerifyFailed);
  EXPECT_EQ(read_whole(root_ + "/home/Maildir/cur/keep"), "old content");
}

TEST_P(RootStoreTest, TailBlockDiffAndDeltaRebuildTheSourceExactly) {
  std::mt19937_64 rnd(7);
  std::string old_data(300'000, '\0');
  for (auto& c : old_data) c = static_cast<char>(rnd());
  // The destination has the old version; the source has changed it.
  write_file(root_ + "/home/dst.cache", old_data);
  std::string appended = old_data + std::string(5000, 'A');
  std::string patched = appended;
  patched.replace(10, 8, "HEADERv2");
  patched.replace(150'000, 3, "mid");
  std::string shifted = old_data.substr(0, 1000) + "INSERTED" + old_data.substr(1000);

  // Tail: only the appended bytes cross.
  write_file(root_ + "/home/src.cache", appended);
  ReadSpec tail{"home/src.cache"};
  tail.offset = static_cast<int64_t>(old_data.size());
  WriteSpec ws;
  ws.path = "home/dst.cache";
  ws.kind = WriteSpec::Kind::kPatch;
  auto t = copy(tail, ws);
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ((*t)[0].status, WriteStatus::kOk);
  EXPECT_EQ((*t)[0].body_bytes, 5000);
  EXPECT_EQ(read_whole(root_ + "/home/dst.cache"), appended);

  // Block diff against the state's block hashes of the destination copy.
  write_file(root_ + "/home/src.cache", patched);
  ContentHasher h;
  h.set_blocks(4096, 99);
  h.update(appended.data(), appended.size());
  ReadSpec bd{"home/src.cache"};
  bd.mode = ReadSpec::Mode::kBlockDiff;
  bd.block_size = 4096;
  bd.block_seed = 99;
  bd.old_blocks = h.take_blocks();
  bd.want_blocks = true;
  auto b = copy(bd, ws);
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ((*b)[0].status, WriteStatus::kOk);
  EXPECT_EQ((*b)[0].body_bytes, 2 * 4096);  // the two changed blocks
  EXPECT_EQ(read_whole(root_ + "/home/dst.cache"), patched);

  // librsync delta: a shift in the middle (which a block diff could not match).
  write_file(root_ + "/home/src.cache", shifted);
  auto sig = store_->signature({"home/dst.cache", 1024, 0});
  ASSERT_TRUE(sig.ok()) << sig.error().message();
  ReadSpec dl{"home/src.cache"};
  dl.mode = ReadSpec::Mode::kDelta;
  dl.signature = sig->bytes;
  ws.kind = WriteSpec::Kind::kDelta;
  auto d = copy(dl, ws);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ((*d)[0].status, WriteStatus::kOk);
  EXPECT_LT((*d)[0].body_bytes, 8000);  // a few 1 KiB blocks, not 300 KB
  EXPECT_EQ(read_whole(root_ + "/home/dst.cache"), shifted);

  // A basis that is not what the source assumed: the hash check refuses it.
  write_file(root_ + "/home/dst.cache", old_data.substr(0, 299'000));
  write_file(root_ + "/home/src.cache", appended);
  auto wrong = copy(tail, WriteSpec{"home/dst.cache", WriteSpec::Kind::kPatch, {}});
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ((*wrong)[0].status, WriteStatus::kHashMismatch);
  EXPECT_EQ(read_whole(root_ + "/home/dst.cache"), old_data.substr(0, 299'000));
}

TEST_P(RootStoreTest, ApplyOpsReportPerOpResults) {
  std::vector<TreeOp> ops(4);
  ops[0].kind = TreeOp::Kind::kMkdir;
  ops[0].path = "home/new";
  ops[0].attrs.mode = 0750;
  ops[0].attr_mask = TreeOp::kMode;
  ops[1].kind = TreeOp::Kind::kUnlink;
  ops[1].path = "home/missing";
  ops[2].kind = TreeOp::Kind::kSymlink;
  ops[2].path = "home/new/l";
  ops[2].from = "../../../etc/shadow";
  ops[3].kind = TreeOp::Kind::kRename;
  ops[3].from = "home/new/l";
  ops[3].path = "home/../x";
  auto r = store_->apply(ops);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)[0].ok());
  EXPECT_EQ((*r)[1].error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE((*r)[2].ok());
  EXPECT_EQ((*r)[3].error().message(), "invalid path 'home/../x': '..' component");
  EXPECT_EQ(fs::read_symlink(root_ + "/home/new/l").string(), "../../../etc/shadow");
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/home/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

// apply opens each parent directory once per batch: an operation that
// renames or removes a directory makes the next ones look its path up again.
TEST_P(RootStoreTest, ApplyLooksDirectoriesUpAgainAfterAnOpRenamedOrRemovedThem) {
  fs::create_directories(root_ + "/home/A/cur");
  write_file(root_ + "/home/A/cur/m1", "mail");
  auto op = [](TreeOp::Kind k, std::string from, std::string path) {
    TreeOp o;
    o.kind = k;
    o.from = std::move(from);
    o.path = std::move(path);
    o.attrs.mode = 0700;
    return o;
  };
  using K = TreeOp::Kind;
  std::vector<TreeOp> ops = {
      op(K::kRename, "home/A/cur/m1", "home/A/cur/m2"),  // home/A/cur is looked up (and kept)
      op(K::kRename, "home/A", "home/B"),                // the folder takes another name
      op(K::kRename, "home/A/cur/m2", "home/A/cur/m3"),  // home/A is gone
      op(K::kRename, "home/B/cur/m2", "home/B/cur/m3"),
      op(K::kMkdir, "", "home/A"),
      op(K::kMkdir, "", "home/A/cur"),
      op(K::kSymlink, "x", "home/A/cur/l"),  // in the new home/A/cur
      op(K::kUnlink, "", "home/A/cur/l"),
      op(K::kRmdir, "", "home/A/cur"),
      op(K::kSymlink, "../B/cur", "home/A/cur"),
      op(K::kSymlink, "y", "home/A/cur/z"),  // through a symlinked parent now
  };
  auto r = store_->apply(ops);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), ops.size());
  for (size_t i : {0, 1, 3, 4, 5, 6, 7, 8, 9}) EXPECT_TRUE((*r)[i].ok()) << i << ": " << (*r)[i].error().message();
  ASSERT_FALSE((*r)[2].ok());
  EXPECT_EQ((*r)[2].error().code(), ErrorCode::kNotFound) << (*r)[2].error().message();
  ASSERT_FALSE((*r)[10].ok());
  EXPECT_EQ((*r)[10].error().code(), ErrorCode::kInvalidInput) << (*r)[10].error().message();
  EXPECT_EQ(read_whole(root_ + "/home/B/cur/m3"), "mail");
  EXPECT_FALSE(fs::exists(root_ + "/home/B/cur/z"));
  EXPECT_EQ(fs::read_symlink(root_ + "/home/A/cur").string(), "../B/cur");
}

// kPlace moves a file to a free name and never replaces one: a file at the
// name is kConflict and both files stay as they were.
TEST_P(RootStoreTest, PlaceNeverReplacesAFile) {
  write_file(root_ + "/home/a", "mine");
  write_file(root_ + "/home/taken", "theirs");
  std::vector<TreeOp> ops(3);
  ops[0].kind = TreeOp::Kind::kPlace;
  ops[0].from = "home/a";
  ops[0].path = "home/taken";
  ops[1].kind = TreeOp::Kind::kPlace;
  ops[1].from = "home/a";
  ops[1].path = "home/free";
  ops[2].kind = TreeOp::Kind::kPlace;
  ops[2].from = "home/a";
  ops[2].path = "home/again";
  auto r = store_->apply(ops);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE((*r)[0].ok());
  EXPECT_EQ((*r)[0].error().code(), ErrorCode::kConflict);
  EXPECT_EQ((*r)[0].error().message(), "cannot place 'home/a' at 'home/taken': something is there");
  EXPECT_TRUE((*r)[1].ok()) << (*r)[1].error().message();
  EXPECT_EQ((*r)[2].error().code(), ErrorCode::kNotFound) << "the file has left its old name";
  EXPECT_EQ(read_whole(root_ + "/home/taken"), "theirs");
  EXPECT_EQ(read_whole(root_ + "/home/free"), "mine");
  EXPECT_FALSE(fs::exists(root_ + "/home/a"));
}

TEST_P(RootStoreTest, ListingHasTypesWithoutStatAndSkipsNothing) {
  write_file(root_ + "/home/Maildir/cur/a:2,S", "a");
  auto l = store_->list_tree("home");
  ASSERT_TRUE(l.ok());
  ASSERT_GE(l->size(), 2u);
  EXPECT_EQ((*l)[0].path, "");
  bool found = false;
  for (const auto& d : *l)
    for (const auto& e : d.entries)
      if (d.path == "Maildir/cur" && e.name == "a:2,S" && e.type == EntryType::kFile) found = true;
  EXPECT_TRUE(found);
  auto missing = store_->list_tree("nohome");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

// APPLY and SIGNATURE through a symlinked parent must say so (kInvalidInput),
// never not_found: the engine takes a not_found unlink as already done.
TEST_P(RootStoreTest, ApplyAndSignatureThroughASymlinkedParentSaySo) {
  fs::create_symlink(base_ / "nowhere", base_ / "root/home/dangling_dir");
  for (const std::string& path : {std::string("home/link_dir/secret"), std::string("home/link_dir/gone/x"),
                                  std::string("home/dangling_dir/x")}) {
    TreeOp op;
    op.kind = TreeOp::Kind::kUnlink;
    op.path = path;
    auto r = store_->apply({op});
    ASSERT_TRUE(r.ok());
    ASSERT_FALSE((*r)[0].ok()) << path;
    EXPECT_EQ((*r)[0].error().code(), ErrorCode::kInvalidInput) << (*r)[0].error().message();
    EXPECT_NE((*r)[0].error().message().find("path crosses a symlink"), std::string::npos) << (*r)[0].error().message();
    SignatureRequest req;
    req.path = path;
    auto sig = store_->signature(req);
    ASSERT_FALSE(sig.ok()) << path;
    EXPECT_EQ(sig.error().code(), ErrorCode::kInvalidInput) << sig.error().message();
    EXPECT_NE(sig.error().message().find("path crosses a symlink"), std::string::npos) << sig.error().message();
  }
  EXPECT_TRUE(fs::exists(base_ / "outside/secret"));
}

// SIZE's server side: every home is confined like any other path (no "..",
// no absolute path, not the root itself, no symlink on the way or as the
// home), a missing home is exists = false, and a good one is exactly what the
// inventory's own scan (open_home + scan_tree on the same tree) counts.
TEST_P(RootStoreTest, SizeHomesIsConfinedAndCountsLikeTheLocalScan) {
  write_file(base_ / "root/home/Maildir/cur/1700000000.M1P1.h,S=5,W=6:2,S", "hello");
  write_file(base_ / "root/home/Maildir/cur/no-size-in-name", "1234567");
  write_file(base_ / "root/home/Maildir/dovecot-uidlist", "3 V1 N2\n");
  fs::create_directories(base_ / "root/example.org");
  fs::create_symlink(base_ / "root/home", base_ / "root/example.org/alias");  // inside the root, still refused
  fs::create_symlink(base_ / "root", base_ / "root/up");
  const std::vector<std::string> homes = {"home",        "home/link_dir", "home/link_dir/x", "up/home",
                                          "../outside",  "/etc",          "",                "nope/never",
                                          "example.org/alias", "home/Maildir/cur/no-size-in-name",
                                          "home/Maildir/cur/no-size-in-name/deeper"};
  std::vector<Result<MailboxSize>> got;
  Status st = store_->size_homes(homes, [&](size_t i, Result<MailboxSize> r) -> Status {
    EXPECT_EQ(i, got.size());
    got.push_back(std::move(r));
    return {};
  });
  ASSERT_TRUE(st.ok()) << st.error().message();
  ASSERT_EQ(got.size(), homes.size());

  int fd = *open_home(root_, "home");
  MailboxSize local = *scan_tree(fd, "home");
  ASSERT_TRUE(got[0].ok()) << got[0].error().message();
  EXPECT_EQ(got[0]->bytes, local.bytes);
  EXPECT_EQ(got[0]->messages, 2);  // both files in cur/
  EXPECT_EQ(got[0]->messages, local.messages);
  EXPECT_EQ(got[0]->files, local.files);
  EXPECT_EQ(got[0]->stat_calls, local.stat_calls);
  EXPECT_TRUE(got[0]->exists);

  auto error_of = [&](size_t i) { return got[i].ok() ? std::string("(sized)") : got[i].error().message(); };
  EXPECT_EQ(error_of(1), "cannot open 'home/link_dir': path crosses a symlink");
  EXPECT_EQ(error_of(2), "cannot open 'home/link_dir/x': path crosses a symlink");
  EXPECT_EQ(error_of(3), "cannot open 'up/home': path crosses a symlink");
  EXPECT_EQ(error_of(4), "invalid path '../outside': '..' component");
  EXPECT_EQ(error_of(5), "invalid path '/etc': absolute paths are not allowed");
  EXPECT_EQ(error_of(6), "invalid path '': the mail root itself is not a home");
  for (size_t i : {1, 2, 3, 4, 5, 6}) EXPECT_EQ(got[i].error().code(), ErrorCode::kInvalidInput) << i;
  ASSERT_TRUE(got[7].ok()) << got[7].error().message();
  EXPECT_FALSE(got[7]->exists);
  EXPECT_EQ(got[7]->bytes, 0);
  EXPECT_EQ(error_of(8), "cannot open 'example.org/alias': path crosses a symlink");
  EXPECT_EQ(error_of(9), "'home/Maildir/cur/no-size-in-name' is not a directory");  // a file is not a home
  EXPECT_EQ(error_of(10), "'home/Maildir/cur/no-size-in-name' is not a directory");

  // A sink that stops ends the sizing there.
  size_t calls = 0;
  Status stopped = store_->size_homes(homes, [&](size_t, Result<MailboxSize>) -> Status {
    return ++calls == 2 ? Status(Error::interrupted("stop")) : Status();
  });
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().message(), "stop");
  EXPECT_EQ(calls, 2u);
}

INSTANTIATE_TEST_SUITE_P(Resolvers, RootStoreTest,
                         ::testing::Values(RootFs::Resolver::kOpenat2, RootFs::Resolver::kWalk),
                         [](const auto& info) { return info.param == RootFs::Resolver::kWalk ? "Walk" : "Openat2"; });

}  // namespace
}  // namespace mailshard::store
