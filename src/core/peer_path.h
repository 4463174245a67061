// The data path of a move between two servers (docs/config.md,
// peer_command / peer_transport): straight from server to server, the
// destination's agent pulling from the source's (Transport::pull), or
// through the controller.
#pragma once

#include <optional>

#include "core/config.h"
#include "core/transport.h"
#include "util/result.h"

namespace mailshard {

// The peer `to`'s agent opens to pull from `from`, or nullopt for the path
// through the controller. Direct needs both servers behind agents and
// `from`'s peer_command; `to`'s peer_transport chooses: "auto" goes direct
// when it can, "via-controller" never does, and "direct" that cannot is
// kInvalidInput, naming both servers and the missing key.
Result<std::optional<PeerRef>> direct_peer(const ServerConfig& from, const ServerConfig& to);

}  // namespace mailshard
