#include "util/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {
namespace {

int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// argv and environment of a child, built before fork: between fork and exec
// a multithreaded parent's child may not allocate.
struct ExecArgs {
  std::vector<char*> args;
  std::vector<char*> env;  // our environment minus the secrets
};

ExecArgs prepare_exec(const std::vector<std::string>& argv) {
  ExecArgs x;
  x.args.reserve(argv.size() + 1);
  for (const auto& a : argv) x.args.push_back(const_cast<char*>(a.c_str()));
  x.args.push_back(nullptr);
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    if (!is_secret_env_name(entry.substr(0, entry.find('=')))) x.env.push_back(*e);
  }
  x.env.push_back(nullptr);
  return x;
}

// Exec helper run in the child. Reports exec failure through `errpipe`.
[[noreturn]] void exec_child(const ExecArgs& x, int errpipe) {
  // Children get default signal dispositions; SIGPIPE must kill them normally.
  signal(SIGPIPE, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  execvpe(x.args[0], x.args.data(), x.env.data());
  int e = errno;
  (void)!write(errpipe, &e, sizeof e);
  _exit(127);
}

// Waits for the exec status pipe: returns 0 if exec succeeded, errno otherwise.
int exec_status(int errpipe_read) {
  int e = 0;
  ssize_t n;
  do n = read(errpipe_read, &e, sizeof e);
  while (n < 0 && errno == EINTR);
  close(errpipe_read);
  return n == static_cast<ssize_t>(sizeof e) ? e : 0;
}

}  // namespace

bool is_secret_env_name(std::string_view name) {
  if (name.substr(0, 10) != "MAILSHARD_") return false;
  for (std::string_view word : {"PASSWORD", "TOKEN", "SECRET"})
    if (name.find(word) != std::string_view::npos) return true;
  return false;
}

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const std::string& stdin_data,
                                  int64_t timeout_ms) {
  if (argv.empty()) return Error::invalid("empty command");
  const ExecArgs x = prepare_exec(argv);
  int in[2], out[2], err[2], ep[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(ep, O_CLOEXEC))
    return Error::from_errno(errno, "pipe");
  pid_t pid = fork();
  if (pid < 0) return Error::from_errno(errno, "fork");
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    exec_child(x, ep[1]);
  }
  setpgid(pid, pid);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  close(ep[1]);
  if (int e = exec_status(ep[0]); e != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    int st;
    waitpid(pid, &st, 0);
    return Error::from_errno(e, fmt::format("cannot run '{}'", printable(argv[0])));
  }

  ProcessResult res;
  size_t written = 0;
  if (stdin_data.empty()) {
    close(in[1]);
    in[1] = -1;
  } else {
    fcntl(in[1], F_SETFL, O_NONBLOCK);
  }
  int64_t deadline = timeout_ms > 0 ? mono_ms() + timeout_ms : 0;
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    struct pollfd fds[3];
    int n = 0;
    int idx_out = -1, idx_err = -1, idx_in = -1;
    if (out_open) { fds[n] = {out[0], POLLIN, 0}; idx_out = n++; }
    if (err_open) { fds[n] = {err[0], POLLIN, 0}; idx_err = n++; }
    if (in[1] >= 0) { fds[n] = {in[1], POLLOUT, 0}; idx_in = n++; }
    int wait = -1;
    if (deadline) {
      int64_t left = deadline - mono_ms();
      if (left <= 0) {
        res.timed_out = true;
        kill(-pid, SIGKILL);
        break;
      }
      wait = static_cast<int>(left);
    }
    int r = poll(fds, n, wait);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (idx_in >= 0 && fds[idx_in].revents) {
      ssize_t w = write(in[1], stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) written = stdin_data.size();  // child closed stdin
      if (written >= stdin_data.size()) {
        close(in[1]);
        in[1] = -1;
      }
    }
    auto drain = [&](int idx, int fd, std::string& dst, bool& open) {
      if (idx < 0 || !fds[idx].revents) return;
      ssize_t k = read(fd, buf, sizeof buf);
      if (k > 0) dst.append(buf, static_cast<size_t>(k));
      else if (k == 0 || (errno != EINTR && errno != EAGAIN)) open = false;
    };
    drain(idx_out, out[0], res.out, out_open);
    drain(idx_err, err[0], res.err, err_open);
  }
  if (in[1] >= 0) close(in[1]);
  close(out[0]);
  close(err[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  res.exit_code = decode_status(st);
  return res;
}

Result<ChildProcess> spawn_piped(const std::vector<std::string>& argv) {
  if (argv.empty()) return Error::invalid("empty command");
  const ExecArgs x = prepare_exec(argv);
  int in[2], out[2], ep[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(ep, O_CLOEXEC)) return Error::from_errno(errno, "pipe");
  pid_t pid = fork();
  if (pid < 0) return Error::from_errno(errno, "fork");
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    exec_child(x, ep[1]);
  }
  close(in[0]);
  close(out[1]);
  close(ep[1]);
  if (int e = exec_status(ep[0]); e != 0) {
    close(in[1]);
    close(out[0]);
    int st;
    waitpid(pid, &st, 0);
    return Error::from_errno(e, fmt::format("cannot run '{}'", printable(argv[0])));
  }
  return ChildProcess{pid, in[1], out[0]};
}

int reap_child(ChildProcess& child, int64_t grace_ms) {
  if (child.stdin_fd >= 0) close(child.stdin_fd);
  if (child.stdout_fd >= 0) close(child.stdout_fd);
  child.stdin_fd = child.stdout_fd = -1;
  if (child.pid <= 0) return -1;
  int st = 0;
  int64_t deadline = mono_ms() + grace_ms;
  // A child told to end (an agent after BYE) is usually gone within a few
  // ms: poll from 100 us, doubling to 2 ms, so its caller does not wait a
  // whole 2 ms step for each one.
  useconds_t poll_us = 100;
  while (true) {
    pid_t r = waitpid(child.pid, &st, WNOHANG);
    if (r == child.pid) break;
    if (r < 0 && errno != EINTR) {
      st = -1;
      break;
    }
    if (mono_ms() > deadline) {
      kill(child.pid, SIGKILL);
      waitpid(child.pid, &st, 0);
      break;
    }
    usleep(poll_us);
    poll_us = std::min<useconds_t>(poll_us * 2, 2000);
  }
  child.pid = -1;
  return st < 0 ? -1 : decode_status(st);
}

Result<std::vector<std::string>> split_command_line(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      if (c == quote) quote = 0;
      else if (c == '\\' && quote == '"' && i + 1 < text.size()) cur += text[++i];
      else cur += c;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < text.size()) {
      cur += text[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote) return Error::invalid(fmt::format("unclosed {} quote in command '{}'", quote, printable(text)));
  if (in_word) out.push_back(std::move(cur));
  return out;
}

}  // namespace mailshard
