// AgentServer: serves a Transport (in practice a RootStore on the agent's
// --root) over the framed protocol of wire/wire.h on a pair of fds
// (stdin/stdout for `mailshard agent --stdio`). One request at a time; file
// contents stream in both directions without per-file round trips.
//
// The server never trusts the client: frames are bounded, payloads are
// decoded with bounds checks, paths are confined by the store. A protocol
// violation (garbage, an oversized or unexpected frame, a version mismatch)
// is answered with an ERROR frame and ends the session with that error.
// Errors of a request (a missing file, ENOSPC) are answered with ERROR (or
// per-item results) and the session goes on.
#pragma once

#include <string>

#include "core/transport.h"
#include "util/result.h"

namespace mailshard::agent {

class AgentServer {
 public:
  // Does not own the fds or the transport.
  AgentServer(Transport& store, int in_fd, int out_fd, std::string description)
      : store_(store), in_(in_fd), out_(out_fd), description_(std::move(description)) {}

  // Runs the session until BYE or until the client closes the stream (both
  // are a clean end). Errors: kCorrupt / kInvalidInput for protocol
  // violations, kUnavailable if the client vanished mid-frame.
  Status serve();

 private:
  Transport& store_;
  int in_, out_;
  std::string description_;
};

}  // namespace mailshard::agent
