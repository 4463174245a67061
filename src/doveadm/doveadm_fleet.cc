#include "doveadm/doveadm_fleet.h"

#include <algorithm>

#include <fmt/format.h>

namespace mailshard {

DoveadmFleet::DoveadmFleet(const Config& config, int64_t timeout_ms) {
  for (const auto& s : config.servers) {
    if (s.doveadm_url.empty())
      clients_.emplace(s.name, Error::unsupported(fmt::format("server {} has no doveadm_url", s.name)));
    else
      clients_.emplace(s.name, DoveadmClient::for_server(s, timeout_ms));
  }
}

Result<const DoveadmClient*> DoveadmFleet::client(const std::string& server) {
  auto it = clients_.find(server);
  if (it == clients_.end()) return Error::not_found(fmt::format("unknown server '{}'", server));
  if (!it->second.ok()) return it->second.error();
  return &it->second.value();
}

Status DoveadmFleet::kick(const std::string& user, const std::string& server) {
  const DoveadmClient* c = MS_TRY_CTX(client(server), fmt::format("kick on {}", server));
  auto r = c->kick(user);
  if (!r.ok()) return std::move(r).error().context(fmt::format("kick on {}", server));
  return {};
}

Result<int> DoveadmFleet::sessions(const std::string& user, const std::string& server) {
  const DoveadmClient* c = MS_TRY_CTX(client(server), fmt::format("who on {}", server));
  auto who = c->who(user);
  if (!who.ok()) return std::move(who).error().context(fmt::format("who on {}", server));
  int n = 0;
  for (const auto& s : *who)
    if (s.user == user) n += s.connections > 0 ? s.connections : 1;
  return n;
}

Result<std::vector<MailboxStatusInfo>> DoveadmFleet::mailbox_status(const std::string& user,
                                                                    const std::string& server) {
  const DoveadmClient* c = MS_TRY_CTX(client(server), fmt::format("mailbox status on {}", server));
  auto st = c->mailbox_status(user);
  if (!st.ok()) return std::move(st).error().context(fmt::format("mailbox status on {}", server));
  std::vector<MailboxStatusInfo> out;
  for (const auto& m : *st) out.push_back({m.mailbox, m.messages, m.uidvalidity, m.uidnext, m.vsize});
  return out;
}

Result<std::vector<MailboxContents>> DoveadmFleet::mailbox_contents(const std::string& user,
                                                                    const std::string& server) {
  const DoveadmClient* c = MS_TRY_CTX(client(server), fmt::format("mailbox contents on {}", server));
  return c->mailbox_contents(user).context(fmt::format("mailbox contents on {}", server));
}

Result<std::vector<MailboxMessage>> DoveadmFleet::messages_from(const std::string& user, const std::string& server,
                                                              const std::string& mailbox, int64_t from_uid) {
  const std::string ctx = fmt::format("fetch on {}", server);
  const DoveadmClient* c = MS_TRY_CTX(client(server), ctx);
  auto fetched = MS_TRY_CTX(c->fetch(user, {"uid", "guid"}, {"mailbox", mailbox, "uid", fmt::format("{}:*", from_uid)}),
                            ctx);
  std::vector<MailboxMessage> out;
  for (const auto& o : fetched) {
    auto m = parse_fetched_message(o);
    if (!m.ok()) return std::move(m).error().context(ctx);
    // "N:*" always matches the last message, even below N (IMAP's rule).
    if (m->uid >= from_uid) out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.uid < b.uid; });
  return out;
}

Status DoveadmFleet::import_messages(const std::string& user, const std::string& server,
                                     const std::string& source_location, const std::string& mailbox,
                                     const std::string& uid_set) {
  const DoveadmClient* c = MS_TRY_CTX(client(server), fmt::format("import on {}", server));
  return c->import(user, source_location, "", {"mailbox", mailbox, "uid", uid_set})
      .context(fmt::format("import on {}", server));
}

namespace {
// doveadm answers a command of a plugin that is not loaded with the error
// type "unknownMethod" (parse_doveadm_response: kInvalidInput naming it).
Error no_quota_plugin(Error e, const std::string& server) {
  if (e.code() == ErrorCode::kInvalidInput && e.message().find("unknownMethod") != std::string::npos)
    return Error::unsupported(fmt::format("{} has no quota plugin ({})", server, e.message()));
  return e;
}
}  // namespace

Result<std::vector<QuotaRoot>> DoveadmFleet::quota(const std::string& user, const std::string& server) {
  const DoveadmClient* c = MS_TRY_CTX(client(server), fmt::format("quota get on {}", server));
  auto q = c->quota_get(user);
  if (!q.ok()) return no_quota_plugin(std::move(q).error(), server).context(fmt::format("quota get on {}", server));
  std::vector<QuotaRoot> out;
  for (const auto& r : *q) out.push_back({r.root, r.storage_kib, r.storage_limit_kib, r.messages, r.message_limit});
  return out;
}

Status DoveadmFleet::recalc_quota(const std::string& user, const std::string& server) {
  const DoveadmClient* c = MS_TRY_CTX(client(server), fmt::format("quota recalc on {}", server));
  Status st = c->quota_recalc(user);
  if (!st.ok()) return no_quota_plugin(st.error(), server).context(fmt::format("quota recalc on {}", server));
  return {};
}

}  // namespace mailshard
