#include "movers/mail_format.h"

#include <array>

#include <fmt/format.h>

#include "core/mail_location.h"
#include "util/strings.h"

namespace mailshard {

MailLocation server_location(const ServerConfig& server) {
  if (!server.mail_location.empty()) {
    auto loc = parse_mail_location(server.mail_location);
    if (loc.ok()) return *loc;  // the config loader refused anything else
  }
  MailLocation loc;
  if (!server.doveadm_url.empty()) loc.format = MailFormat::kDovecot;
  return loc;
}

Result<MailFormat> detect_home_format(Transport& t, const std::string& home, const MailLocation& loc) {
  static constexpr std::array<std::string_view, 3> kCourier = {"courierimapuiddb", "courierimapkeywords",
                                                               "courierimapsubscribed"};
  static constexpr std::array<std::string_view, 3> kDovecot = {"dovecot-uidlist", "dovecot-keywords", "subscriptions"};
  const std::vector<std::string> dirs =
      loc.maildir.empty() ? std::vector<std::string>{home + "/Maildir", home} : std::vector<std::string>{home + "/" + loc.maildir};
  for (const auto& dir : dirs) {
    std::vector<StatRequest> rq;
    for (auto n : kCourier) rq.push_back({dir + "/" + std::string(n), {}});
    for (auto n : kDovecot) rq.push_back({dir + "/" + std::string(n), {}});
    auto st = MS_TRY(t.stat(rq));
    bool courier = false, dovecot = false;
    for (size_t i = 0; i < st.size(); ++i) {
      if (st[i].error && st[i].error->code() != ErrorCode::kNotFound) return *st[i].error;
      if (!st[i].error) (i < kCourier.size() ? courier : dovecot) = true;
    }
    if (courier != dovecot) return courier ? MailFormat::kCourier : MailFormat::kDovecot;
    if (courier && dovecot) return MailFormat::kUnknown;  // both: nothing to conclude from the files
  }
  return MailFormat::kUnknown;
}

std::optional<std::string> format_change_refusal(const std::string& user, MailFormat files, const ServerConfig& from,
                                                 const ServerConfig& to) {
  const MailFormat src = files != MailFormat::kUnknown ? files : server_location(from).format;
  const MailFormat dst = server_location(to).format;
  if (src == MailFormat::kUnknown || dst == MailFormat::kUnknown || src == dst) return std::nullopt;
  const std::string how = files != MailFormat::kUnknown ? "its files" : "mail_location";
  const std::string why = src == MailFormat::kCourier
                              ? "Dovecot would give its folders new UIDVALIDITYs and lose Courier's keywords, and every "
                                "client would download everything again"
                              : "Courier would give its folders new UIDVALIDITYs and lose Dovecot's keywords, and every "
                                "client would download everything again";
  return fmt::format("user {}: its mail on {} is {} ({}) but {} reads {}: moved unconverted, {}; mailshard does not "
                     "convert between formats yet (set the servers' mail_location if this is wrong)",
                     printable(user), from.name, mail_format_name(src), how, to.name, mail_format_name(dst), why);
}

}  // namespace mailshard
