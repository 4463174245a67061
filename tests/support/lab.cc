// tests/support/lab.cc — see lab.h.
#include "tests/support/lab.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mailshard::testing {
namespace {

constexpr const char* kPython = "/usr/bin/python3";  // not `python3`: the PATH one is a slow shim
// Once the command exited, how long to keep reading pipes a leftover grandchild may hold open.
constexpr auto kDrainAfterExit = std::chrono::seconds(2);

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

std::string base64_decode(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char c : in) {
    auto pos = chars.find(static_cast<char>(c));
    if (pos == std::string::npos) continue;  // '=' padding, whitespace
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

// RFC 4515: a value inside an LDAP filter.
std::string filter_escape(const std::string& v) {
  std::string out;
  for (unsigned char c : v) {
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "\\%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

using Entry = std::multimap<std::string, std::string>;  // lower-case attribute -> value; "dn"

// ldapsearch -LLL -o ldif-wrap=no output -> entries.
std::vector<Entry> parse_ldif(const std::string& text) {
  std::vector<Entry> entries;
  Entry cur;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      if (!cur.empty()) entries.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    if (line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon), value = line.substr(colon + 1);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!value.empty() && value[0] == ':') {
      value = base64_decode(value.substr(1));
    } else if (!value.empty() && value[0] == ' ') {
      value.erase(0, 1);
    }
    cur.emplace(name, value);
  }
  if (!cur.empty()) entries.push_back(std::move(cur));
  return entries;
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

std::string RunResult::describe() const {
  std::string s = "rc=" + std::to_string(rc);
  if (timed_out) s += " (timed out)";
  if (!err.empty()) s += " stderr: " + trim(err);
  if (!out.empty()) s += " stdout: " + trim(out.substr(0, 2000));
  return s;
}

Lab& Lab::get() {
  // A throwing initializer leaves the static uninitialized: every test then fails the same way.
  static Lab lab = [] {
    const char* dir = std::getenv("MAILSHARD_LAB_DIR");
    if (dir == nullptr || *dir == '\0') {
      throw LabError(
          "MAILSHARD_LAB_DIR is not set: integration tests need a running lab. Run them with ctest "
          "(the 'lab' fixture starts one), or: tests/lab/lab.sh start /tmp/lab && "
          "MAILSHARD_LAB_DIR=/tmp/lab <test binary>");
    }
    return Lab(dir);
  }();
  return lab;
}

Lab::Lab(std::string dir) : dir_(std::move(dir)) {
  std::string path = dir_ + "/lab.env";
  std::ifstream in(path);
  if (!in) {
    throw LabError("MAILSHARD_LAB_DIR=" + dir_ + " holds no lab.env: start the lab first (tests/lab/lab.sh start " +
                   dir_ + ")");
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) throw LabError(path + ": malformed line '" + line + "'");
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    env_[line.substr(0, eq)] = value;
  }
}

std::string Lab::env(const std::string& key) const {
  auto it = env_.find(key);
  if (it == env_.end()) throw LabError(dir_ + "/lab.env has no " + key);
  return it->second;
}

std::string Lab::store_env(const std::string& store, const std::string& suffix) const {
  return env(upper(store) + "_" + suffix);
}

std::vector<std::string> Lab::stores() const {
  std::vector<std::string> out;
  std::istringstream in(env("STORES"));
  for (std::string s; in >> s;) out.push_back(s);
  return out;
}

RunResult Lab::run(std::vector<std::string> argv, std::string stdin_data, int timeout_s) const {
  if (argv.empty()) throw LabError("Lab::run: empty argv");
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    throw LabError(std::string("Lab::run: pipe: ") + std::strerror(errno));
  }
  // A command that exits without reading its stdin must not kill us with SIGPIPE: block it in
  // this thread, and swallow the pending one before restoring the mask.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);

  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
    pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
    throw LabError(std::string("Lab::run: fork: ") + std::strerror(e));
  }
  if (pid == 0) {  // child: only async-signal-safe calls from here on
    setpgid(0, 0);  // so a timeout can kill everything it started
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &old_set, nullptr);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvp(cargv[0], cargv.data());
    const char msg[] = "Lab::run: exec failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  int in_fd = in[1];
  set_nonblocking(in_fd);
  if (stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  }

  RunResult result;
  int out_fd = out[0], err_fd = err[0];
  size_t written = 0;
  int status = 0;
  bool exited = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  auto drain_deadline = std::chrono::steady_clock::time_point::max();
  char buf[65536];
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      result.timed_out = !exited;
      break;
    }
    if (now >= drain_deadline) break;
    pollfd fds[3];
    int n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    int rc = poll(fds, n, 100);
    if (rc < 0 && errno != EINTR) break;
    for (int i = 0; i < n && rc > 0; ++i) {
      if (fds[i].revents == 0) continue;
      int fd = fds[i].fd;
      if (fd == in_fd) {
        ssize_t w = write(fd, stdin_data.data() + written, stdin_data.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_data.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        (fd == out_fd ? result.out : result.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fd);
        (fd == out_fd ? out_fd : err_fd) = -1;
      }
    }
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      drain_deadline = std::chrono::steady_clock::now() + kDrainAfterExit;
      if (in_fd >= 0) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) close(fd);
  }
  // Its pipes are closed; it may still be running (or have closed them early).
  while (!exited && !result.timed_out) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
    } else if (std::chrono::steady_clock::now() >= deadline) {
      result.timed_out = true;
    } else {
      usleep(10'000);
    }
  }
  if (!exited) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  sigset_t pending;
  sigpending(&pending);
  if (sigismember(&pending, SIGPIPE)) {
    timespec zero{0, 0};
    sigtimedwait(&pipe_set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);

  if (WIFEXITED(status)) {
    result.rc = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.rc = 128 + WTERMSIG(status);
  }
  return result;
}

RunResult Lab::run_script(const std::string& script, std::vector<std::string> args, int timeout_s) const {
  std::vector<std::string> argv = {kPython, env("LAB_SCRIPTS") + "/" + script, "--lab", dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(std::move(argv), {}, timeout_s);
}

void Lab::check_rc(const RunResult& r, const std::string& what) const {
  if (r.rc != 0) throw LabError(what + " failed: " + r.describe());
}

nlohmann::json Lab::run_json(const std::string& script, std::vector<std::string> args) const {
  std::string what = script;
  for (const auto& a : args) what += " " + a;
  RunResult r = run_script(script, std::move(args));
  check_rc(r, what);
  try {
    return nlohmann::json::parse(r.out);
  } catch (const nlohmann::json::exception& e) {
    throw LabError(what + ": output is not JSON (" + e.what() + "): " + r.out.substr(0, 500));
  }
}

nlohmann::json Lab::deliver(const std::string& user, int count, const std::string& tag,
                            std::vector<std::string> extra_args) const {
  std::vector<std::string> args = {"--user", user, "--count", std::to_string(count), "--tag", tag};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return run_json("deliver.py", std::move(args));
}

nlohmann::json Lab::imap_state(const std::string& user, const std::string& via, bool detail) const {
  std::vector<std::string> args = {"--user", user, "--via", via};
  if (detail) args.push_back("--detail");
  return run_json("imap_state.py", std::move(args));
}

int Lab::ldap_modify_assert(const std::string& dn, const std::string& ldif,
                            const std::string& assertion_filter) const {
  std::vector<std::string> argv = {"ldapmodify", "-x", "-H", env("LDAP_URI"), "-D", env("LDAP_ADMIN_DN"),
                                   "-y", env("LDAP_ADMIN_PW_FILE")};
  if (!assertion_filter.empty()) {
    argv.push_back("-e");
    argv.push_back("!assert=" + assertion_filter);
  }
  std::string input = "dn: " + dn + "\nchangetype: modify\n" + ldif;
  if (input.back() != '\n') input += "\n";
  return run(std::move(argv), input, 30).rc;
}

namespace {
Entry find_user_entry(const Lab& lab, const std::string& user, const std::vector<std::string>& attrs) {
  std::string v = filter_escape(user);
  std::vector<std::string> argv = {"ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", lab.env("LDAP_URI"),
                                   "-D", lab.env("LDAP_READER_DN"), "-y", lab.env("LDAP_READER_PW_FILE"),
                                   "-b", lab.env("LDAP_PEOPLE"),
                                   "(&(objectClass=mlabMailAccount)(|(mail=" + v + ")(uid=" + v + ")))"};
  argv.insert(argv.end(), attrs.begin(), attrs.end());
  RunResult r = lab.run(argv, {}, 30);
  if (r.rc != 0) throw LabError("ldapsearch for " + user + " failed: " + r.describe());
  auto entries = parse_ldif(r.out);
  if (entries.empty()) throw LabError("no LDAP mail account for '" + user + "'");
  if (entries.size() > 1) throw LabError("'" + user + "' matches " + std::to_string(entries.size()) + " LDAP entries");
  return entries.front();
}
}  // namespace

std::optional<std::string> Lab::ldap_get(const std::string& user, const std::string& attr) const {
  Entry e = find_user_entry(*this, user, {attr});
  std::string key = attr;
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
  auto it = e.find(key);
  if (it == e.end()) return std::nullopt;
  return it->second;
}

std::string Lab::user_dn(const std::string& user) const {
  Entry e = find_user_entry(*this, user, {"1.1"});  // 1.1: no attributes, just the DN
  return e.find("dn")->second;
}

int Lab::populate(int n, int first, const std::string& stores) const {
  std::vector<std::string> argv = {env("LAB_SCRIPTS") + "/lab.sh", "populate", dir_, "--users", std::to_string(n),
                                   "--first", std::to_string(first)};
  if (!stores.empty()) {
    argv.push_back("--stores");
    argv.push_back(stores);
  }
  RunResult r = run(std::move(argv));
  check_rc(r, "lab.sh populate --users " + std::to_string(n) + " --first " + std::to_string(first));
  try {
    return std::stoi(r.out);
  } catch (const std::exception&) {
    throw LabError("lab.sh populate printed no count: " + r.describe());
  }
}

std::string Lab::add_user(const std::string& store) const {
  // Start somewhere that depends on the pid, so a rerun against the same lab takes new users.
  // user50000..user69999 only: tests that need a block of users of their own (the
  // rebalance scenarios, whose LDAP filter is "uid=user71*") take theirs from 70000 up.
  static std::atomic<int> next{static_cast<int>(getpid() % 20000)};
  for (int attempt = 0; attempt < 200; ++attempt) {
    int n = 50000 + next++ % 20000;
    if (populate(1, n, store) == 1) {
      char name[32];
      std::snprintf(name, sizeof name, "user%05d@example.org", n);
      return name;
    }
  }
  throw LabError("add_user: found no free user number");
}

nlohmann::json Lab::fill_mailbox(const std::string& user, int messages, int seed, const std::string& via,
                                 const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {"--user", user, "--messages", std::to_string(messages), "--seed",
                                   std::to_string(seed)};
  if (!via.empty()) {
    args.push_back("--via");
    args.push_back(via);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return run_json("fill_mailbox.py", std::move(args));
}

std::string Lab::home_path(const std::string& store, const std::string& user) const {
  auto rel = ldap_get(user, "mailMessageStore");
  if (!rel || rel->empty() || rel->front() == '/' || rel->find("..") != std::string::npos) {
    throw LabError("'" + user + "' has no usable mailMessageStore");
  }
  return store_env(store, "MAIL_ROOT") + "/" + *rel;
}

std::string Lab::maildir_path(const std::string& store, const std::string& user) const {
  return home_path(store, user) + "/Maildir";
}

std::string Lab::last_auth_decision(const std::string& user) const {
  std::ifstream in(env("AUTH_HTTP_LOG"));
  std::string line, last;
  const std::string needle = " user=" + user + " ";
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) last = line;
  }
  return last;
}

void expect_same_imap_state(const nlohmann::json& before, const nlohmann::json& after) {
  ASSERT_EQ(before["folders"].size(), after["folders"].size());
  for (const auto& [name, f] : before["folders"].items()) {
    SCOPED_TRACE("folder " + name);
    ASSERT_TRUE(after["folders"].contains(name));
    const auto& g = after["folders"][name];
    EXPECT_EQ(f["uidvalidity"], g["uidvalidity"]);
    EXPECT_EQ(f["uidnext"], g["uidnext"]);
    EXPECT_EQ(f["messages"], g["messages"]);
    EXPECT_EQ(f["hash"], g["hash"]);
    if (f.contains("detail")) {
      EXPECT_EQ(f["detail"], g["detail"]);  // uid, flags, INTERNALDATE (file mtime), size, Message-ID
    }
  }
  if (before.contains("subscriptions")) {
    EXPECT_EQ(before["subscriptions"], after["subscriptions"]);
  }
  if (before.contains("hash")) {
    EXPECT_EQ(before["hash"], after["hash"]);
  }
}

}  // namespace mailshard::testing
