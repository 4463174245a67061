// Chooses and builds the Transport for a server: the only place that knows
// the concrete transports (the CLI and tests call it; movers never do).
#pragma once

#include <memory>
#include <string>

#include "core/config.h"
#include "core/transport.h"
#include "util/result.h"

namespace mailshard {

// In-process transport on `root` (an absolute directory).
Result<std::unique_ptr<Transport>> make_local_transport(const std::string& root, int max_streams,
                                                        const std::string& name = "");

// The transport a [[server]] is configured with (local: mail_root; agent:
// agent_command), with at most `max_streams` parallel streams.
Result<std::unique_ptr<Transport>> make_server_transport(const ServerConfig& server, int max_streams);

}  // namespace mailshard
