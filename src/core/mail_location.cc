#include "core/mail_location.h"

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

std::string_view mail_format_name(MailFormat f) {
  switch (f) {
    case MailFormat::kDovecot: return "Dovecot Maildir";
    case MailFormat::kCourier: return "Courier-IMAP Maildir++";
    case MailFormat::kUnknown: break;
  }
  return "unknown";
}

Result<MailLocation> parse_mail_location(std::string_view text) {
  const std::string shown = printable(std::string(text));
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return Error::invalid(fmt::format("'{}': write FORMAT:~/PATH, e.g. maildir:~/Maildir", shown));
  std::string_view format = text.substr(0, colon), rest = text.substr(colon + 1);
  MailLocation loc;
  if (format == "maildir") {
    loc.format = MailFormat::kDovecot;
  } else if (format == "courier") {
    loc.format = MailFormat::kCourier;
  } else if (format == "sdbox" || format == "mdbox" || format == "mbox" || format == "dbox") {
    return Error::invalid(fmt::format("'{}': the format {} is not supported (maildir and courier are)", shown,
                                      printable(std::string(format))));
  } else {
    return Error::invalid(fmt::format("'{}': unknown format '{}' (maildir or courier)", shown,
                                      printable(std::string(format))));
  }
  if (auto opt = rest.find(':'); opt != std::string_view::npos)
    return Error::invalid(fmt::format("'{}': options after the path ({}) are not supported", shown,
                                      printable(std::string(rest.substr(opt + 1)))));
  if (rest != "~" && !starts_with(rest, "~/"))
    return Error::invalid(fmt::format("'{}': the path must be inside the home (~/...)", shown));
  std::string path(rest.size() > 1 ? rest.substr(2) : std::string_view());
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.find('%') != std::string::npos)
    return Error::invalid(fmt::format("'{}': variables (%u, %d, ...) are not supported in the path", shown));
  for (const auto& part : path.empty() ? std::vector<std::string>{} : split(path, '/'))
    if (part.empty() || part == "." || part == "..")
      return Error::invalid(fmt::format("'{}': the path must be a plain path inside the home", shown));
  loc.maildir = path;
  return loc;
}

}  // namespace mailshard
