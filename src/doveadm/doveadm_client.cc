#include "doveadm/doveadm_client.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "doveadm/http_client.h"
#include "util/strings.h"

namespace mailshard {
namespace {

using nlohmann::json;

// doveadm's exit codes (sysexits.h values, as Dovecot uses them).
constexpr int kExitUsage = 64;
constexpr int kExitDataErr = 65;
constexpr int kExitNoUser = 67;
constexpr int kExitNotFound = 68;  // DOVEADM_EX_NOTFOUND; for kick: no session to kick
constexpr int kExitTempFail = 75;
constexpr int kExitNoPerm = 77;

// doveadm sends numbers as strings ("3"), "-" for "none".
int64_t as_int(const json& v, int64_t fallback = -1) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    auto r = parse_int(v.get<std::string>());
    if (r.ok()) return *r;
  }
  return fallback;
}

std::string as_str(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// "(127.0.0.1 10.0.0.2)" -> {"127.0.0.1", "10.0.0.2"}
std::vector<std::string> paren_list(const std::string& s) {
  std::string inner(trim(s));
  if (!inner.empty() && inner.front() == '(') inner.erase(0, 1);
  if (!inner.empty() && inner.back() == ')') inner.pop_back();
  std::vector<std::string> out;
  for (auto& p : split(inner, ' '))
    if (!trim(p).empty()) out.emplace_back(trim(p));
  return out;
}

Error exit_code_error(std::string_view command, int code) {
  std::string msg = fmt::format("doveadm {}: exit code {}", command, code);
  switch (code) {
    case kExitNoUser: return Error::not_found(msg + " (unknown user)");
    case kExitNotFound: return Error::not_found(msg + " (not found)");
    case kExitTempFail: return Error::unavailable(msg + " (temporary failure)");
    case kExitNoPerm: return Error::permission(msg + " (permission denied)");
    case kExitUsage:
    case kExitDataErr: return Error::invalid(msg + " (invalid parameters)");
    default: return Error::internal(msg);
  }
}

}  // namespace

Result<json> parse_doveadm_response(std::string_view body, std::string_view command, std::string_view tag) {
  const std::string ctx = fmt::format("doveadm {}", command);
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded())
    return Error::corrupt(fmt::format("{}: reply is not JSON: '{}'", ctx, printable(body, 80)));
  if (!doc.is_array()) return Error::corrupt(fmt::format("{}: reply is not a JSON array: '{}'", ctx, printable(body, 80)));
  for (const auto& entry : doc) {
    if (!entry.is_array() || entry.size() != 3 || !entry[0].is_string() || !entry[2].is_string())
      return Error::corrupt(fmt::format("{}: malformed reply entry '{}'", ctx, printable(entry.dump(), 80)));
    if (entry[2].get<std::string>() != tag) continue;
    const std::string kind = entry[0].get<std::string>();
    if (kind == "doveadmResponse") return entry[1];
    if (kind == "error") {
      const json& e = entry[1];
      std::string type = e.is_object() ? as_str(e, "type") : "";
      if (type == "exitCode") {
        int64_t code = e.contains("exitCode") ? as_int(e["exitCode"]) : -1;
        return exit_code_error(command, static_cast<int>(code));
      }
      return Error::invalid(fmt::format("{}: error '{}'", ctx, printable(type.empty() ? e.dump() : type, 80)));
    }
    return Error::corrupt(fmt::format("{}: unknown reply kind '{}'", ctx, printable(kind, 40)));
  }
  return Error::corrupt(fmt::format("{}: no reply tagged '{}' in '{}'", ctx, printable(tag, 40), printable(body, 80)));
}

Result<std::vector<DoveadmSession>> parse_who(const json& payload) {
  if (!payload.is_array()) return Error::corrupt("doveadm who: payload is not an array");
  std::vector<DoveadmSession> out;
  for (const auto& o : payload) {
    if (!o.is_object()) return Error::corrupt("doveadm who: entry is not an object");
    DoveadmSession s;
    s.user = as_str(o, "username");
    s.service = as_str(o, "service");
    s.connections = static_cast<int>(o.contains("connections") ? as_int(o["connections"], 0) : 0);
    s.ips = paren_list(as_str(o, "ips"));
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<DoveadmQuota>> parse_quota(const json& payload) {
  if (!payload.is_array()) return Error::corrupt("doveadm quotaGet: payload is not an array");
  std::vector<DoveadmQuota> out;
  for (const auto& o : payload) {
    if (!o.is_object() || !o.contains("type") || !o.contains("value"))
      return Error::corrupt(fmt::format("doveadm quotaGet: malformed entry '{}'", printable(o.dump(), 80)));
    std::string root = as_str(o, "root");
    DoveadmQuota* q = nullptr;
    for (auto& existing : out)
      if (existing.root == root) q = &existing;
    if (!q) {
      out.push_back({});
      q = &out.back();
      q->root = root;
    }
    std::string type = as_str(o, "type");
    int64_t value = as_int(o["value"]);
    int64_t limit = o.contains("limit") ? as_int(o["limit"]) : -1;
    if (value < 0)
      return Error::corrupt(fmt::format("doveadm quotaGet: {} value '{}' is not a number", printable(type, 20),
                                        printable(o["value"].dump(), 40)));
    if (type == "STORAGE") {
      q->storage_kib = value;
      q->storage_limit_kib = limit;
    } else if (type == "MESSAGE") {
      q->messages = value;
      q->message_limit = limit;
    }
  }
  return out;
}

Result<std::vector<DoveadmMailboxStatus>> parse_mailbox_status(const json& payload) {
  if (!payload.is_array()) return Error::corrupt("doveadm mailboxStatus: payload is not an array");
  std::vector<DoveadmMailboxStatus> out;
  for (const auto& o : payload) {
    if (!o.is_object() || !o.contains("mailbox"))
      return Error::corrupt(fmt::format("doveadm mailboxStatus: malformed entry '{}'", printable(o.dump(), 80)));
    DoveadmMailboxStatus m;
    m.mailbox = as_str(o, "mailbox");
    if (o.contains("messages")) m.messages = as_int(o["messages"]);
    if (o.contains("uidvalidity")) m.uidvalidity = as_int(o["uidvalidity"]);
    if (o.contains("uidnext")) m.uidnext = as_int(o["uidnext"]);
    if (o.contains("vsize")) m.vsize = as_int(o["vsize"]);
    m.guid = as_str(o, "guid");
    out.push_back(std::move(m));
  }
  return out;
}

Result<MailboxMessage> parse_fetched_message(const json& o) {
  if (!o.is_object() || !o.contains("uid"))
    return Error::corrupt(fmt::format("doveadm fetch: malformed entry '{}'", printable(o.dump(), 80)));
  const int64_t uid = as_int(o["uid"]);
  if (uid <= 0) return Error::corrupt(fmt::format("doveadm fetch: uid '{}'", printable(o["uid"].dump(), 40)));
  return MailboxMessage{uid, as_str(o, "guid")};
}

Result<std::vector<MailboxContents>> parse_mailbox_contents(const json& status, const std::vector<json>& fetched) {
  auto boxes = MS_TRY(parse_mailbox_status(status));
  std::vector<MailboxContents> out;
  std::map<std::string, size_t> at;
  for (auto& b : boxes) {
    if (b.uidvalidity < 0 || b.uidnext < 0 || b.messages < 0)
      return Error::corrupt(fmt::format("doveadm mailboxStatus: mailbox '{}' without messages, uidvalidity or uidnext",
                                        printable(b.mailbox, 80)));
    at[b.mailbox] = out.size();
    MailboxContents c;
    c.status = {b.mailbox, b.messages, b.uidvalidity, b.uidnext};
    c.guid = b.guid;
    out.push_back(std::move(c));
  }
  for (const auto& o : fetched) {
    if (!o.is_object() || !o.contains("uid"))
      return Error::corrupt(fmt::format("doveadm fetch: malformed entry '{}'", printable(o.dump(), 80)));
    const std::string box = as_str(o, "mailbox");
    auto it = at.find(box);
    if (it == at.end())
      return Error::corrupt(fmt::format("doveadm fetch: a message in mailbox '{}' that mailboxStatus did not list",
                                        printable(box, 80)));
    out[it->second].messages.push_back(MS_TRY(parse_fetched_message(o)));
  }
  for (auto& c : out)
    std::sort(c.messages.begin(), c.messages.end(),
              [](const MailboxMessage& a, const MailboxMessage& b) { return a.uid < b.uid; });
  return out;
}

DoveadmClient::DoveadmClient(DoveadmOptions options) : options_(std::move(options)) {}

Result<DoveadmClient> DoveadmClient::for_server(const ServerConfig& server, int64_t timeout_ms) {
  if (server.doveadm_url.empty())
    return Error::invalid(fmt::format("server '{}' has no doveadm_url", printable(server.name)));
  DoveadmOptions o;
  o.url = server.doveadm_url;
  o.user = server.doveadm_user;
  o.password = server.doveadm_password;
  o.ca_file = server.ca_file;
  o.timeout_ms = timeout_ms;
  return DoveadmClient(std::move(o));
}

Result<json> DoveadmClient::run(const std::string& command, const json& parameters) const {
  static constexpr const char* kTag = "mailshard";
  HttpRequest req;
  req.method = HttpMethod::kPost;
  req.url = options_.url;
  req.body = json::array({json::array({command, parameters, kTag})}).dump();
  req.headers = {"Content-Type: application/json", "Accept: application/json"};
  req.basic_user = options_.user;
  req.basic_password = options_.password;
  req.ca_file = options_.ca_file;
  req.timeout_ms = options_.timeout_ms;
  auto resp = MS_TRY_CTX(http_request(req), fmt::format("doveadm {}", command));
  MS_CHECK_CTX(check_http_status(req, resp), fmt::format("doveadm {}", command));
  return parse_doveadm_response(resp.body, command, kTag);
}

Result<DoveadmKickResult> DoveadmClient::kick(const std::string& user) const {
  auto r = run("kick", {{"mask", user}});
  DoveadmKickResult out;
  if (!r.ok()) {
    // 68 = nobody to kick: the state we want, not an error.
    if (r.error().code() == ErrorCode::kNotFound &&
        r.error().message().find(fmt::format("exit code {}", kExitNotFound)) != std::string::npos)
      return out;
    return std::move(r).error();
  }
  out.had_sessions = true;
  if (r->is_array())
    for (const auto& o : *r)
      if (o.is_object()) {
        std::string k = as_str(o, "result");
        if (!k.empty()) out.kicked.push_back(std::move(k));
      }
  return out;
}

Result<std::vector<DoveadmSession>> DoveadmClient::who(const std::string& mask) const {
  json params = json::object();
  if (!mask.empty()) params["mask"] = mask;
  auto payload = MS_TRY(run("who", params));
  return parse_who(payload);
}

Result<std::vector<DoveadmQuota>> DoveadmClient::quota_get(const std::string& user) const {
  auto payload = MS_TRY(run("quotaGet", {{"user", user}}));
  return parse_quota(payload);
}

Status DoveadmClient::quota_recalc(const std::string& user) const {
  auto payload = run("quotaRecalc", {{"user", user}});
  if (!payload.ok()) return std::move(payload).error();
  return {};
}

Result<std::vector<DoveadmMailboxStatus>> DoveadmClient::mailbox_status(const std::string& user,
                                                                       const std::vector<std::string>& masks) const {
  auto payload = MS_TRY(run("mailboxStatus", {{"user", user}, {"field", json::array({"all"})}, {"mailboxMask", masks}}));
  return parse_mailbox_status(payload);
}

Result<std::vector<json>> DoveadmClient::fetch(const std::string& user, const std::vector<std::string>& fields,
                                               const std::vector<std::string>& query) const {
  auto payload = MS_TRY(run("fetch", {{"user", user}, {"field", fields}, {"query", query}}));
  if (!payload.is_array()) return Error::corrupt("doveadm fetch: payload is not an array");
  return std::vector<json>(payload.begin(), payload.end());
}

Result<std::vector<MailboxContents>> DoveadmClient::mailbox_contents(const std::string& user) const {
  auto status = MS_TRY(run("mailboxStatus", {{"user", user},
                                              {"field", json::array({"guid", "messages", "uidvalidity", "uidnext"})},
                                              {"mailboxMask", json::array({"*"})}}));
  auto fetched = MS_TRY(fetch(user, {"mailbox", "uid", "guid"}, {"all"}));
  return parse_mailbox_contents(status, fetched);
}

Status DoveadmClient::import(const std::string& user, const std::string& source_location,
                             const std::string& dest_parent, const std::vector<std::string>& query) const {
  auto r = run("import", {{"user", user},
                          {"sourceLocation", source_location},
                          {"destParentMailbox", dest_parent},
                          {"query", query}});
  if (!r.ok()) return std::move(r).error();
  return {};
}

}  // namespace mailshard
