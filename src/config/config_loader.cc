#include "config/config_loader.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "core/mail_location.h"
#include "util/duration.h"
#include "util/fs.h"
#include "util/net.h"
#include "util/strings.h"
#include "util/subprocess.h"

namespace mailshard {

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::string resolve_config_path(const std::string& cli_value, const EnvLookup& env) {
  if (!cli_value.empty()) return cli_value;
  if (auto v = env("MAILSHARD_CONFIG"); v && !v->empty()) return *v;
  return kDefaultConfigPath;
}

namespace {

// A config is a few KiB; 1 MiB is generous and bounds the parse.
constexpr size_t kMaxConfigBytes = 1u << 20;

struct Problem {
  int line;
  std::string message;
};

// Collects problems; the earliest (by line) is reported.
struct Problems {
  std::string file;
  std::vector<Problem> list;
  void add(int line, std::string key, std::string what) {
    list.push_back({line, fmt::format("{}:{}: {}: {}", file, line, key, what)});
  }
};

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// Reads the keys of one table, remembers which were consumed, and reports the
// rest as unknown keys with a suggestion.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix, Problems& problems)
      : t_(table), prefix_(std::move(prefix)), p_(problems) {}

  int line() const { return line_of(t_); }
  std::string key_name(std::string_view key) const { return prefix_ + "." + std::string(key); }

  const toml::node* get(std::string_view key) {
    known_.emplace_back(key);
    return t_.get(key);
  }

  void missing(std::string_view key) { p_.add(line(), key_name(key), "missing required key"); }

  bool str(std::string_view key, std::string& out, bool required = false) {
    const toml::node* n = get(key);
    if (!n) {
      if (required) missing(key);
      return false;
    }
    if (auto v = n->value<std::string>(); v && n->is_string()) {
      out = *v;
      if (required && out.empty()) {
        p_.add(line_of(*n), key_name(key), "must not be empty");
        return false;
      }
      return true;
    }
    wrong_type(key, *n, "a string");
    return false;
  }

  bool integer(std::string_view key, int64_t& out, int64_t min = 0) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (!n->is_integer()) {
      wrong_type(key, *n, "an integer");
      return false;
    }
    int64_t v = *n->value<int64_t>();
    if (v < min) {
      p_.add(line_of(*n), key_name(key), fmt::format("must be at least {}, got {}", min, v));
      return false;
    }
    out = v;
    return true;
  }

  bool integer(std::string_view key, int& out, int min, int max) {
    int64_t v = out;
    if (!integer(key, v, min)) return false;
    if (v > max) {
      p_.add(line_of(*t_.get(key)), key_name(key), fmt::format("must be at most {}, got {}", max, v));
      return false;
    }
    out = static_cast<int>(v);
    return true;
  }

  bool number(std::string_view key, double& out, double min, double max) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (!n->is_number()) {
      wrong_type(key, *n, "a number");
      return false;
    }
    double v = *n->value<double>();
    if (!(v >= min && v <= max)) {
      p_.add(line_of(*n), key_name(key), fmt::format("must be between {} and {}, got {}", min, max, v));
      return false;
    }
    out = v;
    return true;
  }

  bool boolean(std::string_view key, bool& out) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (!n->is_boolean()) {
      wrong_type(key, *n, "true or false");
      return false;
    }
    out = *n->value<bool>();
    return true;
  }

  bool duration(std::string_view key, int64_t& out_ms) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (n->is_integer()) {  // a bare integer is seconds
      const int64_t v = *n->value<int64_t>();
      if (v < 0) {
        p_.add(line_of(*n), key_name(key), fmt::format("must not be negative, got {}", v));
        return false;
      }
      if (v > kMaxDurationMs / 1000) {
        p_.add(line_of(*n), key_name(key), fmt::format("{} seconds is too long (at most 100 years)", v));
        return false;
      }
      out_ms = v * 1000;
      return true;
    }
    if (!n->is_string()) {
      wrong_type(key, *n, "a duration string such as \"10m\"");
      return false;
    }
    auto d = parse_duration_ms(*n->value<std::string>());
    if (!d.ok()) {
      p_.add(line_of(*n), key_name(key), d.error().message());
      return false;
    }
    out_ms = *d;
    return true;
  }

  bool bytes(std::string_view key, int64_t& out) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (n->is_integer()) {
      int64_t v = *n->value<int64_t>();
      if (v < 0) {
        p_.add(line_of(*n), key_name(key), fmt::format("must not be negative, got {}", v));
        return false;
      }
      if (v > kMaxByteSize) {
        p_.add(line_of(*n), key_name(key), fmt::format("{} bytes is too large (at most 8 PiB)", v));
        return false;
      }
      out = v;
      return true;
    }
    if (!n->is_string()) {
      wrong_type(key, *n, "a byte count such as 1073741824 or \"1GiB\"");
      return false;
    }
    auto b = parse_bytes(*n->value<std::string>());
    if (!b.ok()) {
      p_.add(line_of(*n), key_name(key), b.error().message());
      return false;
    }
    out = *b;
    return true;
  }

  // A command: a string (split like a command line, no shell) or an array of strings.
  bool argv(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (n->is_string()) {
      auto v = split_command_line(*n->value<std::string>());
      if (!v.ok()) {
        p_.add(line_of(*n), key_name(key), v.error().message());
        return false;
      }
      out = std::move(*v);
      return true;
    }
    if (const auto* arr = n->as_array()) {
      std::vector<std::string> v;
      for (const auto& el : *arr) {
        if (!el.is_string()) {
          p_.add(line_of(*n), key_name(key), "every element must be a string");
          return false;
        }
        v.push_back(*el.value<std::string>());
      }
      out = std::move(v);
      return true;
    }
    wrong_type(key, *n, "a string or an array of strings");
    return false;
  }

  template <typename E>
  bool choice(std::string_view key, E& out, const std::vector<std::pair<std::string, E>>& options) {
    std::string v;
    if (!str(key, v)) return false;
    std::vector<std::string> names;
    for (const auto& [name, value] : options) {
      if (name == v) {
        out = value;
        return true;
      }
      names.push_back(name);
    }
    std::string hint = closest_match(v, names);
    p_.add(line_of(*t_.get(key)), key_name(key),
           fmt::format("unknown value '{}' (expected one of: {}){}", printable(v, 60), join(names, ", "),
                       hint.empty() ? "" : fmt::format("; did you mean '{}'?", hint)));
    return false;
  }

  // A secret given inline is refused: secrets live in files or the environment.
  void refuse_inline_secret(std::string_view key, std::string_view use_instead) {
    if (const toml::node* n = get(key))
      p_.add(line_of(*n), key_name(key),
             fmt::format("secrets are not read from the config file; use {}", use_instead));
  }

  void finish() {
    for (const auto& [k, v] : t_) {
      std::string key(k.str());
      bool is_known = false;
      for (const auto& known : known_) is_known |= known == key;
      if (is_known) continue;
      std::string hint = closest_match(key, known_);
      p_.add(static_cast<int>(k.source().begin.line ? k.source().begin.line : v.source().begin.line),
             key_name(key),
             hint.empty() ? std::string("unknown key") : fmt::format("unknown key (did you mean '{}'?)", hint));
    }
  }

 private:
  void wrong_type(std::string_view key, const toml::node& n, std::string_view want) {
    p_.add(line_of(n), key_name(key), fmt::format("expected {}, got {}", want, type_name(n)));
  }

  const toml::table& t_;
  std::string prefix_;
  Problems& p_;
  std::vector<std::string> known_;
};

// Reads a secret from `file` (trailing newlines stripped) or from the
// environment variable `env_name`; the environment wins when set.
void load_secret(TableReader& r, Problems& p, std::string_view file_key, const std::string& file,
                 const std::string& env_name, const EnvLookup& env, Secret& out, bool required, const Config& c) {
  if (auto v = env(env_name); v && !v->empty()) {
    out = Secret(*v);
    return;
  }
  if (file.empty()) {
    if (required) p.add(r.line(), r.key_name(file_key), fmt::format("missing (or set {})", env_name));
    return;
  }
  auto text = read_secret_file(file, c.security.allow_group_readable_secrets ? GroupReadable::kAllow
                                                                             : GroupReadable::kRefuse);
  const toml::node* n = r.get(file_key);
  int line = n ? line_of(*n) : r.line();
  if (!text.ok()) {
    p.add(line, r.key_name(file_key),
          text.error().code() == ErrorCode::kPermission && !c.security.allow_group_readable_secrets
              ? text.error().message() + " or set [security] allow_group_readable_secrets = true"
              : text.error().message());
    return;
  }
  std::string s = std::move(*text);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.empty()) {
    p.add(line, r.key_name(file_key), fmt::format("secret file '{}' is empty", printable(file)));
    return;
  }
  out = Secret(std::move(s));
}

bool valid_url(const std::string& u, std::initializer_list<std::string_view> schemes) {
  for (auto s : schemes)
    if (starts_with(u, s) && u.size() > s.size()) return true;
  return false;
}

// Where a PostgreSQL URL's userinfo ends: "postgresql://user:pw@host/db" ->
// the position of '@' (npos when there is none before the path).
size_t userinfo_end(const std::string& url, size_t scheme_len) {
  size_t authority_end = url.find_first_of("/?", scheme_len);
  size_t at = url.rfind('@', authority_end == std::string::npos ? std::string::npos : authority_end);
  return at != std::string::npos && at >= scheme_len ? at : std::string::npos;
}

void read_journal(const toml::table* t, Config& c, Problems& p, const EnvLookup& env) {
  if (!t) return;
  TableReader r(*t, "journal", p);
  JournalConfig& j = c.journal;
  const bool has_path = r.str("path", j.path);
  if (has_path && j.path.empty()) p.add(r.line(), "journal.path", "must not be empty");
  if (r.str("url", j.url)) {
    const toml::node* n = t->get("url");
    const std::string scheme = starts_with(j.url, "postgresql://") ? "postgresql://"
                               : starts_with(j.url, "postgres://") ? "postgres://"
                                                                   : "";
    if (has_path)
      p.add(line_of(*n), "journal.url", "give either path (SQLite) or url (PostgreSQL), not both");
    else if (scheme.empty() || j.url.size() == scheme.size())
      p.add(line_of(*n), "journal.url", "must be a postgresql:// URL, e.g. \"postgresql://mailshard@db1:5432/mailshard\"");
    else if (size_t at = userinfo_end(j.url, scheme.size());
             at != std::string::npos && j.url.substr(scheme.size(), at - scheme.size()).find(':') != std::string::npos)
      // Never echo the URL here: it holds the password.
      p.add(line_of(*n), "journal.url",
            "secrets are not read from the config file; remove the password from the URL and use "
            "password_file, MAILSHARD_JOURNAL_PASSWORD or libpq's PGPASSFILE");
    else if (j.url.find("password=") != std::string::npos)
      p.add(line_of(*n), "journal.url",
            "secrets are not read from the config file; remove password= from the URL and use "
            "password_file, MAILSHARD_JOURNAL_PASSWORD or libpq's PGPASSFILE");
    j.path.clear();
  }
  r.str("password_file", j.password_file);
  r.refuse_inline_secret("password", "password_file or MAILSHARD_JOURNAL_PASSWORD");
  r.duration("max_clock_skew", j.max_clock_skew_ms);
  if (j.url.empty()) {
    if (const toml::node* n = t->get("password_file"))
      p.add(line_of(*n), "journal.password_file", "only used with url (PostgreSQL)");
    if (const toml::node* n = t->get("max_clock_skew"))
      p.add(line_of(*n), "journal.max_clock_skew", "only used with url (PostgreSQL)");
  } else {
    load_secret(r, p, "password_file", j.password_file, "MAILSHARD_JOURNAL_PASSWORD", env, j.password, false, c);
  }
  r.finish();
}

void read_ldap(const toml::table* t, Config& c, Problems& p, const EnvLookup& env) {
  LdapConfig& l = c.ldap;
  if (!t) {
    p.add(1, "ldap", "missing required section [ldap]");
    return;
  }
  TableReader r(*t, "ldap", p);
  l.line = r.line();
  if (r.str("uri", l.uri, true) && !valid_url(l.uri, {"ldap://", "ldaps://", "ldapi://"}))
    p.add(line_of(*t->get("uri")), "ldap.uri", fmt::format("'{}' must start with ldap://, ldaps:// or ldapi://", printable(l.uri)));
  r.str("bind_dn", l.bind_dn);
  r.str("bind_password_file", l.bind_password_file);
  r.refuse_inline_secret("bind_password", "bind_password_file or MAILSHARD_LDAP_PASSWORD");
  r.str("base_dn", l.base_dn, true);
  if (r.str("filter", l.filter) && (l.filter.empty() || l.filter.front() != '(' || l.filter.back() != ')'))
    p.add(line_of(*t->get("filter")), "ldap.filter", fmt::format("'{}' must be an LDAP filter in parentheses", printable(l.filter)));
  for (auto [key, field] : {std::pair{"user_attribute", &l.user_attribute}, std::pair{"host_attribute", &l.host_attribute},
                            std::pair{"home_attribute", &l.home_attribute}}) {
    if (r.str(key, *field) && field->empty()) p.add(line_of(*t->get(key)), r.key_name(key), "must not be empty");
  }
  r.str("activity_attribute", l.activity_attribute);
  r.boolean("starttls", l.starttls);
  r.str("ca_file", l.ca_file);
  r.duration("timeout", l.timeout_ms);
  r.integer("page_size", l.page_size, 1, 100000);
  if (l.starttls && starts_with(l.uri, "ldaps://"))
    p.add(r.line(), "ldap.starttls", "cannot be used with an ldaps:// uri (it is already TLS)");
  load_secret(r, p, "bind_password_file", l.bind_password_file, "MAILSHARD_LDAP_PASSWORD", env, l.bind_password,
              !l.bind_dn.empty(), c);
  r.finish();
}

void read_servers(const toml::node* node, Config& c, Problems& p, const EnvLookup& env) {
  if (!node) {
    p.add(1, "server", "no [[server]] defined (add one [[server]] table per storage server)");
    return;
  }
  const toml::array* arr = node->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    p.add(line_of(*node), "server", "must be an array of tables: write each server as [[server]]");
    return;
  }
  std::map<std::string, int> seen;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table& t = *arr->get(i)->as_table();
    ServerConfig s;
    TableReader r(t, fmt::format("server[{}]", i), p);
    s.line = r.line();
    r.str("name", s.name, true);
    if (!s.name.empty()) {
      if (auto it = seen.find(s.name); it != seen.end())
        p.add(line_of(*t.get("name")), r.key_name("name"),
              fmt::format("server '{}' is defined twice (first at line {})", printable(s.name), it->second));
      else
        seen[s.name] = line_of(*t.get("name"));
    }
    if (r.str("mail_root", s.mail_root, true) && s.mail_root.front() != '/')
      p.add(line_of(*t.get("mail_root")), r.key_name("mail_root"),
            fmt::format("'{}' must be an absolute path", printable(s.mail_root)));
    while (s.mail_root.size() > 1 && s.mail_root.back() == '/') s.mail_root.pop_back();
    r.bytes("capacity_bytes", s.capacity_bytes);
    if (r.str("metrics_url", s.metrics_url) && !s.metrics_url.empty() &&
        !valid_url(s.metrics_url, {"http://", "https://"}))
      p.add(line_of(*t.get("metrics_url")), r.key_name("metrics_url"),
            fmt::format("'{}' must be an http:// or https:// URL", printable(s.metrics_url)));
    if (r.str("doveadm_url", s.doveadm_url) && !s.doveadm_url.empty() &&
        !valid_url(s.doveadm_url, {"http://", "https://"}))
      p.add(line_of(*t.get("doveadm_url")), r.key_name("doveadm_url"),
            fmt::format("'{}' must be an http:// or https:// URL", printable(s.doveadm_url)));
    if (r.str("ca_file", s.ca_file) && !s.ca_file.empty() && s.ca_file.front() != '/')
      p.add(line_of(*t.get("ca_file")), r.key_name("ca_file"),
            fmt::format("'{}' must be an absolute path", printable(s.ca_file)));
    r.str("doveadm_user", s.doveadm_user);
    r.str("doveadm_password_file", s.doveadm_password_file);
    r.refuse_inline_secret("doveadm_password", "doveadm_password_file or MAILSHARD_DOVEADM_PASSWORD");
    r.choice("transport", s.transport, {{"local", TransportKind::kLocal}, {"agent", TransportKind::kAgent}});
    r.str("agent_command", s.agent_command);
    if (s.transport == TransportKind::kAgent && s.agent_command.empty())
      p.add(s.line, r.key_name("agent_command"), "required when transport = \"agent\"");
    // Request paths are relative to the agent's --root and mean paths under
    // mail_root: a root above mail_root would let a sync read a sibling tree.
    auto check_agent_argv = [&](const char* key, const std::string& command) {
      if (command.empty()) return;
      auto argv = split_command_line(command);
      const int line = line_of(*t.get(key));
      if (!argv.ok()) return p.add(line, r.key_name(key), argv.error().message());
      std::optional<std::string> root;
      for (size_t a = 0; a < argv->size(); ++a) {
        const std::string& arg = (*argv)[a];
        if (arg == "--root" && a + 1 < argv->size()) root = (*argv)[a + 1];
        else if (starts_with(arg, "--root=")) root = arg.substr(7);
      }
      while (root && root->size() > 1 && root->back() == '/') root->pop_back();
      if (root && !s.mail_root.empty() && *root != s.mail_root)
        p.add(line, r.key_name(key),
              fmt::format("--root '{}' is not this server's mail_root '{}'; the agent must serve exactly the mail root",
                          printable(*root), printable(s.mail_root)));
    };
    check_agent_argv("agent_command", s.agent_command);
    r.str("peer_command", s.peer_command);
    check_agent_argv("peer_command", s.peer_command);
    if (!s.peer_command.empty() && s.transport != TransportKind::kAgent)
      p.add(line_of(*t.get("peer_command")), r.key_name("peer_command"),
            "needs transport = \"agent\" (the direct data path runs between agents)");
    r.choice("peer_transport", s.peer_transport,
             {{"auto", PeerTransport::kAuto}, {"direct", PeerTransport::kDirect},
              {"via-controller", PeerTransport::kViaController}});
    if (s.peer_transport == PeerTransport::kDirect && s.transport != TransportKind::kAgent)
      p.add(line_of(*t.get("peer_transport")), r.key_name("peer_transport"),
            "\"direct\" needs transport = \"agent\" (this server's agent pulls from the source's)");
    if (r.str("class", s.server_class) && s.server_class.empty())
      p.add(line_of(*t.get("class")), r.key_name("class"), "must not be empty");
    if (s.server_class.find(',') != std::string::npos)
      p.add(line_of(*t.get("class")), r.key_name("class"), "must not contain a comma");
    r.boolean("draining", s.draining);
    r.number("load_capacity", s.load_capacity, 0, 1e6);
    // The older single figure sets both directions; an explicit one wins.
    int both = 0;
    if (r.integer("max_concurrent_moves", both, 1, 64)) s.max_moves_out = s.max_moves_in = both;
    r.integer("max_moves_out", s.max_moves_out, 1, 64);
    r.integer("max_moves_in", s.max_moves_in, 1, 64);
    r.integer("sync_streams", s.sync_streams, 1, 64);
    if (r.str("mail_location", s.mail_location)) {
      auto loc = parse_mail_location(s.mail_location);
      if (!loc.ok()) {
        p.add(line_of(*t.get("mail_location")), r.key_name("mail_location"), loc.error().message());
      } else {
        // A tree outside the home must be where this server's transport may
        // go: its fixed part (before the first variable) inside mail_root.
        for (const char* key : {"INDEX", "CONTROL", "ALT", "INBOX"}) {
          const std::string* v = loc->option(key);
          if (!v || *v == "MEMORY" || v->empty() || v->front() != '/' || s.mail_root.empty()) continue;
          const std::string fixed = v->substr(0, v->find('%'));
          if (!starts_with(fixed, s.mail_root == "/" ? "/" : s.mail_root + "/"))
            p.add(line_of(*t.get("mail_location")), r.key_name("mail_location"),
                  fmt::format("'{}': {}={} is not inside mail_root '{}' (mailshard reads and writes only there; {})",
                              printable(s.mail_location), key, printable(*v), printable(s.mail_root),
                              std::string_view(key) == "INBOX" ? "bind-mount the spool directory under it"
                                                               : fmt::format("put the {} directories under it", key)));
        }
      }
    }
    for (auto [key, field] : {std::pair{"imap_address", &s.imap_address}, std::pair{"pop3_address", &s.pop3_address}}) {
      if (r.str(key, *field) && !parse_socket_address(*field).ok())
        p.add(line_of(*t.get(key)), r.key_name(key), parse_socket_address(*field).error().message());
    }
    load_secret(r, p, "doveadm_password_file", s.doveadm_password_file, "MAILSHARD_DOVEADM_PASSWORD", env,
                s.doveadm_password, !s.doveadm_url.empty(), c);
    if (r.str("storage_group", s.storage_group) && s.storage_group.empty())
      p.add(line_of(*t.get("storage_group")), r.key_name("storage_group"), "must not be empty");
    if (r.str("director_host", s.director_host)) {
      in_addr a4;
      in6_addr a6;
      if (inet_pton(AF_INET, s.director_host.c_str(), &a4) != 1 &&
          inet_pton(AF_INET6, s.director_host.c_str(), &a6) != 1)
        p.add(line_of(*t.get("director_host")), r.key_name("director_host"),
              fmt::format("'{}' is not an IP address (the director knows its backends by IP)",
                          printable(s.director_host)));
    }
    if (!s.storage_group.empty() && s.director_host.empty())
      p.add(line_of(*t.get("storage_group")), r.key_name("director_host"),
            "required with storage_group (the IP the director knows this backend by)");
    if (s.storage_group.empty() && !s.director_host.empty())
      p.add(line_of(*t.get("director_host")), r.key_name("storage_group"), "required with director_host");
    r.finish();
    c.servers.push_back(std::move(s));
  }
}

void read_freeze(const toml::table* t, Config& c, Problems& p, const EnvLookup& env) {
  if (!t) return;
  FreezeConfig& f = c.freeze;
  TableReader r(*t, "freeze", p);
  f.line = r.line();
  r.choice("method", f.method,
           {{"ldap-attribute", FreezeMethod::kLdapAttribute}, {"http", FreezeMethod::kHttp},
            {"command", FreezeMethod::kCommand}, {"none", FreezeMethod::kNone}});
  r.str("attribute", f.attribute);
  r.str("frozen_value", f.frozen_value);
  r.boolean("until_in_value", f.until_in_value);
  r.boolean("owner_in_value", f.owner_in_value);
  r.str("active_value", f.active_value);
  if (r.duration("max_duration", f.max_duration_ms) && f.max_duration_ms <= 0)
    p.add(line_of(*t->get("max_duration")), "freeze.max_duration", "must be positive (a freeze always expires)");
  r.str("url", f.url);
  r.str("token_file", f.token_file);
  r.refuse_inline_secret("token", "token_file or MAILSHARD_FREEZE_TOKEN");
  r.argv("command", f.command);
  switch (f.method) {
    case FreezeMethod::kLdapAttribute:
      if (f.attribute.empty()) p.add(f.line, "freeze.attribute", "required when method = \"ldap-attribute\"");
      if (f.frozen_value.empty() || f.active_value.empty() || f.frozen_value == f.active_value)
        p.add(f.line, "freeze.frozen_value", "frozen_value and active_value must be set and differ");
      if ((f.until_in_value || f.owner_in_value) && f.frozen_value.find(';') != std::string::npos)
        p.add(f.line, "freeze.frozen_value",
              "must not contain ';' with until_in_value or owner_in_value (the move and the deadline follow a ';')");
      break;
    case FreezeMethod::kHttp:
      if (!valid_url(f.url, {"http://", "https://"}))
        p.add(f.line, "freeze.url", "an http:// or https:// URL is required when method = \"http\"");
      load_secret(r, p, "token_file", f.token_file, "MAILSHARD_FREEZE_TOKEN", env, f.token, false, c);
      break;
    case FreezeMethod::kCommand:
      if (f.command.empty()) p.add(f.line, "freeze.command", "required when method = \"command\"");
      break;
    case FreezeMethod::kNone: break;
  }
  r.finish();
}

void read_thaw(const toml::table* t, Config& c, Problems& p) {
  if (!t) return;
  ThawConfig& h = c.thaw;
  TableReader r(*t, "thaw", p);
  h.line = r.line();
  r.argv("command", h.command);
  if (r.duration("timeout", h.timeout_ms) && h.timeout_ms <= 0)
    p.add(line_of(*t->get("timeout")), "thaw.timeout", "must be positive");
  r.finish();
}

void read_kick(const toml::table* t, Config& c, Problems& p) {
  if (!t) return;
  KickConfig& k = c.kick;
  TableReader r(*t, "kick", p);
  k.line = r.line();
  r.choice("method", k.method, {{"doveadm", KickMethod::kDoveadm}, {"command", KickMethod::kCommand}, {"none", KickMethod::kNone}});
  r.argv("command", k.command);
  r.duration("wait", k.wait_ms);
  if (k.method == KickMethod::kCommand && k.command.empty())
    p.add(k.line, "kick.command", "required when method = \"command\"");
  r.finish();
}

// After [[server]]: the storage groups are checked against the router.
void read_router(const toml::table* t, Config& c, Problems& p, const EnvLookup& env) {
  RouterConfig& d = c.router;
  if (t) {
    TableReader r(*t, "router", p);
    d.line = r.line();
    r.choice("method", d.method, {{"mailhost", RouterMethod::kMailHost}, {"director", RouterMethod::kDirector}});
    if (r.str("director_url", d.director_url) && !valid_url(d.director_url, {"http://", "https://"}))
      p.add(line_of(*t->get("director_url")), "router.director_url",
            fmt::format("'{}' must be an http:// or https:// URL", printable(d.director_url)));
    r.str("director_user", d.director_user);
    r.str("director_password_file", d.director_password_file);
    r.refuse_inline_secret("director_password", "director_password_file or MAILSHARD_DIRECTOR_PASSWORD");
    if (r.str("ca_file", d.ca_file) && !d.ca_file.empty() && d.ca_file.front() != '/')
      p.add(line_of(*t->get("ca_file")), "router.ca_file", fmt::format("'{}' must be an absolute path", printable(d.ca_file)));
    if (r.duration("timeout", d.timeout_ms) && d.timeout_ms <= 0)
      p.add(line_of(*t->get("timeout")), "router.timeout", "must be positive");
    if (d.method == RouterMethod::kDirector) {
      if (d.director_url.empty())
        p.add(d.line, "router.director_url", "required when method = \"director\" (the director's doveadm HTTP API)");
      load_secret(r, p, "director_password_file", d.director_password_file, "MAILSHARD_DIRECTOR_PASSWORD", env,
                  d.director_password, true, c);
    }
    r.finish();
  }
  std::map<std::string, std::string> hosts;  // director_host -> server
  bool any_group = false;
  for (size_t i = 0; i < c.servers.size(); ++i) {
    const ServerConfig& s = c.servers[i];
    if (s.storage_group.empty()) continue;
    any_group = true;
    if (d.method != RouterMethod::kDirector) {
      p.add(s.line, fmt::format("server[{}].storage_group", i),
            "needs [router] method = \"director\" (only the director keeps a shared mail root to one writer)");
      continue;
    }
    auto [it, fresh] = hosts.emplace(s.director_host, s.name);
    if (!fresh)
      p.add(s.line, fmt::format("server[{}].director_host", i),
            fmt::format("'{}' is also the director_host of server '{}'", printable(s.director_host), it->second));
  }
  if (d.method == RouterMethod::kDirector && !any_group)
    p.add(d.line, "router.method", "\"director\" needs at least one [[server]] with storage_group and director_host");
}

void read_inventory(const toml::table* t, Config& c, Problems& p) {
  if (!t) return;
  InventoryConfig& i = c.inventory;
  TableReader r(*t, "inventory", p);
  i.line = r.line();
  r.choice("size_source", i.size_source,
           {{"scan", SizeSource::kScan}, {"maildirsize", SizeSource::kMaildirsize}, {"doveadm", SizeSource::kDoveadm}});
  r.integer("threads", i.threads, 1, 256);
  r.duration("metrics_timeout", i.metrics_timeout_ms);
  r.integer("metrics_retries", i.metrics_retries, 0, 10);
  r.finish();
}

void read_move(const toml::table* t, Config& c, Problems& p) {
  if (!t) return;
  MoveConfig& m = c.move;
  TableReader r(*t, "move", p);
  m.line = r.line();
  r.integer("precopy_max_passes", m.precopy_max_passes, 1, 100);
  r.bytes("precopy_threshold", m.precopy_threshold_bytes);
  r.bytes("headroom", m.headroom_bytes);
  r.duration("max_clock_skew", m.max_clock_skew_ms);
  r.duration("grace_period", m.grace_period_ms);
  r.duration("sweep_settle", m.sweep_settle_ms);
  r.bytes("bwlimit", m.bwlimit_bytes_per_s);
  r.finish();
}

void read_plan(const toml::table* t, Config& c, Problems& p) {
  if (!t) return;
  PlanConfig& pl = c.plan;
  TableReader r(*t, "plan", p);
  pl.line = r.line();
  r.number("band", pl.band, 0.0, 1.0);
  r.number("hard_cap", pl.hard_cap, 0.0, 1.0);
  r.bytes("min_free", pl.min_free_bytes);
  r.number("load_band", pl.load_band, 0.0, 10.0);
  r.bytes("max_bytes", pl.max_bytes);
  r.integer("max_moves", pl.max_moves, 0);
  r.integer("max_moves_per_server", pl.max_moves_per_server, 0);
  r.bytes("max_move_size", pl.max_move_bytes);
  r.integer("nights", pl.nights, 1, 366);
  r.finish();
}

void read_rebalance(const toml::table* t, Config& c, Problems& p) {
  if (!t) return;
  RebalanceConfig& rb = c.rebalance;
  TableReader r(*t, "rebalance", p);
  rb.line = r.line();
  r.boolean("require_approval", rb.require_approval);
  if (r.duration("max_plan_age", rb.max_plan_age_ms) && rb.max_plan_age_ms <= 0)
    p.add(line_of(*t->get("max_plan_age")), "rebalance.max_plan_age", "must be positive");
  r.number("max_size_drift", rb.max_size_drift, 0.0, 10.0);
  if (r.duration("sample_interval", rb.sample_interval_ms) && rb.sample_interval_ms < 1'000)
    p.add(line_of(*t->get("sample_interval")), "rebalance.sample_interval",
          fmt::format("must be at least 1s, got {}ms", rb.sample_interval_ms));
  if (r.number("max_load_per_cpu", rb.max_load_per_cpu, 0.0, 1e6) && rb.max_load_per_cpu <= 0)
    p.add(line_of(*t->get("max_load_per_cpu")), "rebalance.max_load_per_cpu", "must be greater than 0");
  if (r.number("max_disk_busy", rb.max_disk_busy, 0.0, 1.0) && rb.max_disk_busy <= 0)
    p.add(line_of(*t->get("max_disk_busy")), "rebalance.max_disk_busy", "must be greater than 0");
  r.integer("max_server_failures", rb.max_server_failures, 0, 1000);
  r.integer("threads", rb.threads, 0, 1024);
  for (auto [key, field] : {std::pair{"metrics_file", &rb.metrics_file}, std::pair{"report_dir", &rb.report_dir}}) {
    if (r.str(key, *field) && !field->empty() && field->front() != '/')
      p.add(line_of(*t->get(key)), r.key_name(key), fmt::format("'{}' must be an absolute path", printable(*field)));
  }
  r.finish();
}

// An attribute descriptor (RFC 4512: a letter, then letters, digits, '-'):
// it goes into LDAP filters unescaped.
bool valid_attribute_name(std::string_view a) {
  if (a.empty() || !std::isalpha(static_cast<unsigned char>(a.front()))) return false;
  for (char ch : a)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') return false;
  return true;
}

void read_auth_http(const toml::table* t, Config& c, Problems& p, const EnvLookup& env) {
  if (!t) return;
  AuthHttpConfig& a = c.auth_http;
  TableReader r(*t, "auth_http", p);
  a.line = r.line();
  if (r.str("listen", a.listen) && !parse_socket_address(a.listen).ok())
    p.add(line_of(*t->get("listen")), "auth_http.listen", parse_socket_address(a.listen).error().message());
  r.integer("workers", a.workers, 1, 1024);
  for (auto [key, field] :
       {std::pair{"login_attributes", &a.login_attributes}, std::pair{"disabled_values", &a.disabled_values}}) {
    const toml::node* n = r.get(key);
    if (!n) continue;
    const auto* arr = n->as_array();
    bool ok = arr != nullptr;
    std::vector<std::string> v;
    for (size_t i = 0; ok && i < arr->size(); ++i) {
      auto el = arr->get(i)->value<std::string>();
      ok = arr->get(i)->is_string() && el && !el->empty();
      if (ok) v.push_back(*el);
    }
    if (!ok) {
      p.add(line_of(*n), r.key_name(key), "must be an array of non-empty strings");
      continue;
    }
    *field = std::move(v);
  }
  for (const auto& attr : a.login_attributes)
    if (!valid_attribute_name(attr))
      p.add(line_of(*t->get("login_attributes")), "auth_http.login_attributes",
            fmt::format("'{}' is not an LDAP attribute name", printable(attr)));
  if (r.duration("auth_wait", a.auth_wait_ms) && (a.auth_wait_ms < 0 || a.auth_wait_ms > 3'600'000))
    p.add(line_of(*t->get("auth_wait")), "auth_http.auth_wait", "must be between 0s and 1h");
  r.str("shared_secret_file", a.shared_secret_file);
  r.refuse_inline_secret("shared_secret", "shared_secret_file or MAILSHARD_AUTH_HTTP_SECRET");
  load_secret(r, p, "shared_secret_file", a.shared_secret_file, "MAILSHARD_AUTH_HTTP_SECRET", env, a.shared_secret,
              false, c);
  r.finish();
}

void read_security(const toml::table* t, Config& c, Problems& p) {
  if (!t) return;
  SecurityConfig& sec = c.security;
  TableReader r(*t, "security", p);
  sec.line = r.line();
  r.boolean("allow_group_readable_secrets", sec.allow_group_readable_secrets);
  if (r.str("file_group", sec.file_group) && !sec.file_group.empty()) {
    auto gid = group_id(sec.file_group);
    if (gid.ok())
      sec.file_gid = *gid;
    else
      p.add(line_of(*t->get("file_group")), "security.file_group", gid.error().message());
  }
  r.finish();
}

// toml++ recurses once per level of a dotted key, table header or nested
// array/inline table: a 100,000-deep key overflows the stack. Before parsing,
// estimate the depth of every line -- brackets and braces open across lines,
// plus the dots of keys on the line (a dot inside a quoted string or a number
// such as 1.5 does not count) -- and refuse anything deeper than this. Our
// deepest key is 2 levels; 32 leaves room and no stack risk.
constexpr int kMaxConfigDepth = 32;

bool is_bare_key_char(char ch) {
  return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '+';
}

// The config as toml++ may see it: ASCII only, the same document. toml++ 3.3
// tests characters for whitespace in several places (after a backslash in a
// """ string, after a line-ending backslash, while scanning a bare value) and
// reaches an "unreachable" branch -- undefined behaviour -- for many non-ASCII
// ones (U+00A1..U+0499, U+FC7A..U+FEFE); the fuzzer found four such paths. So
// in one scan that knows strings and comments:
//  - non-ASCII inside a string becomes an escape (\uXXXX, \UXXXXXXXX); a
//    literal string ('...', '''...''') is rewritten as the basic string of
//    the same value, since only those have escapes;
//  - non-ASCII in a comment becomes spaces;
//  - non-ASCII anywhere else (TOML is ASCII there), invalid UTF-8, and a
//    backslash before a non-ASCII character (no TOML escape is) are refused;
//  - keys or values nested deeper than kMaxConfigDepth are refused.
// Newlines stay where they are, so toml++'s line numbers are the file's.
Result<std::string> ascii_for_toml(std::string_view text, const std::string& path) {
  int open = 0;  // brackets/braces open, carried across lines (arrays may span lines)
  int line = 1;
  int dots = 0;
  size_t i = 0;
  // The last character that is not a space, outside strings and comments. A
  // quote opens a string only where a key or a value starts (after = [ { , .
  // or at a line's start): elsewhere ("0/'x'", "+\"x") toml++ scans it as part
  // of a bare value up to the next separator, so it is no string here either.
  char last = '\n';
  auto starts_value = [](char c) { return c == '=' || c == '[' || c == '{' || c == ',' || c == '.' || c == '\n'; };
  auto deep = [&] {
    return Error::invalid(fmt::format("{}:{}: keys or values nested deeper than {} levels", path, line, kMaxConfigDepth));
  };
  auto not_utf8 = [&] { return Error::invalid(fmt::format("{}:{}: not valid UTF-8", path, line)); };
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  auto escape = [&](uint32_t cp) {
    out += cp <= 0xFFFF ? fmt::format("\\u{:04X}", cp)
                        : fmt::format("\\U{:08X}", cp);
  };
  while (i < text.size()) {
    char ch = text[i];
    if (ch == '\n') {
      ++line;
      dots = 0;
      last = '\n';
      out += ch;
      ++i;
    } else if (ch == '#') {
      while (i < text.size() && text[i] != '\n') {
        if (static_cast<unsigned char>(text[i]) >= 0x80) {
          uint32_t cp;
          if (!next_code_point(text, i, cp)) return not_utf8();
          out.append(1, ' ');
        } else {
          out += text[i++];
        }
      }
    } else if ((ch == '"' || ch == '\'') && starts_value(last)) {
      // A string: basic or literal, single or triple quoted. Escapes only in basic strings.
      last = ch;
      const bool literal = ch == '\'';
      const std::string_view close =
          text.substr(i, 3) == (ch == '"' ? "\"\"\"" : "'''") ? text.substr(i, 3) : text.substr(i, 1);
      const bool triple = close.size() == 3;
      out += triple ? "\"\"\"" : "\"";
      i += close.size();
      while (i < text.size()) {
        if (text.substr(i, close.size()) == close) {
          out += triple ? "\"\"\"" : "\"";
          i += close.size();
          break;
        }
        const char c = text[i];
        if (static_cast<unsigned char>(c) >= 0x80) {
          uint32_t cp;
          if (!next_code_point(text, i, cp)) return not_utf8();
          escape(cp);
          continue;
        }
        if (!literal && c == '\\' && i + 1 < text.size()) {
          // An escape is ASCII (\n, \u00e9, or a line-ending backslash before whitespace).
          if (static_cast<unsigned char>(text[i + 1]) >= 0x80)
            return Error::invalid(fmt::format(
                "{}:{}: a backslash followed by a non-ASCII character in a string (not a TOML escape; write "
                "\\uXXXX)",
                path, line));
          out += c;
          out += text[i + 1];
          if (text[i + 1] == '\n') ++line;
          i += 2;
          continue;
        }
        if (literal && (c == '\\' || c == '"')) {
          out += '\\';  // the same character in the basic string
          out += c;
          ++i;
          continue;
        }
        if (c == '\n') {
          if (!triple) break;  // unterminated: toml++ reports it
          ++line;
        }
        out += c;
        ++i;
      }
    } else if (ch == '[' || ch == '{') {
      if (++open + dots > kMaxConfigDepth) return deep();
      last = ch;
      out += ch;
      ++i;
    } else if (ch == ']' || ch == '}') {
      if (open > 0) --open;
      last = ch;
      out += ch;
      ++i;
    } else if (is_bare_key_char(ch) || ch == '.') {
      // A bare token: a key ("a.b.c", "1.2.3"), a number ("1.5", "1e6") or true/false.
      size_t start = i, n_dots = 0;
      while (i < text.size() && (is_bare_key_char(text[i]) || text[i] == '.')) n_dots += text[i++] == '.';
      const std::string_view tok = text.substr(start, i - start);
      const bool number = n_dots == 1 && tok.front() != '.' && tok.back() != '.';  // 1.5 (or a.b: one level)
      if (!number && (dots += static_cast<int>(n_dots)) + open > kMaxConfigDepth) return deep();
      last = text[i - 1];
      out += tok;
    } else if (static_cast<unsigned char>(ch) >= 0x80) {
      return Error::invalid(fmt::format("{}:{}: a non-ASCII character outside a quoted string or a comment", path, line));
    } else {
      if (ch != ' ' && ch != '\t' && ch != '\r') last = ch;
      out += ch;
      ++i;
    }
  }
  return out;
}

}  // namespace

Result<Config> parse_config(const std::string& text, const std::string& path, const EnvLookup& env) {
  const std::string ascii = MS_TRY(ascii_for_toml(text, path));
  toml::table root;
  try {
    root = toml::parse(ascii, path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return Error::invalid(fmt::format("{}:{}:{}: {}", path, b.line, b.column, e.description()));
  }
  Config c;
  c.path = path;
  Problems p{path, {}};
  static const std::vector<std::string> kSections = {"journal", "ldap",  "server", "freeze",    "thaw", "kick",
                                                     "inventory", "move", "plan",  "rebalance", "security",
                                                     "auth_http", "router"};
  for (const auto& [k, v] : root) {
    std::string key(k.str());
    bool known = false;
    for (const auto& s : kSections) known |= s == key;
    if (!known) {
      std::string hint = closest_match(key, kSections);
      p.add(static_cast<int>(k.source().begin.line), key,
            hint.empty() ? "unknown section" : fmt::format("unknown section (did you mean '{}'?)", hint));
      continue;
    }
    if (key != "server" && !v.is_table())
      p.add(line_of(v), key, fmt::format("must be a table: write it as [{}]", key));
  }
  // [security] first: it decides how the secret files are checked.
  read_security(root["security"].as_table(), c, p);
  read_journal(root["journal"].as_table(), c, p, env);
  read_ldap(root["ldap"].as_table(), c, p, env);
  read_servers(root.get("server"), c, p, env);
  read_freeze(root["freeze"].as_table(), c, p, env);
  read_thaw(root["thaw"].as_table(), c, p);
  read_kick(root["kick"].as_table(), c, p);
  read_router(root["router"].as_table(), c, p, env);
  read_inventory(root["inventory"].as_table(), c, p);
  read_move(root["move"].as_table(), c, p);
  read_plan(root["plan"].as_table(), c, p);
  read_rebalance(root["rebalance"].as_table(), c, p);
  read_auth_http(root["auth_http"].as_table(), c, p, env);
  if (!p.list.empty()) {
    const Problem* first = &p.list.front();
    for (const auto& pr : p.list)
      if (pr.line < first->line) first = &pr;
    return Error::invalid(first->message);
  }
  return c;
}

Result<Config> load_config(const std::string& path, const EnvLookup& env) {
  auto text = read_file(path, kMaxConfigBytes);
  if (!text.ok())
    return Error::invalid(fmt::format("cannot read config: {} (give one with -c FILE or MAILSHARD_CONFIG)",
                                      text.error().message()));
  return parse_config(*text, path, env);
}

}  // namespace mailshard
