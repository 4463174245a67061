// Running external programs without a shell: argv vectors only, so a user name
// or path can never be interpreted as shell syntax.
//
// Thread-safety: each call is independent; safe from several threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace mailshard {

// Children (agent, freeze and kick commands, ssh) never see our secrets: the
// environment they get is ours minus every MAILSHARD_* variable whose name
// holds PASSWORD, TOKEN or SECRET (MAILSHARD_LDAP_PASSWORD,
// MAILSHARD_DOVEADM_PASSWORD, MAILSHARD_FREEZE_TOKEN, ...).
bool is_secret_env_name(std::string_view name);

struct ProcessResult {
  int exit_code = -1;     // exit status, or 128+signal if killed by a signal
  std::string out;        // captured stdout
  std::string err;        // captured stderr
  bool timed_out = false;
};

// Runs argv[0] (looked up in PATH) with the given stdin and the scrubbed
// environment (is_secret_env_name), waits at most
// timeout_ms (0 = no limit; on timeout the process group is killed and
// timed_out is set). Success means the program ran; check exit_code.
// Errors: kNotFound if the program does not exist, kInternal on fork/pipe failure.
Result<ProcessResult> run_process(const std::vector<std::string>& argv, const std::string& stdin_data = {},
                                  int64_t timeout_ms = 0);

// A child with pipes to its stdin and stdout (stderr is inherited), for
// long-lived peers such as `mailshard agent --stdio` behind ssh.
struct ChildProcess {
  pid_t pid = -1;
  int stdin_fd = -1;   // write end
  int stdout_fd = -1;  // read end
};
Result<ChildProcess> spawn_piped(const std::vector<std::string>& argv);
// Closes the pipes (if still open) and reaps the child, killing it after
// grace_ms. Returns the exit code as in ProcessResult.
int reap_child(ChildProcess& child, int64_t grace_ms = 5000);

// Splits a command line from the config ("ssh -T host mailshard agent --stdio")
// into argv: whitespace separated, with '...' and "..." quoting and backslash
// escapes. No expansion of any kind. Errors: kInvalidInput on an unclosed quote.
Result<std::vector<std::string>> split_command_line(const std::string& text);

}  // namespace mailshard
