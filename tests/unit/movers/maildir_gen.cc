#include "tests/unit/movers/maildir_gen.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

namespace mailshard::testing {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kBase = 1'700'000'000;  // seconds: a fixed "history" start
constexpr int64_t kNs = 1'000'000'000;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

void set_mtime(const std::string& path, int64_t ns) {
  struct timespec ts[2] = {{ns / kNs, ns % kNs}, {ns / kNs, ns % kNs}};
  if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) fail("utimensat " + path);
}

void own(const std::string& path, const GenOptions& g) {
  if (g.uid < 0 || ::geteuid() != 0) return;
  if (::lchown(path.c_str(), static_cast<uid_t>(g.uid), static_cast<gid_t>(g.gid)) != 0) fail("lchown " + path);
}

void mkdir_p(const std::string& path, const GenOptions& g, int mode = 0700) {
  fs::create_directories(path);
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
  own(path, g);
}

struct Folder {
  std::string dir;  // "" = INBOX
  bool keywords;
};
const std::vector<Folder> kFolders = {{"", true}, {".Sent", false}, {".Archive", true}, {".Lists.dev", true}};

std::string folder_path(const std::string& home, const std::string& f) {
  return f.empty() ? home + "/Maildir" : home + "/Maildir/" + f;
}

std::string body(std::mt19937_64& rnd, size_t n) {
  static const char* words[] = {"mail", "move", "shard", "dovecot", "index", "cache", "flag", "uid", "sieve", "quota"};
  std::string s = "From: a@example.org\nSubject: test\n\n";
  while (s.size() < n) {
    s += words[rnd() % 10];
    s += (rnd() % 9 == 0) ? '\n' : ' ';
  }
  s.resize(n);
  return s;
}

std::string base_name(int64_t ts, uint64_t n) {
  return std::to_string(ts) + ".M" + std::to_string(n % 1000000) + "P" + std::to_string(1000 + n % 9000) + ".mx1,S=";
}

// uidlist: header + "<uid> :<name>" lines.
struct UidList {
  uint64_t uidvalidity = 0, next = 1;
  std::string guid;
  std::vector<std::pair<uint64_t, std::string>> entries;
  std::string text() const {
    std::ostringstream o;
    o << "3 V" << uidvalidity << " N" << next << " G" << guid << "\n";
    for (const auto& [u, n] : entries) o << u << " :" << n << "\n";
    return o.str();
  }
  static UidList parse(const std::string& text) {
    UidList u;
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);
    std::istringstream h(line);
    std::string tok;
    h >> tok;
    while (h >> tok) {
      if (tok[0] == 'V') u.uidvalidity = std::stoull(tok.substr(1));
      if (tok[0] == 'N') u.next = std::stoull(tok.substr(1));
      if (tok[0] == 'G') u.guid = tok.substr(1);
    }
    while (std::getline(in, line)) {
      auto sp = line.find(" :");
      if (sp == std::string::npos) continue;
      u.entries.emplace_back(std::stoull(line.substr(0, sp)), line.substr(sp + 2));
      u.next = std::max(u.next, u.entries.back().first + 1);
    }
    return u;
  }
};

std::string msg_base(const std::string& name) {
  auto i = name.find(":2,");
  return i == std::string::npos ? name : name.substr(0, i);
}

void write_atomic(const std::string& path, const std::string& data, int64_t mtime_ns, const GenOptions& g) {
  std::string tmp = path + ".gen-tmp";
  write_file(tmp, data, mtime_ns);
  own(tmp, g);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename " + tmp);
}

void append(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  if (fd < 0) fail("open " + path);
  if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) fail("append " + path);
  ::close(fd);
}

void pwrite_at(const std::string& path, const std::string& data, off_t off) {
  int fd = ::open(path.c_str(), O_WRONLY);
  if (fd < 0) fail("open " + path);
  if (::pwrite(fd, data.data(), data.size(), off) != static_cast<ssize_t>(data.size())) fail("pwrite " + path);
  ::close(fd);
}

std::string index_bytes(const UidList& ul, std::mt19937_64& rnd) {
  std::string s = "DIDX";
  s.resize(256, '\0');
  for (const auto& [uid, name] : ul.entries) {
    std::string rec(48, '\0');
    std::memcpy(rec.data(), &uid, 8);
    uint8_t flags = static_cast<uint8_t>(name.size() % 7);
    rec[8] = static_cast<char>(flags);
    for (int i = 9; i < 48; ++i) rec[i] = static_cast<char>((uid * 31 + static_cast<uint64_t>(i)) & 0xff);
    s += rec;
  }
  (void)rnd;
  return s;
}

std::string cache_record(std::mt19937_64& rnd, uint64_t uid, int avg) {
  std::string r(static_cast<size_t>(avg / 2 + static_cast<int>(rnd() % static_cast<uint64_t>(avg))), 'c');
  std::memcpy(r.data(), &uid, 8);
  for (size_t i = 8; i < r.size(); ++i) r[i] = static_cast<char>('a' + rnd() % 26);
  return r;
}

// Lists message files of a folder: base -> (sub, name).
std::map<std::string, std::pair<std::string, std::string>> scan_folder(const std::string& fdir) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const char* sub : {"cur", "new"})
    for (const auto& e : fs::directory_iterator(fdir + "/" + sub))
      out[msg_base(e.path().filename())] = {sub, e.path().filename()};
  return out;
}

void make_folder(const std::string& home, const std::string& f, bool keywords, int messages, uint64_t seed,
                 uint64_t& counter, const GenOptions& g, std::map<std::string, std::string>* paths_out) {
  std::mt19937_64 rnd(seed * 7919 + std::hash<std::string>{}(f));
  std::string fdir = folder_path(home, f);
  mkdir_p(fdir, g);
  for (const char* sub : {"cur", "new", "tmp"}) mkdir_p(fdir + "/" + sub, g);
  if (!f.empty()) {
    write_file(fdir + "/maildirfolder", "", kBase * kNs);
    own(fdir + "/maildirfolder", g);
  }
  UidList ul;
  ul.uidvalidity = static_cast<uint64_t>(kBase) + std::hash<std::string>{}(f) % 1000;
  ul.guid = "0123456789abcdef0123456789abcd" + std::to_string(10 + f.size());
  std::string cache = "DCAC";
  cache.resize(64, '\0');
  std::string log = "DLOG";
  for (int i = 0; i < messages; ++i) {
    int64_t ts = kBase + static_cast<int64_t>(i) * 3600;
    std::string data = body(rnd, 300 + rnd() % 3000);
    std::string base = base_name(ts, ++counter) + std::to_string(data.size());
    bool in_new = (i >= messages - 3);
    std::string flags = (rnd() % 10 < 8 ? "S" : "") + std::string(rnd() % 10 == 0 ? "F" : "");
    if (keywords && rnd() % 8 == 0) flags += "a";
    std::sort(flags.begin(), flags.end());
    std::string name = in_new ? base : base + ":2," + flags;
    std::string path = fdir + (in_new ? "/new/" : "/cur/") + name;
    // mtime = INTERNALDATE, with nanoseconds so ns precision is checked.
    write_file(path, data, ts * kNs + static_cast<int64_t>(rnd() % 999'999'999));
    own(path, g);
    ul.next += 1 + (rnd() % 5 == 0 ? 2 : 0);
    ul.entries.emplace_back(ul.next - 1, name);
    cache += cache_record(rnd, ul.next - 1, g.cache_record_bytes);
    log += std::string(40, static_cast<char>('0' + i % 10));
    if (paths_out) (*paths_out)[path] = name;
  }
  int64_t t = (kBase + 86400 * 400) * kNs + 123;
  write_file(fdir + "/dovecot-uidlist", ul.text(), t);
  if (keywords) write_file(fdir + "/dovecot-keywords", "0 $Junk\n1 $NonJunk\n2 $label1\n", t);
  write_file(fdir + "/dovecot.index", index_bytes(ul, rnd), t);
  write_file(fdir + "/dovecot.index.cache", cache, t);
  write_file(fdir + "/dovecot.index.log", log, t);
  for (const char* n : {"dovecot-uidlist", "dovecot-keywords", "dovecot.index", "dovecot.index.cache", "dovecot.index.log"})
    if (fs::exists(fdir + "/" + n)) own(fdir + "/" + n, g);
}

}  // namespace

void write_file(const std::string& path, const std::string& data, int64_t mtime_ns, int mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode);
  if (fd < 0) fail("create " + path);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) fail("write " + path);
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  if (mtime_ns >= 0) set_mtime(path, mtime_ns);
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void run_shell(const std::string& command) {
  int rc = std::system(command.c_str());
  if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + command);
}

void generate_home(const std::string& home, const GenOptions& g) {
  mkdir_p(home, g);
  mkdir_p(home + "/Maildir", g);
  uint64_t counter = 0;
  std::map<std::string, std::string> inbox;
  std::vector<int> share = {50, 25, 15, 10};
  for (size_t i = 0; i < kFolders.size(); ++i)
    make_folder(home, kFolders[i].dir, kFolders[i].keywords, g.messages * share[i] / 100, g.seed, counter, g,
                i == 0 ? &inbox : nullptr);
  // Dovecot COPY: hard links of INBOX messages in .Archive (uidlist updated).
  std::string arch = folder_path(home, ".Archive");
  UidList ul = UidList::parse(read_whole(arch + "/dovecot-uidlist"));
  int n = 0;
  for (const auto& [path, name] : inbox) {
    if (n++ >= g.hard_links) break;
    if (path.find("/cur/") == std::string::npos) continue;
    std::string to = arch + "/cur/" + name;
    if (::link(path.c_str(), to.c_str()) != 0) fail("link " + to);
    ul.entries.emplace_back(ul.next++, name);
  }
  write_file(arch + "/dovecot-uidlist", ul.text(), (kBase + 86400 * 401) * kNs);
  own(arch + "/dovecot-uidlist", g);
  std::string md = home + "/Maildir";
  int64_t t = (kBase + 86400 * 400) * kNs + 456;
  write_file(md + "/subscriptions", "V\t2\n\nSent\nArchive\nLists\tdev\n", t);
  write_file(md + "/dovecot-uidvalidity", "6553f200", t);
  write_file(md + "/dovecot-uidvalidity.6553f200", "", t, 0444);
  write_file(md + "/maildirsize", "1073741824S,0C\n123456 300\n", t);
  write_file(md + "/dovecot.list.index.log", std::string(3000, 'L'), t);
  // Courier keywords (a directory of small files).
  mkdir_p(md + "/courierimapkeywords", g);
  write_file(md + "/courierimapkeywords/:list", "$Junk\n\n", t);
  mkdir_p(home + "/sieve", g);
  write_file(home + "/sieve/main.sieve", "require [\"fileinto\"];\nfileinto \"Lists/dev\";\n", t);
  write_file(home + "/sieve/main.svbin", std::string(1800, 'B'), t);
  if (::symlink("sieve/main.sieve", (home + "/.dovecot.sieve").c_str()) != 0) fail("symlink");
  for (const auto& p : {md + "/subscriptions", md + "/dovecot-uidvalidity", md + "/dovecot-uidvalidity.6553f200",
                        md + "/maildirsize", md + "/dovecot.list.index.log", md + "/courierimapkeywords/:list",
                        home + "/sieve/main.sieve", home + "/sieve/main.svbin", home + "/.dovecot.sieve"})
    own(p, g);
  set_mtime(home + "/.dovecot.sieve", t);
  // Directory mtimes last (creating entries changed them).
  int64_t dt = (kBase + 86400 * 402) * kNs + 789;
  for (auto it = fs::recursive_directory_iterator(home); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_directory() && !it->is_symlink()) set_mtime(it->path(), dt);
  set_mtime(home, dt);
}

void mutate_home(const std::string& home, const MutateOptions& m, const GenOptions& g) {
  std::mt19937_64 rnd(g.seed * 104729 + static_cast<uint64_t>(m.day));
  int64_t day_ns = (kBase + 86400 * (500 + m.day)) * kNs;
  uint64_t counter = 10'000'000ull + static_cast<uint64_t>(m.day) * 10000;
  std::set<std::string> touched;
  auto fdir = [&](const std::string& f) { return folder_path(home, f); };
  // Deliveries: 80% INBOX.
  for (int i = 0; i < m.deliveries; ++i) {
    std::string f = (rnd() % 10 < 8) ? "" : kFolders[1 + rnd() % 3].dir;
    if (!fs::exists(fdir(f))) f = "";
    std::string data = body(rnd, 400 + rnd() % 2000);
    int64_t ts = kBase + 86400 * (500 + m.day) + i;
    std::string name = base_name(ts, ++counter) + std::to_string(data.size());
    write_file(fdir(f) + "/tmp/" + name, data, ts * kNs + 5);
    own(fdir(f) + "/tmp/" + name, g);
    if (::rename((fdir(f) + "/tmp/" + name).c_str(), (fdir(f) + "/new/" + name).c_str()) != 0) fail("deliver");
    UidList ul = UidList::parse(read_whole(fdir(f) + "/dovecot-uidlist"));
    // Dovecot appends new records without touching the header's N.
    append(fdir(f) + "/dovecot-uidlist", std::to_string(ul.next) + " :" + name + "\n");
    append(fdir(f) + "/dovecot.index.cache", cache_record(rnd, ul.next, g.cache_record_bytes));
    touched.insert(f);
  }
  // Flag changes: renames in cur/ or new/ -> cur/.
  for (int i = 0; i < m.flag_changes; ++i) {
    std::string f = kFolders[rnd() % kFolders.size()].dir;
    if (!fs::exists(fdir(f))) continue;
    auto msgs = scan_folder(fdir(f));
    if (msgs.empty()) continue;
    auto it = msgs.begin();
    std::advance(it, static_cast<long>(rnd() % msgs.size()));
    auto [sub, name] = it->second;
    std::string base = it->first;
    std::string flags = name.find(":2,") == std::string::npos ? "" : name.substr(name.find(":2,") + 3);
    if (flags.find('F') == std::string::npos) flags += "F";
    else flags.erase(flags.find('F'), 1);
    std::sort(flags.begin(), flags.end());
    std::string to = fdir(f) + "/cur/" + base + ":2," + flags;
    if (::rename((fdir(f) + "/" + sub + "/" + name).c_str(), to.c_str()) != 0) fail("flag rename");
    touched.insert(f);
  }
  // COPY (hard link) and MOVE (link + unlink) out of INBOX.
  for (int c = 0; c < m.copies + m.moves; ++c) {
    auto msgs = scan_folder(fdir(""));
    if (msgs.empty()) break;
    auto it = msgs.begin();
    std::advance(it, static_cast<long>(rnd() % msgs.size()));
    auto [sub, name] = it->second;
    bool move = c >= m.copies;
    std::string dest = move ? ".Sent" : ".Archive";
    std::string to = fdir(dest) + "/cur/" + name;
    if (fs::exists(to)) continue;
    if (::link((fdir("") + "/" + sub + "/" + name).c_str(), to.c_str()) != 0) fail("copy link");
    UidList dl = UidList::parse(read_whole(fdir(dest) + "/dovecot-uidlist"));
    append(fdir(dest) + "/dovecot-uidlist", std::to_string(dl.next) + " :" + name + "\n");
    if (move) ::unlink((fdir("") + "/" + sub + "/" + name).c_str());
    touched.insert(dest);
    touched.insert("");
  }
  // Expunges: unlink, then the uidlist rewritten (tmp + rename) without them.
  std::map<std::string, std::set<std::string>> gone;
  for (int i = 0; i < m.expunges; ++i) {
    std::string f = kFolders[rnd() % kFolders.size()].dir;
    if (!fs::exists(fdir(f))) continue;
    auto msgs = scan_folder(fdir(f));
    if (msgs.empty()) continue;
    auto it = msgs.begin();
    std::advance(it, static_cast<long>(rnd() % msgs.size()));
    ::unlink((fdir(f) + "/" + it->second.first + "/" + it->second.second).c_str());
    gone[f].insert(it->first);
    touched.insert(f);
  }
  for (const auto& [f, bases] : gone) {
    UidList ul = UidList::parse(read_whole(fdir(f) + "/dovecot-uidlist"));
    std::vector<std::pair<uint64_t, std::string>> keep;
    for (auto& e : ul.entries)
      if (!bases.count(msg_base(e.second))) keep.push_back(e);
    ul.entries = keep;
    write_atomic(fdir(f) + "/dovecot-uidlist", ul.text(), day_ns + 1, g);
  }
  if (m.add_folder) {
    uint64_t c2 = counter + 5000;
    make_folder(home, ".Projects", false, 20, g.seed + static_cast<uint64_t>(m.day), c2, g, nullptr);
    append(home + "/Maildir/subscriptions", "Projects\n");
  }
  if (m.remove_folder && fs::exists(fdir(".Lists.dev"))) {
    fs::remove_all(fdir(".Lists.dev"));
    touched.erase(".Lists.dev");
  }
  // Index files of touched folders.
  for (const auto& f : touched) {
    if (!fs::exists(fdir(f))) continue;
    UidList ul = UidList::parse(read_whole(fdir(f) + "/dovecot-uidlist"));
    write_atomic(fdir(f) + "/dovecot.index", index_bytes(ul, rnd), day_ns + 2, g);
    append(fdir(f) + "/dovecot.index.log", std::string(64, static_cast<char>('a' + m.day % 26)));
    // The cache header is rewritten in place (pwrite), as Dovecot does.
    pwrite_at(fdir(f) + "/dovecot.index.cache", std::string(8, static_cast<char>('0' + m.day % 10)), 12);
    for (const char* n : {"dovecot.index.log", "dovecot.index.cache", "dovecot-uidlist"})
      set_mtime(fdir(f) + "/" + n, day_ns + 3);
  }
  append(home + "/Maildir/maildirsize", std::to_string(m.deliveries * 1000) + " " + std::to_string(m.deliveries) + "\n");
  set_mtime(home + "/Maildir/maildirsize", day_ns + 4);
}

namespace {

struct Node {
  char type;  // f d l o
  struct stat st;
  std::string link;
};

void walk(const std::string& root, const std::string& rel, const CompareOptions& o, std::map<std::string, Node>& out) {
  std::string dir = rel.empty() ? root : root + "/" + rel;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  bool is_tmp = fs::path(dir).filename() == "tmp" && fs::exists(fs::path(dir).parent_path() / "cur");
  for (const auto& n : names) {
    std::string r = rel.empty() ? n : rel + "/" + n;
    if (is_tmp && o.skip_tmp_contents) continue;
    Node node;
    if (::lstat((root + "/" + r).c_str(), &node.st) != 0) fail("lstat " + r);
    if (S_ISDIR(node.st.st_mode)) node.type = 'd';
    else if (S_ISREG(node.st.st_mode)) node.type = 'f';
    else if (S_ISLNK(node.st.st_mode)) {
      node.type = 'l';
      node.link = fs::read_symlink(root + "/" + r);
    } else node.type = 'o';
    out[r] = node;
    if (node.type == 'd') walk(root, r, o, out);
  }
}

int64_t mt(const struct stat& s) { return static_cast<int64_t>(s.st_mtim.tv_sec) * kNs + s.st_mtim.tv_nsec; }

}  // namespace

std::vector<std::string> compare_trees(const std::string& a, const std::string& b, const CompareOptions& o) {
  std::vector<std::string> diffs;
  auto add = [&](std::string s) {
    if (diffs.size() < 20) diffs.push_back(std::move(s));
  };
  std::map<std::string, Node> A, B;
  walk(a, "", o, A);
  walk(b, "", o, B);
  struct stat ra, rb;
  ::lstat(a.c_str(), &ra);
  ::lstat(b.c_str(), &rb);
  A[""] = Node{'d', ra, ""};
  B[""] = Node{'d', rb, ""};
  // Hard-link groups: the set of names sharing an inode must be the same.
  std::map<ino_t, std::set<std::string>> ga, gb;
  for (const auto& [p, n] : A)
    if (n.type == 'f' && n.st.st_nlink > 1) ga[n.st.st_ino].insert(p);
  for (const auto& [p, n] : B)
    if (n.type == 'f' && n.st.st_nlink > 1) gb[n.st.st_ino].insert(p);
  std::set<std::set<std::string>> sa, sb;
  for (auto& [_, s] : ga) sa.insert(s);
  for (auto& [_, s] : gb) sb.insert(s);
  if (sa != sb) add("hard-link groups differ (" + std::to_string(sa.size()) + " vs " + std::to_string(sb.size()) + ")");
  for (const auto& [p, x] : A) {
    auto it = B.find(p);
    if (it == B.end()) {
      add("missing in copy: " + p);
      continue;
    }
    const Node& y = it->second;
    if (x.type != y.type) {
      add("type differs: " + p);
      continue;
    }
    if ((x.st.st_mode & 07777) != (y.st.st_mode & 07777)) add("mode differs: " + p);
    if (x.st.st_uid != y.st.st_uid || x.st.st_gid != y.st.st_gid) add("owner differs: " + p);
    if (x.type == 'l' && x.link != y.link) add("symlink target differs: " + p);
    if (x.type == 'd' && !o.dir_mtimes) continue;
    if (mt(x.st) != mt(y.st)) add("mtime differs: " + p + " " + std::to_string(mt(x.st)) + " vs " + std::to_string(mt(y.st)));
    if (x.type == 'f') {
      if (x.st.st_size != y.st.st_size) add("size differs: " + p);
      else if (read_whole(a + "/" + p) != read_whole(b + "/" + p)) add("content differs: " + p);
      if (x.st.st_nlink != y.st.st_nlink) add("link count differs: " + p);
    }
  }
  for (const auto& [p, y] : B)
    if (!A.count(p)) add("extra in copy: " + p);
  return diffs;
}

}  // namespace mailshard::testing
