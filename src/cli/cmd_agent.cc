// mailshard agent --stdio --root MAIL_ROOT: the storage-server end of the
// agent transport. Speaks the framed protocol (docs/agent-protocol.md) on
// stdin/stdout, confined to MAIL_ROOT; logs only to stderr.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/agent_server.h"
#include "store/root_store.h"
#include "cli/cli.h"

namespace mailshard::cli {

Command register_agent(CLI::App& root, Context& ctx) {
  CLI::App* sub = root.add_subcommand(
      "agent", "Serve file operations on a mail root over stdin/stdout (the remote end of the agent transport)");
  struct Opts {
    bool stdio = false;
    std::string root;
  };
  auto o = std::make_shared<Opts>();
  sub->add_flag("--stdio", o->stdio, "speak the protocol on stdin/stdout (the only mode)")->required();
  sub->add_option("--root", o->root, "the mail root; no path outside it is ever read or written")->required();
  sub->footer(
      "Started by the agent transport through the server's agent_command, e.g.\n"
      "  ssh -T store2 mailshard agent --stdio --root /srv/mail\n"
      "Exit codes: 0 the client ended the session, 1 protocol error, 2 bad arguments or root.");
  return {sub, [o]() -> Result<int> {
            store::raise_open_file_limit();
            store::RootStore::Options so;
            so.name = "agent:" + o->root;
            auto store = store::RootStore::open(o->root, so);
            if (!store.ok()) return std::move(store).error().context("agent");
            agent::AgentServer server(**store, 0, 1, fmt::format("mailshard 0.1.0 agent on {}", o->root));
            auto st = server.serve();
            if (!st.ok()) {
              spdlog::error("agent: {}", st.error().message());
              return kExitFailure;
            }
            return kExitOk;
          }};
}

}  // namespace mailshard::cli
