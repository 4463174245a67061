#include "cli/connect_check.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/clock.h"
#include "directory/ldap_directory.h"
#include "doveadm/doveadm_client.h"
#include "inventory/metrics_sources.h"
#include "journal/pg_journal.h"
#include "util/strings.h"

namespace mailshard::cli {
namespace {

ConnectCheck check_ldap(const Config& config) {
  auto dir = LdapDirectory::connect(config);
  if (!dir.ok()) return {"ldap", false, dir.error().message()};
  auto dn = (*dir)->probe();
  if (!dn.ok()) return {"ldap", false, dn.error().message()};
  std::string who = config.ldap.bind_dn.empty() ? "anonymously" : fmt::format("as '{}'", config.ldap.bind_dn);
  if (dn->empty())
    return {"ldap", false,
            fmt::format("bound {} to {}, but filter '{}' matches no entry under '{}'", who, config.ldap.uri,
                        config.ldap.filter, config.ldap.base_dn)};
  return {"ldap", true, fmt::format("bound {} to {}; read '{}'", who, config.ldap.uri, printable(*dn))};
}

// The PostgreSQL journal: login, clocks, schema version; nothing is created or migrated.
ConnectCheck check_journal(const Config& config, Clock& clock) {
  PgJournalOptions o;
  o.url = config.journal.url;
  o.password = config.journal.password.reveal();
  o.max_clock_skew_ms = config.journal.max_clock_skew_ms;
  auto r = PgJournal::check(o, clock);
  if (!r.ok()) return {"journal", false, r.error().message()};
  return {"journal", true, *r};
}

ConnectCheck check_metrics(const Config& config, const ServerConfig& s, Clock& clock) {
  const std::string target = s.name + " metrics";
  ServerMetricsSource source(config.inventory.metrics_timeout_ms, config.inventory.metrics_retries, clock);
  auto m = source.fetch(s);
  if (!m.ok()) return {target, false, m.error().message()};
  return {target, true,
          fmt::format("{}: filesystem '{}' {} of {} available, load {:.2f}", m->source, m->mountpoint,
                      human_bytes(m->fs_avail_bytes), human_bytes(m->fs_size_bytes), m->load1)};
}

ConnectCheck check_doveadm(const Config& config, const ServerConfig& s) {
  const std::string target = s.name + " doveadm";
  auto client = DoveadmClient::for_server(s, config.inventory.metrics_timeout_ms);
  if (!client.ok()) return {target, false, client.error().message()};
  auto who = client->who();
  if (!who.ok()) return {target, false, who.error().message()};
  int sessions = 0;
  for (const auto& w : *who) sessions += w.connections;
  return {target, true, fmt::format("{}: {} session{}", client->url(), sessions, sessions == 1 ? "" : "s")};
}

ConnectCheck check_mail_root(const ServerConfig& s) {
  const std::string target = s.name + " mail_root";
  if (s.transport != TransportKind::kLocal)
    return {target, true, fmt::format("'{}' is reached through the agent (not checked here)", s.mail_root)};
  struct stat st;
  if (::stat(s.mail_root.c_str(), &st) != 0)
    return {target, false, fmt::format("'{}': {}", s.mail_root, std::strerror(errno))};
  if (!S_ISDIR(st.st_mode)) return {target, false, fmt::format("'{}' is not a directory", s.mail_root)};
  if (access(s.mail_root.c_str(), R_OK | X_OK) != 0)
    return {target, false, fmt::format("'{}': {}", s.mail_root, std::strerror(errno))};
  return {target, true, fmt::format("'{}' is a readable directory", s.mail_root)};
}

}  // namespace

std::vector<ConnectCheck> run_connect_checks(const Config& config) {
  SystemClock clock;
  std::vector<ConnectCheck> out;
  out.push_back(check_ldap(config));
  if (!config.journal.url.empty()) out.push_back(check_journal(config, clock));
  for (const auto& s : config.servers) {
    // Without metrics_url the inventory reads statvfs(mail_root): the mail_root check covers it.
    if (!s.metrics_url.empty()) out.push_back(check_metrics(config, s, clock));
    if (!s.doveadm_url.empty()) out.push_back(check_doveadm(config, s));
    out.push_back(check_mail_root(s));
  }
  return out;
}

}  // namespace mailshard::cli
