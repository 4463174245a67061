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
  // mbox: Dovecot's index directory (.imap) in the mail path says it is
  // Dovecot's mbox; without it nothing is concluded (the declared format holds).
  if (loc.format == MailFormat::kMbox) {
    const std::string dir = loc.maildir.empty() ? home : home + "/" + loc.maildir;
    auto st = MS_TRY(t.stat({{dir + "/.imap", {}}}));
    if (st[0].error && st[0].error->code() != ErrorCode::kNotFound) return *st[0].error;
    return !st[0].error && st[0].attrs.type == EntryType::kDir ? MailFormat::kMbox : MailFormat::kUnknown;
  }
  // dbox keeps no uidlist: its directories say which one. mdbox has
  // storage/ (the m.* files) and mailboxes/ (the folders' indexes), sdbox
  // only mailboxes/ (with the u.* files).
  if (is_dbox(loc.format)) {
    const std::string dir = loc.maildir.empty() ? home : home + "/" + loc.maildir;
    auto st = MS_TRY(t.stat({{dir + "/storage", {}}, {dir + "/mailboxes", {}}}));
    bool there[2] = {};
    for (size_t i = 0; i < 2; ++i) {
      if (st[i].error && st[i].error->code() != ErrorCode::kNotFound) return *st[i].error;
      there[i] = !st[i].error && st[i].attrs.type == EntryType::kDir;
    }
    if (there[0]) return MailFormat::kMdbox;
    if (there[1]) return MailFormat::kSdbox;
    return MailFormat::kUnknown;
  }
  // The UID lists decide; the other files only when there is no UID list yet.
  static constexpr std::array<std::string_view, 6> kNames = {"courierimapuiddb",      "dovecot-uidlist",
                                                             "courierimapkeywords",   "dovecot-keywords",
                                                             "courierimapsubscribed", "subscriptions"};
  const std::vector<std::string> dirs =
      loc.maildir.empty() ? std::vector<std::string>{home + "/Maildir", home} : std::vector<std::string>{home + "/" + loc.maildir};
  for (const auto& dir : dirs) {
    std::vector<StatRequest> rq;
    for (auto n : kNames) rq.push_back({dir + "/" + std::string(n), {}});
    auto st = MS_TRY(t.stat(rq));
    std::array<bool, kNames.size()> there{};
    for (size_t i = 0; i < st.size(); ++i) {
      if (st[i].error && st[i].error->code() != ErrorCode::kNotFound) return *st[i].error;
      there[i] = !st[i].error;
    }
    for (size_t pair = 0; pair < kNames.size(); pair += 2) {
      const bool courier = there[pair], dovecot = there[pair + 1];
      if (courier != dovecot) return courier ? MailFormat::kCourier : MailFormat::kDovecot;
      if (courier && dovecot) return MailFormat::kUnknown;  // both of a kind: nothing to conclude
    }
  }
  return MailFormat::kUnknown;
}

std::optional<std::string> format_change_refusal(const std::string& user, MailFormat files, const ServerConfig& from,
                                                 const ServerConfig& to) {
  const MailFormat src = files != MailFormat::kUnknown ? files : server_location(from).format;
  const MailFormat dst = server_location(to).format;
  if (src == MailFormat::kUnknown || dst == MailFormat::kUnknown || src == dst) return std::nullopt;
  if (src == MailFormat::kCourier && dst == MailFormat::kDovecot) return std::nullopt;  // converted on the way
  const std::string how = files != MailFormat::kUnknown ? "its files" : "mail_location";
  if (moved_through_doveadm(src) || moved_through_doveadm(dst))
    return fmt::format("user {}: its mail on {} is {} ({}) but {} reads {}: mailshard copies files and never converts "
                       "between Maildir, sdbox, mdbox and mbox (give both servers' mail_location the same format, or move "
                       "the user with dsync)",
                       printable(user), from.name, mail_format_name(src), how, to.name, mail_format_name(dst));
  return fmt::format("user {}: its mail on {} is {} ({}) but {} reads {}: moved unconverted, Courier would give its "
                     "folders new UIDVALIDITYs and lose Dovecot's keywords, and every client would download everything "
                     "again; mailshard converts only Courier to Dovecot (set the servers' mail_location if this is "
                     "wrong)",
                     printable(user), from.name, mail_format_name(src), how, to.name, mail_format_name(dst));
}

Result<DovecotLayout> conversion_layout(const MailLocation& to) {
  DovecotLayout layout;
  const std::string naming = to.naming_options();
  for (const auto& option : split(naming, ':')) {
    if (option.empty()) continue;
    const auto eq = option.find('=');
    const std::string key(option.substr(0, eq));
    const std::string value = eq == std::string::npos ? "" : to_lower(option.substr(eq + 1));
    if (key == "UTF-8") layout.utf8 = true;
    else if (key == "LAYOUT" && value == "fs") layout.fs = true;
    else if (key != "LAYOUT" || value != "maildir++")
      return Error::unsupported(fmt::format("the conversion names folders by LAYOUT=Maildir++ or LAYOUT=fs and "
                                            "UTF-8 only, not by {}",
                                            printable(option)));
  }
  return layout;
}

std::optional<std::string> location_options_refusal(const std::string& user, bool converts, const ServerConfig& from,
                                                    const ServerConfig& to) {
  const std::string a = server_location(from).naming_options(), b = server_location(to).naming_options();
  if (converts) {
    auto layout = conversion_layout(server_location(to));
    if (layout.ok()) return std::nullopt;
    return fmt::format("user {}: {}'s mail_location has {}: {}", printable(user), to.name, b, layout.error().message());
  }
  if (a != b)
    return fmt::format("user {}: {}'s mail_location names folders with '{}' but {}'s with '{}': the copy would read "
                       "as other folders there (make the options equal)",
                       printable(user), from.name, a, to.name, b);
  return std::nullopt;
}

bool converts_courier_to_dovecot(MailFormat files, const ServerConfig& from, const ServerConfig& to) {
  const MailFormat src = files != MailFormat::kUnknown ? files : server_location(from).format;
  return src == MailFormat::kCourier && server_location(to).format == MailFormat::kDovecot;
}

}  // namespace mailshard
