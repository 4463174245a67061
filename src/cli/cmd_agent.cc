// mailshard agent --stdio --root MAIL_ROOT: the storage-server end of the
// agent transport. Speaks the framed protocol (docs/agent-protocol.md) on
// stdin/stdout, confined to MAIL_ROOT; logs only to stderr.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/agent_server.h"
#include "store/root_store.h"
#include "transport/agent_transport.h"
#include "cli/cli.h"

namespace mailshard::cli {

Command register_agent(CLI::App& root, Context& ctx) {
  CLI::App* sub = root.add_subcommand(
      "agent", "Serve file operations on a mail root over stdin/stdout (the remote end of the agent transport)");
  struct Opts {
    bool stdio = false;
    bool no_peers = false;
    int peer_timeout_s = 300;
    std::string root;
  };
  auto o = std::make_shared<Opts>();
  sub->add_flag("--stdio", o->stdio, "speak the protocol on stdin/stdout (the only mode)")->required();
  sub->add_option("--root", o->root, "the mail root; no path outside it is ever read or written")->required();
  sub->add_flag("--no-peers", o->no_peers,
                "refuse PULL: never start a peer agent (no direct server-to-server copies to this root)");
  sub->add_option("--peer-timeout", o->peer_timeout_s,
                  "a peer agent that sends nothing for this many seconds is given up (the pull fails); default 300")
      ->check(CLI::Range(1, 86400));
  sub->footer(
      "Started by the agent transport through the server's agent_command, e.g.\n"
      "  ssh -T store2 mailshard agent --stdio --root /srv/mail\n"
      "For the direct data path (peer_transport = \"direct\") the controller asks this agent to run the\n"
      "source server's peer_command here (e.g. ssh -T store1 mailshard agent --stdio --root /srv/mail)\n"
      "and copies from it straight into --root; --no-peers refuses that.\n"
      "Exit codes: 0 the client ended the session, 1 protocol error, 2 bad arguments or root.");
  return {sub, [o]() -> Result<int> {
            store::raise_open_file_limit();
            store::RootStore::Options so;
            so.name = "agent:" + o->root;
            auto store = store::RootStore::open(o->root, so);
            if (!store.ok()) return std::move(store).error().context("agent");
            // PULL: the peer is another agent, started here with the command
            // the controller names (one stream: one PULL at a time per session).
            agent::PeerOpener open_peer;
            if (!o->no_peers) open_peer = [o](const PeerRef& peer) {
              AgentOptions ao;
              ao.argv = peer.argv;
              ao.name = "agent:" + peer.name;
              ao.max_streams = 1;
              // A peer streams while it answers: a silence is a hung peer.
              ao.idle_timeout_ms = int64_t{o->peer_timeout_s} * 1000;
              return make_agent_transport(ao);
            };
            agent::AgentServer server(**store, 0, 1, fmt::format("mailshard 0.1.0 agent on {}", o->root),
                                      std::move(open_peer));
            auto st = server.serve();
            if (!st.ok()) {
              spdlog::error("agent: {}", st.error().message());
              return kExitFailure;
            }
            return kExitOk;
          }};
}

}  // namespace mailshard::cli
