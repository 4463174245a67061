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
//
// PULL (the direct data path) makes this agent a client of a peer agent: it
// opens the peer once per session (PeerOpener), copies the requested files
// from it into its own store with copy_files(), and answers with the
// outcomes only. A peer that fails to start or dies mid-stream fails that
// PULL with an ERROR naming the peer; nothing of it is published.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/transport.h"
#include "util/result.h"

namespace mailshard::agent {

// Opens the transport of a peer server for PULL (the direct data path): the
// caller decides how (the CLI starts peer.argv as an agent). Empty: this
// agent refuses PULL.
using PeerOpener = std::function<Result<std::unique_ptr<Transport>>(const PeerRef& peer)>;

class AgentServer {
 public:
  // Does not own the fds or the transport.
  AgentServer(Transport& store, int in_fd, int out_fd, std::string description, PeerOpener open_peer = {})
      : store_(store), in_(in_fd), out_(out_fd), description_(std::move(description)),
        open_peer_(std::move(open_peer)) {}

  // Runs the session until BYE or until the client closes the stream (both
  // are a clean end). Errors: kCorrupt / kInvalidInput for protocol
  // violations, kUnavailable if the client vanished mid-frame.
  Status serve();

 private:
  Transport& store_;
  int in_, out_;
  std::string description_;
  PeerOpener open_peer_;
};

}  // namespace mailshard::agent
