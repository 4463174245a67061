#include "transport/transport_factory.h"

#include <fmt/format.h>

#include "store/root_store.h"
#include "transport/agent_transport.h"
#include "util/subprocess.h"

namespace mailshard {

Result<std::unique_ptr<Transport>> make_local_transport(const std::string& root, int max_streams,
                                                        const std::string& name) {
  store::RootStore::Options o;
  o.name = name.empty() ? "local:" + root : name;
  o.max_streams = max_streams;
  auto s = store::RootStore::open(root, o);
  if (!s.ok()) return std::move(s).error();
  return std::unique_ptr<Transport>(std::move(*s));
}

Result<std::unique_ptr<Transport>> make_server_transport(const ServerConfig& server, int max_streams) {
  if (server.transport == TransportKind::kLocal)
    return make_local_transport(server.mail_root, max_streams, fmt::format("local:{}", server.name));
  AgentOptions o;
  o.argv = MS_TRY(split_command_line(server.agent_command).context(fmt::format("server {}", server.name)));
  o.name = fmt::format("agent:{}", server.name);
  o.max_streams = max_streams;
  return make_agent_transport(o);
}

}  // namespace mailshard
