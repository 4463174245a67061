#include "core/peer_path.h"

#include <fmt/format.h>

#include "util/subprocess.h"

namespace mailshard {

Result<std::optional<PeerRef>> direct_peer(const ServerConfig& from, const ServerConfig& to) {
  if (to.peer_transport == PeerTransport::kViaController) return std::optional<PeerRef>();
  const bool agents = from.transport == TransportKind::kAgent && to.transport == TransportKind::kAgent;
  if (!agents || from.peer_command.empty()) {
    if (to.peer_transport == PeerTransport::kAuto) return std::optional<PeerRef>();
    if (!agents)
      return Error::invalid(fmt::format(
          "server {} has peer_transport = \"direct\", but a move from {} to it needs both servers behind agents "
          "(transport = \"agent\")",
          to.name, from.name));
    return Error::invalid(fmt::format(
        "server {} has peer_transport = \"direct\", but the source {} has no peer_command (how {}'s agent reaches {})",
        to.name, from.name, to.name, from.name));
  }
  PeerRef peer;
  peer.name = from.name;
  peer.argv = MS_TRY(split_command_line(from.peer_command).context(fmt::format("server {}: peer_command", from.name)));
  if (peer.argv.empty()) return Error::invalid(fmt::format("server {}: peer_command is empty", from.name));
  return std::optional<PeerRef>(std::move(peer));
}

}  // namespace mailshard
