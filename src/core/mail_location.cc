#include "core/mail_location.h"

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

namespace {

// Options that name a tree of their own (ALT: dbox only).
constexpr std::array<std::string_view, 3> kTreeKeys = {"INDEX", "CONTROL", "ALT"};
// Options accepted as written: they name things inside the trees or hold
// files Dovecot recreates (VOLATILEDIR: lock files), never mail elsewhere.
constexpr std::array<std::string_view, 10> kNamingKeys = {"LAYOUT",        "UTF-8",     "DIRNAME",  "FULLDIRNAME",
                                                          "MAILBOXDIR",    "SUBSCRIPTIONS", "LISTINDEX", "ITERINDEX",
                                                          "NO-NOSELECT",   "BROKENCHAR"};
constexpr std::string_view kVolatileKey = "VOLATILEDIR";
// Keys that take no value.
constexpr std::array<std::string_view, 3> kFlagKeys = {"UTF-8", "ITERINDEX", "NO-NOSELECT"};

template <size_t N>
bool among(const std::array<std::string_view, N>& keys, std::string_view k) {
  return std::find(keys.begin(), keys.end(), k) != keys.end();
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Splits at single ':'; "::" is a literal ':'.
std::vector<std::string> split_location(std::string_view text) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != ':') {
      parts.back() += text[i];
    } else if (i + 1 < text.size() && text[i + 1] == ':') {
      parts.back() += ':';
      ++i;
    } else {
      parts.emplace_back();
    }
  }
  return parts;
}

// Whether a (valid) value names the user: ~, %u, %n, %h or their long forms.
bool names_user(std::string_view v) {
  if (starts_with(v, "~")) return true;
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    if (v[i] != '%') continue;
    size_t j = i + 1;
    if (v[j] == '%') {
      i = j;
      continue;
    }
    if (v[j] == 'L' && j + 1 < v.size()) ++j;
    char c = v[j];
    if (c == 'u' || c == 'n' || c == 'h') return true;
    if (c == '{') {
      auto close = v.find('}', j);
      std::string_view name = v.substr(j + 1, close == std::string_view::npos ? 0 : close - j - 1);
      if (name == "user" || name == "username" || name == "home") return true;
    }
  }
  return false;
}

std::string normalise(std::string_view path) {
  std::string out;
  for (char ch : path) {
    if (ch == '/' && !out.empty() && out.back() == '/') continue;
    out += ch;
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// "a/b" inside (or equal to) "a"? Both normalised; absolute and relative never compare.
bool within(const std::string& inner, const std::string& outer) {
  if (inner == outer) return true;
  if (outer == "/") return starts_with(inner, "/");
  return starts_with(inner, outer) && inner.size() > outer.size() && inner[outer.size()] == '/';
}

}  // namespace

std::string_view mail_format_name(MailFormat f) {
  switch (f) {
    case MailFormat::kDovecot: return "Dovecot Maildir";
    case MailFormat::kCourier: return "Courier-IMAP Maildir++";
    case MailFormat::kSdbox: return "Dovecot sdbox";
    case MailFormat::kMdbox: return "Dovecot mdbox";
    case MailFormat::kMbox: return "Dovecot mbox";
    case MailFormat::kUnknown: break;
  }
  return "unknown";
}

std::string_view tree_kind_name(TreeKind k) {
  switch (k) {
    case TreeKind::kHome: return "home";
    case TreeKind::kIndex: return "index";
    case TreeKind::kControl: return "control";
    case TreeKind::kAlt: return "alt";
    case TreeKind::kInbox: return "inbox";
  }
  return "unknown";
}

const std::string* MailLocation::option(std::string_view key) const {
  for (const auto& [k, v] : options)
    if (k == key) return &v;
  return nullptr;
}

std::string MailLocation::naming_options() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : options)
    if (among(kNamingKeys, k) || (k == "INBOX" && starts_with(v, "~/"))) out.push_back(among(kFlagKeys, k) ? k : k + "=" + v);
  std::sort(out.begin(), out.end());
  return join(out, ":");
}

Result<std::string> expand_location_value(std::string_view value, const LocationUser& u) {
  std::string out;
  // Parts of the result that came from a variable's value: a '/' there
  // would let a user name reach another directory.
  auto add_value = [&](std::string_view what, const std::string& v, bool lowercase) -> Status {
    if (v.find('/') != std::string::npos && what != "home")
      return Error::invalid(fmt::format("the {} '{}' has a '/'", what, printable(v)));
    out += lowercase ? lower(v) : v;
    return {};
  };
  const auto at = u.user.find('@');
  const std::string username = u.user.substr(0, at);
  const std::string domain = at == std::string::npos ? "" : u.user.substr(at + 1);
  size_t i = 0;
  if (starts_with(value, "~") && (value.size() == 1 || value[1] == '/')) {
    if (u.home.empty()) return Error::invalid("'~' but the user has no home");
    out = u.home;
    i = 1;
  }
  for (; i < value.size(); ++i) {
    if (value[i] != '%') {
      out += value[i];
      continue;
    }
    size_t j = i + 1;
    if (j < value.size() && value[j] == '%') {
      out += '%';
      i = j;
      continue;
    }
    bool lowercase = false;
    if (j < value.size() && value[j] == 'L') {
      lowercase = true;
      ++j;
    }
    std::string name;
    size_t end = j;
    if (j < value.size() && value[j] == '{') {
      auto close = value.find('}', j);
      if (close == std::string_view::npos)
        return Error::invalid(fmt::format("unclosed variable {}", printable(value.substr(i))));
      name = std::string(value.substr(j + 1, close - j - 1));
      end = close;
    } else if (j < value.size()) {
      name = std::string(1, value[j]);
    } else {
      return Error::invalid("a '%' at the end (write %% for a '%')");
    }
    Status st;
    if (name == "u" || name == "user") st = add_value("user name", u.user, lowercase);
    else if (name == "n" || name == "username") st = add_value("user name", username, lowercase);
    else if (name == "d" || name == "domain") st = add_value("domain", domain, lowercase);
    else if (name == "h" || name == "home") {
      if (u.home.empty()) return Error::invalid("%h but the user has no home");
      st = add_value("home", u.home, lowercase);
    } else {
      return Error::invalid(fmt::format("unknown variable {}", printable(value.substr(i, end - i + 1))));
    }
    if (!st.ok()) return st.error();
    i = end;
  }
  out = normalise(out);
  for (const auto& part : split(out, '/'))
    if (part == "." || part == "..")
      return Error::invalid(fmt::format("'{}' has a '{}' in it", printable(out), part));
  if (out.empty()) return Error::invalid("expands to an empty path");
  return out;
}

Result<MailLocation> parse_mail_location(std::string_view text) {
  const std::string shown = printable(std::string(text));
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return Error::invalid(fmt::format("'{}': write FORMAT:~/PATH, e.g. maildir:~/Maildir", shown));
  std::string_view format = text.substr(0, colon);
  MailLocation loc;
  if (format == "maildir") {
    loc.format = MailFormat::kDovecot;
  } else if (format == "courier") {
    loc.format = MailFormat::kCourier;
  } else if (format == "sdbox") {
    loc.format = MailFormat::kSdbox;
  } else if (format == "mdbox") {
    loc.format = MailFormat::kMdbox;
  } else if (format == "mbox") {
    loc.format = MailFormat::kMbox;
  } else if (format == "dbox") {
    return Error::invalid(fmt::format("'{}': the format {} is not supported (maildir, courier, sdbox, mdbox and mbox are)",
                                      shown, printable(std::string(format))));
  } else {
    return Error::invalid(fmt::format("'{}': unknown format '{}' (maildir, courier, sdbox, mdbox or mbox)", shown,
                                      printable(std::string(format))));
  }
  const std::vector<std::string> parts = split_location(text.substr(colon + 1));
  const std::string& rest = parts.front();
  if (rest != "~" && !starts_with(rest, "~/"))
    return Error::invalid(fmt::format("'{}': the path must be inside the home (~/...)", shown));
  std::string path(rest.size() > 1 ? rest.substr(2) : std::string());
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.find('%') != std::string::npos)
    return Error::invalid(fmt::format("'{}': variables (%u, %d, ...) are not supported in the path", shown));
  for (const auto& part : path.empty() ? std::vector<std::string>{} : split(path, '/'))
    if (part.empty() || part == "." || part == "..")
      return Error::invalid(fmt::format("'{}': the path must be a plain path inside the home", shown));
  loc.maildir = path;

  if (loc.format == MailFormat::kCourier && parts.size() > 1)
    return Error::invalid(fmt::format("'{}': Courier-IMAP takes no options after the path ({})", shown,
                                      printable(std::string(text.substr(text.find(':', colon + 1) + 1)))));
  const LocationUser probe{"user@example.org", "/home/user"};
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& opt = parts[i];
    const auto eq = opt.find('=');
    std::string key = opt.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
    auto bad = [&](std::string_view why) {
      return Error::invalid(fmt::format("'{}': {}: {}", shown, printable(key), why));
    };
    if (key.empty()) return Error::invalid(fmt::format("'{}': an empty option (write KEY=VALUE)", shown));
    if (loc.option(key)) return bad("given twice");
    if (key == "ALT" && !is_dbox(loc.format)) return bad("ALT= is for sdbox and mdbox only");
    if (key == "INBOX") {
      // mbox's INBOX is one file: moved with the mail path when it is in it
      // (~/mail/inbox), or a tree of its own, one file, when it is a spool
      // outside the home (/var/mail/%u): only that file is the user's, never
      // the directory it sits in.
      if (loc.format != MailFormat::kMbox) return bad("INBOX= is for mbox only");
      if (starts_with(value, "/")) {
        auto expanded = expand_location_value(value, probe);
        if (!expanded.ok()) return bad(expanded.error().message());
        if (!names_user(value) || value.back() == '/')
          return bad("a spool file outside the home must name the user's own file (e.g. /var/mail/%u)");
        loc.options.emplace_back(std::move(key), std::move(value));
        continue;
      }
      const std::string inside = "~/" + loc.maildir + "/";
      if (loc.maildir.empty() || !starts_with(value, inside) || value.size() == inside.size() ||
          value.find('%') != std::string::npos)
        return bad(fmt::format("an INBOX in the home must be in the mail path (write INBOX={}inbox) or a spool file "
                               "outside the home (INBOX=/var/mail/%u)",
                               inside));
      const std::string rest = value.substr(inside.size());
      for (const auto& part : split(rest, '/'))
        if (part.empty() || part == "." || part == "..") return bad("must be a plain path inside the mail path");
      loc.options.emplace_back(std::move(key), std::move(value));
      continue;
    }
    if (key == "INDEXPVT" || key == "INDEXSHARED")
      return bad("indexes of shared mailboxes are not supported (they would be left behind)");
    const bool flag = among(kFlagKeys, key);
    if (!among(kTreeKeys, key) && !among(kNamingKeys, key) && key != kVolatileKey)
      return Error::invalid(fmt::format(
          "'{}': unknown option {} (known: INDEX, CONTROL, ALT, LAYOUT, UTF-8, DIRNAME, FULLDIRNAME, MAILBOXDIR, "
          "SUBSCRIPTIONS, LISTINDEX, ITERINDEX, NO-NOSELECT, BROKENCHAR, VOLATILEDIR)",
          shown, printable(key)));
    if (flag && eq != std::string::npos) return bad("takes no value");
    if (!flag && value.empty()) return bad("needs a value (KEY=VALUE)");
    if (among(kTreeKeys, key) || key == kVolatileKey) {
      if (!(key == "INDEX" && value == "MEMORY")) {
        auto expanded = expand_location_value(value, probe);
        if (!expanded.ok()) return bad(expanded.error().message());
        if (among(kTreeKeys, key) && !names_user(value))
          return bad("names no user (~, %u, %n or %h): a directory shared by several users is not one user's to move");
      }
    } else if (!flag && key != "LAYOUT" && key != "BROKENCHAR" &&
               (value.find('/') != std::string::npos || value.find('%') != std::string::npos)) {
      return bad("must be a name, not a path (it would put files outside the trees mailshard moves)");
    }
    loc.options.emplace_back(std::move(key), std::move(value));
  }
  return loc;
}

Result<std::vector<MailTree>> location_trees(const MailLocation& loc, const LocationUser& u) {
  auto fail = [&](std::string_view what, const Error& e) {
    return Error::invalid(fmt::format("user {}: {}: {}", printable(u.user), what, e.message()));
  };
  if (u.home.empty()) return Error::invalid(fmt::format("user {}: no home", printable(u.user)));
  std::vector<MailTree> trees{{TreeKind::kHome, "home", normalise(u.home)}};
  for (auto [key, kind] : {std::pair{"INDEX", TreeKind::kIndex}, std::pair{"CONTROL", TreeKind::kControl},
                           std::pair{"ALT", TreeKind::kAlt}, std::pair{"INBOX", TreeKind::kInbox}}) {
    const std::string* v = loc.option(key);
    if (!v || (kind == TreeKind::kIndex && *v == "MEMORY")) continue;
    if (kind == TreeKind::kInbox && !starts_with(*v, "/")) continue;  // in the mail path: copied with the home
    auto path = expand_location_value(*v, u);
    if (!path.ok()) return fail(key, path.error());
    if (within(*path, trees.front().path)) continue;  // copied with the home
    bool merged = false;
    for (auto& t : trees) {
      if (*path == t.path && t.kind != TreeKind::kHome && kind != TreeKind::kInbox && t.kind != TreeKind::kInbox) {
        t.name += "+" + std::string(tree_kind_name(kind));
        merged = true;
      } else if (within(t.path, *path) || within(*path, t.path)) {
        return Error::invalid(fmt::format("user {}: {}: '{}' and the {} tree '{}' overlap", printable(u.user), key,
                                          printable(*path), t.name, printable(t.path)));
      }
    }
    if (!merged) {
      const std::string_view fixed = std::string_view(*v).substr(0, v->find_first_of("%~"));
      const auto slash = fixed.rfind('/');
      std::string base = slash == std::string_view::npos ? "" : normalise(fixed.substr(0, slash == 0 ? 1 : slash));
      trees.push_back({kind, std::string(tree_kind_name(kind)), *path, std::move(base), kind == TreeKind::kInbox});
    }
  }
  return trees;
}

Result<std::string> tree_in_root(const std::string& path, const std::string& root) {
  if (path.empty() || path.front() != '/') return normalise(path);
  const std::string r = normalise(root), p = normalise(path);
  if (r.empty() || p == r || !within(p, r))
    return Error::invalid(
        fmt::format("'{}' is not inside the mail root '{}'", printable(path), printable(root)));
  return p.substr(r == "/" ? 1 : r.size() + 1);
}

}  // namespace mailshard
