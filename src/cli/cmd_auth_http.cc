// mailshard auth-http: the nginx mail auth_http responder. Checks the login
// against LDAP (a bind as the user), refuses frozen users with a temporary
// error (honouring a freeze's own deadline), and sends everyone else to the
// imap_address/pop3_address of their mailHost (router/auth_http.h).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "directory/ldap_directory.h"
#include "router/auth_http_server.h"
#include "util/interrupt.h"
#include "util/net.h"

namespace mailshard::cli {
namespace {

// One worker's view of LDAP: a service connection for the lookups and a
// second one for the users' binds. Connects on first use and again after a
// failure, so a directory that was down at start is picked up when it returns.
class LdapAuthDirectory final : public AuthDirectory {
 public:
  explicit LdapAuthDirectory(const Config& config) : config_(config), checker_(config.ldap) {
    attributes_ = config.auth_http.login_attributes;
    if (attributes_.empty()) attributes_.push_back(config.ldap.user_attribute);
  }
  Result<Account> find_login(const std::string& login) override {
    if (!dir_) dir_ = MS_TRY(LdapDirectory::connect(config_));
    auto r = dir_->find_login(login, attributes_);
    if (!r.ok() && r.error().code() != ErrorCode::kNotFound && r.error().code() != ErrorCode::kInvalidInput)
      dir_.reset();  // a fresh connection next time
    return r;
  }
  Result<bool> check_password(const std::string& dn, const std::string& password) override {
    return checker_.check(dn, password);
  }

 private:
  const Config& config_;
  std::vector<std::string> attributes_;
  std::unique_ptr<LdapDirectory> dir_;
  LdapPasswordChecker checker_;
};

}  // namespace

Command register_auth_http(CLI::App& root, Context& ctx) {
  CLI::App* cmd = root.add_subcommand(
      "auth-http", "Answer nginx's mail auth_http requests: LDAP login check, routing by mailHost, frozen users wait");
  struct Args {
    std::string listen;
    int workers = 0;
    bool check = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--listen", a->listen, "IP:PORT to listen on (default: [auth_http] listen, 127.0.0.1:9143)");
  cmd->add_option("--workers", a->workers, "requests answered at once (default: [auth_http] workers, 16)")
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--check", a->check, "check the configuration and the port, then exit");
  cmd->footer(
      "nginx:  mail { auth_http 127.0.0.1:9143/auth; ... }  (examples/nginx/nginx-mail.conf)\n"
      "Each [[server]] names where its users go: imap_address = \"IP:PORT\", pop3_address = \"IP:PORT\".\n"
      "Answers: OK with Auth-Server/Auth-Port; a wrong login or password [AUTHENTICATIONFAILED];\n"
      "a frozen user (a move's freeze) or LDAP trouble [UNAVAILABLE] with Auth-Wait, so the client\n"
      "retries; a value of [auth_http] disabled_values [CONTACTADMIN]. One log line per decision;\n"
      "passwords are never logged. Runs in the foreground until SIGTERM (examples/systemd/).\n"
      "Exit codes: 0 stopped by a signal (or --check passed), 1 cannot listen, 2 configuration error.");
  return {cmd, [&ctx, a]() -> Result<int> {
            const Config* config = MS_TRY(ctx.config());
            const AuthHttpConfig& ac = config->auth_http;
            if (config->freeze.method == FreezeMethod::kHttp || config->freeze.method == FreezeMethod::kCommand)
              return Error::invalid(
                  "auth-http: [freeze] method is not \"ldap-attribute\": the responder can only see freezes kept in "
                  "LDAP, and would let frozen users in");
            bool routes = false;
            for (const auto& s : config->servers) routes |= !s.imap_address.empty() || !s.pop3_address.empty();
            if (!routes)
              return Error::invalid(
                  "auth-http: no [[server]] has imap_address or pop3_address: there is nowhere to send a user");
            auto address = parse_socket_address(a->listen.empty() ? ac.listen : a->listen);
            if (!address.ok()) return std::move(address).error().context("auth-http: --listen");
            const int workers = a->workers > 0 ? a->workers : ac.workers;
            auto server = AuthHttpServer::listen(*address);
            if (!server.ok()) return Error::unavailable("auth-http: " + server.error().message());
            if (a->check) {
              fmt::print("auth-http: configuration OK, {} free\n", a->listen.empty() ? ac.listen : a->listen);
              return kExitOk;
            }
            AuthDecider decider(*config, ctx.clock());
            spdlog::info("auth-http: listening on {}:{} with {} workers", address->ip, (*server)->port(), workers);
            auto st = (*server)->serve(workers, decider, [config] { return std::make_unique<LdapAuthDirectory>(*config); });
            auto n = (*server)->counts();
            spdlog::info("auth-http: stopped after {} requests ({} ok, {} refused, {} bad, {} dropped)", n.requests, n.ok,
                         n.refused, n.bad_requests, n.dropped);
            MS_CHECK(st);
            reset_interrupted();  // a daemon stopped by SIGTERM did its job: exit 0
            return kExitOk;
          }};
}

}  // namespace mailshard::cli
