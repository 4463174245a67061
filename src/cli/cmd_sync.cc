// mailshard sync SRC DST: developer tool: one pass of the sync engine, so the
// engine can be benchmarked and used alone. SRC and DST are
//   SERVER:RELPATH   a home on a configured server (its transport from the config),
//   /ABS/PATH        a local directory (no config needed),
//   agent:/ABS/PATH  a local directory served by this binary as an agent
//                    through a pipe (tests and benchmarks of the agent path).
// With --state FILE the listing of the previous pass is kept between runs,
// so the next run is incremental (readdir-only diff).
#include <unistd.h>

#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store/root_store.h"
#include "cli/cli.h"
#include "movers/sync_engine.h"
#include "core/peer_path.h"
#include "transport/agent_transport.h"
#include "transport/transport_factory.h"
#include "util/fs.h"
#include "util/strings.h"

namespace mailshard::cli {
namespace {

struct Endpoint {
  std::unique_ptr<Transport> transport;
  std::string home;
  const ServerConfig* server = nullptr;  // SERVER:RELPATH
  std::vector<std::string> agent_argv;   // agent:/ABS/PATH: how its agent is started (its peer command)
};

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "mailshard";
  return std::string(buf, static_cast<size_t>(n));
}

// A local path becomes root = its parent, home = its last component, so the
// home itself can be created on the destination.
Result<std::pair<std::string, std::string>> split_local(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty() || p.front() != '/') return Error::invalid(fmt::format("'{}' is not an absolute path", printable(path)));
  auto slash = p.rfind('/');
  std::string root = slash == 0 ? "/" : p.substr(0, slash);
  std::string home = p.substr(slash + 1);
  if (home.empty()) return Error::invalid("cannot sync the filesystem root");
  MS_CHECK(check_relative_path(home));
  return std::make_pair(root, home);
}

Result<Endpoint> open_endpoint(const std::string& spec, Context& ctx, int streams, const char* role) {
  Endpoint ep;
  if (starts_with(spec, "agent:/")) {
    auto [root, home] = MS_TRY(split_local(spec.substr(6)));
    AgentOptions o;
    o.argv = {self_exe(), "agent", "--stdio", "--root", root};
    o.name = "agent:" + root;
    o.max_streams = streams;
    ep.agent_argv = o.argv;
    ep.transport = MS_TRY(make_agent_transport(o));
    ep.home = home;
    return ep;
  }
  if (starts_with(spec, "/")) {
    auto [root, home] = MS_TRY(split_local(spec));
    ep.transport = MS_TRY(make_local_transport(root, streams));
    ep.home = home;
    return ep;
  }
  auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0)
    return Error::invalid(fmt::format("{} '{}' must be SERVER:RELPATH, /ABS/PATH or agent:/ABS/PATH", role,
                                      printable(spec)));
  std::string server = spec.substr(0, colon), rel = spec.substr(colon + 1);
  MS_CHECK(check_relative_path(rel).context(role));
  if (rel.empty()) return Error::invalid(fmt::format("{} '{}': the home path is empty", role, printable(spec)));
  const Config* c = MS_TRY(ctx.config());
  const ServerConfig* s = c->find_server(server);
  if (!s) return Error::invalid(fmt::format("{}: no [[server]] named '{}' in {}", role, printable(server), c->path));
  ep.transport = MS_TRY(make_server_transport(*s, std::min(streams, s->sync_streams)));
  ep.home = rel;
  ep.server = s;
  return ep;
}

}  // namespace

Command register_sync(CLI::App& root, Context& ctx) {
  CLI::App* sub = root.add_subcommand(
      "sync", "Developer tool: copy one mailbox home to another place with the sync engine (one pass)");
  struct Opts {
    std::string src, dst, state;
    bool final = false, metadata = false, audit = false, verify = false, verify_full = false;
    std::string bwlimit;
    int streams = 2;
    std::string durability = "syncfs";
    bool direct = false, via_controller = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("SRC", o->src, "source: SERVER:RELPATH, /ABS/PATH or agent:/ABS/PATH")->required();
  sub->add_option("DST", o->dst, "destination, same forms")->required();
  sub->add_flag("--final", o->final, "the frozen pass: readdir-only diff plus the metadata set, no destination listing");
  sub->add_flag("--metadata-only", o->metadata, "only the metadata set (uidlists, keywords, indexes, ...)");
  sub->add_flag("--audit", o->audit, "warm pass: also lstat and hash every file on both sides and fix drift");
  sub->add_flag("--verify", o->verify, "afterwards, verify listings, uidlist headers and what this pass wrote");
  sub->add_flag("--verify-full", o->verify_full, "afterwards, verify by hashing every file on both sides");
  sub->add_option("--state", o->state, "keep the pass listing in FILE (read before, written after the pass)");
  sub->add_option("--bwlimit", o->bwlimit, "bytes per second, e.g. 20MiB (default: [move] bwlimit, else unlimited)");
  sub->add_option("--streams", o->streams, "parallel copy streams (capped by each server's sync_streams)")
      ->check(CLI::Range(1, 64));
  sub->add_option("--durability", o->durability, "syncfs (one per batch of new files; default) or fsync (every file)")
      ->check(CLI::IsMember({"fsync", "syncfs"}));
  sub->add_flag("--direct", o->direct,
                "the destination's agent copies straight from the source's (both agents; for servers, the source's "
                "peer_command); default for servers: their peer_transport");
  sub->add_flag("--via-controller", o->via_controller, "copy file contents through this process");
  sub->footer(
      "Prints the pass statistics (files, bytes sent, renames, deltas, seconds per phase); --json for JSON.\n"
      "Exit codes: 0 ok, 1 the pass or the verification failed, 2 usage or config error.");

  return {sub, [o, &ctx]() -> Result<int> {
            if ((o->final ? 1 : 0) + (o->metadata ? 1 : 0) + (o->audit ? 1 : 0) > 1)
              return Error::invalid("--final, --metadata-only and --audit exclude each other");
            store::raise_open_file_limit();
            SyncOptions so;
            so.streams = o->streams;
            so.durability = o->durability == "fsync" ? Durability::kFsyncEach : Durability::kSyncfs;
            if (!o->bwlimit.empty()) so.bwlimit_bytes_per_s = MS_TRY(parse_bytes(o->bwlimit).context("--bwlimit"));
            Endpoint src = MS_TRY(open_endpoint(o->src, ctx, so.streams, "SRC"));
            Endpoint dst = MS_TRY(open_endpoint(o->dst, ctx, so.streams, "DST"));
            // A server endpoint means a config: its [move] bwlimit is the default.
            bool configured = o->src.front() != '/' && o->src.rfind("agent:", 0) != 0;
            if (o->bwlimit.empty() && configured) so.bwlimit_bytes_per_s = MS_TRY(ctx.config())->move.bwlimit_bytes_per_s;

            // Seconds spent on the --state file (read + decode, encode + durable
            // write): the part of the command's wall time outside the pass.
            using Clock = std::chrono::steady_clock;
            auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
            double state_load_s = 0, state_save_s = 0;
            SyncState state = SyncState::fresh();
            if (!o->state.empty() && ::access(o->state.c_str(), F_OK) == 0) {
              auto t0 = Clock::now();
              auto blob = MS_TRY(read_file(o->state, 1ull << 32));
              state = MS_TRY(SyncState::deserialize(blob).context(fmt::format("--state '{}'", printable(o->state))));
              state_load_s = since(t0);
            }
            if (o->direct && o->via_controller) return Error::invalid("--direct and --via-controller exclude each other");
            if (src.server && dst.server && !o->via_controller) {
              ServerConfig to = *dst.server;
              if (o->direct) to.peer_transport = PeerTransport::kDirect;
              so.direct_from = MS_TRY(direct_peer(*src.server, to));
            } else if (o->direct) {
              if (src.agent_argv.empty() || dst.agent_argv.empty())
                return Error::invalid("--direct needs both SRC and DST behind agents (agent:/ABS/PATH or servers)");
              so.direct_from = PeerRef{src.transport->describe(), src.agent_argv};
            }
            SyncEngine engine(*src.transport, src.home, *dst.transport, dst.home, so, ctx.clock());
            auto stats = o->final ? engine.final_pass(state)
                         : o->metadata ? engine.metadata_pass(state)
                                       : engine.warm_pass(state, o->audit);
            if (!o->state.empty()) {
              // The state stays accurate for what completed, also after a failure.
              auto t0 = Clock::now();
              auto saved = write_file_atomic(o->state, state.serialize(),
                                             configured ? MS_TRY(ctx.config())->security.private_files() : FileAccess());
              if (!saved.ok() && stats.ok()) return std::move(saved).error().context("--state");
              state_save_s = since(t0);
            }
            if (!stats.ok()) return std::move(stats).error();
            nlohmann::json out;
            out["pass"] = stats->to_json();
            out["data_path"] = so.direct_from ? "direct" : "via-controller";
            if (!o->state.empty()) out["state_seconds"] = {{"load", state_load_s}, {"save", state_save_s}};
            std::optional<VerifyReport> report;
            if (o->verify || o->verify_full) {
              auto v = engine.verify(state, o->verify_full ? VerifyScope::kFull : VerifyScope::kWritten);
              if (!v.ok()) return std::move(v).error();
              report = std::move(*v);
              out["verify"] = report->to_json();
            }
            // What crossed this process's pipes to the agents (protocol
            // bytes, both directions), after the verification too.
            out["controller_wire_bytes"] = src.transport->wire_bytes() + dst.transport->wire_bytes();
            if (ctx.global.json) {
              fmt::print("{}\n", out.dump(2));
            } else {
              const PassStats& s = *stats;
              fmt::print("{} pass {} -> {}: {} files copied, {} sent, {} renames, {} deletes, {} links, "
                         "{} metadata sent ({} tails, {} block patches, {} deltas, {} whole), {:.3f} s\n",
                         pass_kind_name(s.kind), src.transport->describe(), dst.transport->describe(),
                         s.files_copied, human_bytes(s.bytes_sent), s.renames, s.deletes, s.hard_links,
                         s.metadata_sent, s.tails, s.block_patches, s.deltas, s.whole, s.seconds);
              std::vector<std::string> ph;
              for (const auto& [name, sec] : s.phases) ph.push_back(fmt::format("{} {:.3f}", name, sec));
              fmt::print("phases (s): {}\n", join(ph, ", "));
              if (report)
                fmt::print("verified: {} entries, {} files hashed, {} uidlist headers, {:.3f} s\n",
                           report->entries_compared, report->files_hashed, report->uidlists_checked, report->seconds);
            }
            return kExitOk;
          }};
}

}  // namespace mailshard::cli
