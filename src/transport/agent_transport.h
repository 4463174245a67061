// The agent transport: the client end of the agent protocol. Each channel is
// one `mailshard agent --stdio --root R` process started through the
// configured command (ssh in production, the binary itself in tests), greeted
// with a VERSION handshake. Up to max_streams channels run at once; an
// operation leases one for its duration, a reader or writer for its life.
//
// A channel whose stream broke (the agent died mid-frame, a corrupt or
// unexpected frame) is killed and replaced on the next lease; the operation
// that saw it fails with kUnavailable or kCorrupt and the agent's exit status
// in the message. An ERROR frame (a missing file, ENOSPC) fails only that
// operation and keeps the channel.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/transport.h"
#include "util/result.h"

namespace mailshard {

struct AgentOptions {
  std::vector<std::string> argv;  // starts the agent; its stdin/stdout carry the protocol
  std::string name;               // for messages, e.g. "agent:store2"
  int max_streams = 2;
  // A channel that receives nothing for this long fails (kTimeout): a hung
  // agent. 0 = wait forever (the controller's channels: an agent may work
  // long between two answers).
  int64_t idle_timeout_ms = 0;
};

// Starts one channel right away, so a wrong command or a version mismatch is
// reported here ("agent:store2: agent speaks protocol version 5, this
// mailshard speaks 4"). Errors: kNotFound (no such program), kUnavailable
// (the agent exited), kUnsupported (version), kCorrupt (not an agent).
Result<std::unique_ptr<Transport>> make_agent_transport(const AgentOptions& options);

}  // namespace mailshard
