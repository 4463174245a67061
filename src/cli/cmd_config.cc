// mailshard config check [--connect]: validate the configuration.
//
// Without --connect nothing outside the config and its secret files is
// touched. Besides what the loader checks, a server whose disk and load
// figures would silently come from this machine (transport = "agent" without
// metrics_url) is a config error here: other commands (move, sync) do not
// need those figures and still run with such a config, but the inventory,
// plan and rebalance refuse that server. With --connect it also binds to LDAP and reads one entry, scrapes
// each metrics_url, calls each doveadm_url and checks each mail_root.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/connect_check.h"
#include "core/metrics_source.h"

namespace mailshard::cli {
namespace {

std::string_view freeze_method_name(FreezeMethod m) {
  switch (m) {
    case FreezeMethod::kLdapAttribute: return "ldap-attribute";
    case FreezeMethod::kHttp: return "http";
    case FreezeMethod::kCommand: return "command";
    case FreezeMethod::kNone: return "none";
  }
  return "?";
}

}  // namespace

Command register_config(CLI::App& root, Context& ctx) {
  CLI::App* config = root.add_subcommand("config", "Validate the configuration file");
  config->require_subcommand(1);
  CLI::App* check = config->add_subcommand(
      "check", "Parse and validate the config (and read its secret files); touches nothing else");
  auto connect = std::make_shared<bool>(false);
  check->add_flag("--connect", *connect,
                  "also bind to LDAP and read one entry, scrape each metrics_url, call each doveadm_url and "
                  "check each mail_root");
  check->footer("Exit codes: 0 valid (and reachable with --connect); 2 invalid, or a --connect check failed (the\n"
                "config does not work against these servers: the FAIL lines say which and why).");

  return {config, [&ctx, connect]() -> Result<int> {
            const Config* c = MS_TRY(ctx.config());
            for (const auto& s : c->servers)  // the first, in file order, as the loader does
              if (std::string why = missing_metrics_source(s); !why.empty())
                return Error::invalid(fmt::format("{}:{}: {}", c->path, s.line, why));
            std::vector<ConnectCheck> results;
            if (*connect) results = run_connect_checks(*c);
            bool all_ok = true;
            for (const auto& r : results) all_ok &= r.ok;
            if (ctx.global.json) {
              nlohmann::json out;
              out["config"] = c->path;
              out["valid"] = true;
              out["servers"] = c->servers.size();
              out["freeze_method"] = freeze_method_name(c->freeze.method);
              out["checks"] = nlohmann::json::array();
              for (const auto& r : results)
                out["checks"].push_back({{"target", r.target}, {"ok", r.ok}, {"detail", r.detail}});
              out["ok"] = all_ok;
              fmt::print("{}\n", out.dump(2));
            } else {
              fmt::print("config OK: {} ({} server{}, freeze method {})\n", c->path, c->servers.size(),
                         c->servers.size() == 1 ? "" : "s", freeze_method_name(c->freeze.method));
              for (const auto& r : results) fmt::print("{:<4} {}: {}\n", r.ok ? "ok" : "FAIL", r.target, r.detail);
            }
            // A config that cannot reach its servers is a config error (exit 2),
            // like one that does not parse.
            return all_ok ? kExitOk : kExitUsage;
          }};
}

}  // namespace mailshard::cli
