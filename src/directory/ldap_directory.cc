#include "directory/ldap_directory.h"

#include <ldap.h>
#include <strings.h>

#include <array>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "directory/ldap_filter.h"
#include "directory/ldap_lazy.h"
#include "util/strings.h"

namespace mailshard {
namespace {

struct MsgFree {
  void operator()(LDAPMessage* m) const { ldap_msgfree(m); }
};
using MsgPtr = std::unique_ptr<LDAPMessage, MsgFree>;

struct ControlFree {
  void operator()(LDAPControl* c) const { ldap_control_free(c); }
};
using ControlPtr = std::unique_ptr<LDAPControl, ControlFree>;

timeval to_timeval(int64_t ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

bool connection_lost(int rc) { return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR; }

// One error line for an LDAP result code, with the server's diagnostic text.
Error ldap_failure(LDAP* ld, int rc, std::string_view what, const char* server_text = nullptr) {
  std::string diag;
  if (server_text && *server_text) {
    diag = server_text;
  } else if (ld && !connection_lost(rc)) {
    char* msg = nullptr;
    if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg) == LDAP_OPT_SUCCESS && msg) {
      diag = msg;
      ldap_memfree(msg);
    }
  }
  std::string text = fmt::format("{}: {}", what, ldap_err2string(rc));
  if (!diag.empty()) text += fmt::format(" ({})", printable(diag));
  switch (rc) {
    case LDAP_SERVER_DOWN:
    case LDAP_CONNECT_ERROR:
    case LDAP_UNAVAILABLE:
    case LDAP_BUSY:
    case LDAP_UNWILLING_TO_PERFORM: return Error::unavailable(std::move(text));
    case LDAP_TIMEOUT:
    case LDAP_TIMELIMIT_EXCEEDED: return Error::timeout(std::move(text));
    case LDAP_INVALID_CREDENTIALS:
    case LDAP_INSUFFICIENT_ACCESS:
    case LDAP_INAPPROPRIATE_AUTH:
    case LDAP_STRONG_AUTH_REQUIRED:
    case LDAP_CONFIDENTIALITY_REQUIRED: return Error::permission(std::move(text));
    case LDAP_NO_SUCH_OBJECT: return Error::not_found(std::move(text));
    case LDAP_ASSERTION_FAILED: return Error::conflict(std::move(text));
    case LDAP_FILTER_ERROR:
    case LDAP_INVALID_DN_SYNTAX:
    case LDAP_UNDEFINED_TYPE:
    case LDAP_PARAM_ERROR:
    case LDAP_INAPPROPRIATE_MATCHING:
    case LDAP_PROTOCOL_ERROR:
    case LDAP_INVALID_SYNTAX: return Error::invalid(std::move(text));
    default: return Error::internal(std::move(text));
  }
}

// Reads one search entry: its DN and every value of the attributes we asked
// for, in one pass over the BER (ldap_get_values_len would re-scan per attribute).
Result<RawEntry> read_entry(LDAP* ld, LDAPMessage* e, const AccountValidator& v) {
  RawEntry out;
  BerElement* ber = nullptr;
  berval bv;
  if (ldap_get_dn_ber(ld, e, &ber, &bv) != LDAP_SUCCESS) {
    if (ber) ber_free(ber, 0);
    return Error::corrupt("LDAP: malformed search entry (no DN)");
  }
  out.dn.assign(bv.bv_val, bv.bv_len);
  BerVarray vals = nullptr;
  int rc;
  for (rc = ldap_get_attribute_ber(ld, e, ber, &bv, &vals); rc == LDAP_SUCCESS;
       rc = ldap_get_attribute_ber(ld, e, ber, &bv, &vals)) {
    if (bv.bv_val == nullptr) break;
    std::string_view name(bv.bv_val, bv.bv_len);
    auto is = [&](const std::string& attr) {
      return !attr.empty() && attr.size() == name.size() && strncasecmp(attr.data(), name.data(), name.size()) == 0;
    };
    std::vector<std::string>* dest = nullptr;
    if (is(v.user_attribute())) dest = &out.user;
    else if (is(v.host_attribute())) dest = &out.host;
    else if (is(v.home_attribute())) dest = &out.home;
    else if (is(v.status_attribute())) dest = &out.status;
    else if (is(v.activity_attribute())) dest = &out.activity;
    if (vals) {
      if (dest)
        for (BerVarray p = vals; p->bv_val; ++p) dest->emplace_back(p->bv_val, p->bv_len);
      ber_memfree(vals);
      vals = nullptr;
    }
  }
  ber_free(ber, 0);
  if (rc != LDAP_SUCCESS) return ldap_failure(ld, rc, fmt::format("LDAP: decoding entry '{}'", printable(out.dn)));
  return out;
}

std::string assertion_for(const std::string& host_attr, const std::string& home_attr, const FlipExpectation& e) {
  return fmt::format("(&{}{}{})", equality_filter(host_attr, e.host), equality_filter(home_attr, e.home), e.also);
}

// The attributes every account search asks for, as the NULL-terminated
// char* array libldap takes (pointing into `names`, so not copyable).
struct AccountAttributes {
  explicit AccountAttributes(const AccountValidator& v)
      : names{v.user_attribute(), v.host_attribute(), v.home_attribute()} {
    if (!v.status_attribute().empty()) names.push_back(v.status_attribute());
    if (!v.activity_attribute().empty()) names.push_back(v.activity_attribute());
    for (auto& n : names) ptrs.push_back(n.data());
    ptrs.push_back(nullptr);
  }
  AccountAttributes(const AccountAttributes&) = delete;
  AccountAttributes& operator=(const AccountAttributes&) = delete;
  char** data() { return ptrs.data(); }

  std::vector<std::string> names;
  std::vector<char*> ptrs;
};

}  // namespace

LdapDirectory::LdapDirectory(LdapConfig ldap, AccountValidator validator)
    : cfg_(std::move(ldap)), validator_(std::move(validator)) {}

LdapDirectory::~LdapDirectory() { close(); }

void LdapDirectory::close() {
  if (ld_) ldap_unbind_ext_s(ld_, nullptr, nullptr);
  ld_ = nullptr;
}

Result<std::unique_ptr<LdapDirectory>> LdapDirectory::connect(const Config& config) {
  std::string status_attr = config.freeze.method == FreezeMethod::kLdapAttribute ? config.freeze.attribute : "";
  std::unique_ptr<LdapDirectory> d(
      new LdapDirectory(config.ldap, AccountValidator(config.ldap, config.servers, status_attr)));
  MS_CHECK(d->open());
  return d;
}

// ldap_initialize + options + TLS (StartTLS when configured), then a simple
// bind as bind_dn when `bind` is set (anonymous when bind_dn is empty).
static Status open_connection(const LdapConfig& cfg, LDAP*& ld, bool bind) {
  auto close = [&] {
    if (ld) ldap_unbind_ext_s(ld, nullptr, nullptr);
    ld = nullptr;
  };
  close();
  const std::string where = fmt::format("LDAP {}", printable(cfg.uri));
  MS_CHECK(load_ldap().context(where));
  int rc = ldap_initialize(&ld, cfg.uri.c_str());
  if (rc != LDAP_SUCCESS || !ld) {
    ld = nullptr;
    return Error::invalid(fmt::format("{}: bad URI: {}", where, ldap_err2string(rc)));
  }
  int version = LDAP_VERSION3;
  ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
  ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
  timeval tv = to_timeval(cfg.timeout_ms);
  ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
  ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);

  const bool tls = starts_with(cfg.uri, "ldaps://") || cfg.starttls;
  // A refused certificate looks like a lost connection; libldap leaves the
  // TLS reason in the diagnostic message. The error says what to check.
  auto tls_failure = [&](Error e) {
    char* msg = nullptr;
    if (!tls || ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg) != LDAP_OPT_SUCCESS || !msg) return e;
    std::string diag = msg;
    ldap_memfree(msg);
    if (diag.empty()) return e;  // not a TLS failure: the server is down or unreachable
    if (diag == "(unknown error code)") diag.clear();  // GnuTLS says no more than that
    return Error::permission(fmt::format(
        "{}: TLS: the server's certificate was not accepted{} (check ldap.ca_file{} and that the certificate "
        "names the host of ldap.uri)",
        where, diag.empty() ? "" : " (" + printable(diag) + ")",
        cfg.ca_file.empty() ? ", unset: the system CAs" : " '" + printable(cfg.ca_file) + "'"));
  };
  if (tls) {
    int demand = LDAP_OPT_X_TLS_DEMAND;  // never talk TLS to an unverified server
    ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
    if (!cfg.ca_file.empty() &&
        ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, cfg.ca_file.c_str()) != LDAP_OPT_SUCCESS) {
      close();
      return Error::invalid(fmt::format("{}: cannot use ca_file '{}'", where, printable(cfg.ca_file)));
    }
    int is_server = 0;
    if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server) != LDAP_OPT_SUCCESS) {
      close();
      return Error::invalid(fmt::format("{}: cannot set up TLS (ca_file '{}')", where, printable(cfg.ca_file)));
    }
  }
  if (cfg.starttls) {
    rc = ldap_start_tls_s(ld, nullptr, nullptr);
    if (rc != LDAP_SUCCESS) {
      Error e = tls_failure(ldap_failure(ld, rc, where + ": StartTLS"));
      close();
      return e;
    }
  }
  if (!bind) return {};

  berval cred;
  cred.bv_val = const_cast<char*>(cfg.bind_password.reveal().c_str());
  cred.bv_len = cfg.bind_password.reveal().size();
  rc = ldap_sasl_bind_s(ld, cfg.bind_dn.empty() ? nullptr : cfg.bind_dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr,
                        nullptr, nullptr);
  if (rc != LDAP_SUCCESS) {
    Error e = connection_lost(rc)
                  ? tls_failure(ldap_failure(ld, rc, where + ": cannot connect"))
                  : ldap_failure(ld, rc,
                                 cfg.bind_dn.empty()
                                     ? where + ": anonymous bind"
                                     : fmt::format("LDAP bind as '{}' to {}", printable(cfg.bind_dn), printable(cfg.uri)));
    if (rc == LDAP_INVALID_CREDENTIALS)
      e = Error::permission(e.message() +
                            " (check ldap.bind_dn and the password in bind_password_file or $MAILSHARD_LDAP_PASSWORD)");
    close();
    return e;
  }
  return {};
}

Status LdapDirectory::open() { return open_connection(cfg_, ld_, /*bind=*/true); }

template <typename Op>
auto LdapDirectory::with_reconnect(Op&& op) -> decltype(op()) {
  if (!ld_) MS_CHECK(open());
  auto r = op();
  if (!r.ok() && r.error().code() == ErrorCode::kUnavailable) {
    // The server may have closed an idle connection: one fresh attempt.
    if (auto st = open(); !st.ok()) return r;
    r = op();
  }
  return r;
}

Status LdapDirectory::search_paged(const std::function<Status(Account&&)>& fn,
                                   std::vector<DirectoryAnomaly>* anomalies) {
  AccountAttributes attrs(validator_);

  const std::string what = fmt::format("LDAP search '{}' under '{}'", printable(cfg_.filter), printable(cfg_.base_dn));
  berval cookie{0, nullptr};
  struct CookieFree {
    berval* c;
    ~CookieFree() {
      if (c->bv_val) ber_memfree(c->bv_val);
    }
  } cookie_guard{&cookie};
  int64_t entries = 0;

  do {
    LDAPControl* raw_page = nullptr;
    int rc = ldap_create_page_control(ld_, cfg_.page_size, &cookie, /*iscritical=*/0, &raw_page);
    if (rc != LDAP_SUCCESS) return ldap_failure(ld_, rc, what + ": paged-results control");
    ControlPtr page(raw_page);
    std::array<LDAPControl*, 2> ctrls = {page.get(), nullptr};
    int msgid = 0;
    rc = ldap_search_ext(ld_, cfg_.base_dn.c_str(), LDAP_SCOPE_SUBTREE, cfg_.filter.c_str(), attrs.data(), 0,
                         ctrls.data(), nullptr, nullptr, LDAP_NO_LIMIT, &msgid);
    if (rc != LDAP_SUCCESS) return ldap_failure(ld_, rc, what);

    bool page_done = false;
    while (!page_done) {
      LDAPMessage* raw = nullptr;
      timeval tv = to_timeval(cfg_.timeout_ms);
      int type = ldap_result(ld_, msgid, LDAP_MSG_ONE, &tv, &raw);
      MsgPtr msg(raw);
      if (type == 0) {
        ldap_abandon_ext(ld_, msgid, nullptr, nullptr);
        return Error::timeout(fmt::format("{}: no answer within {} ms", what, cfg_.timeout_ms));
      }
      if (type < 0) {
        int err = LDAP_SERVER_DOWN;
        ldap_get_option(ld_, LDAP_OPT_RESULT_CODE, &err);
        return ldap_failure(ld_, err, what);
      }
      if (type == LDAP_RES_SEARCH_ENTRY) {
        auto raw_entry = read_entry(ld_, msg.get(), validator_);
        if (!raw_entry.ok()) return std::move(raw_entry).error();
        ++entries;
        std::string dn_shown = printable(raw_entry->dn);
        auto account = validator_.validate(std::move(*raw_entry));
        if (!account.ok()) {
          if (anomalies) anomalies->push_back({std::move(dn_shown), account.error().message()});
          continue;
        }
        if (auto st = fn(std::move(*account)); !st.ok()) {
          ldap_abandon_ext(ld_, msgid, nullptr, nullptr);
          return st;
        }
      } else if (type == LDAP_RES_SEARCH_RESULT) {
        int err = LDAP_SUCCESS;
        char* errmsg = nullptr;
        LDAPControl** sctrls = nullptr;
        rc = ldap_parse_result(ld_, msg.get(), &err, nullptr, &errmsg, nullptr, &sctrls, 0);
        std::string server_text = errmsg ? errmsg : "";
        if (errmsg) ldap_memfree(errmsg);
        if (rc != LDAP_SUCCESS) {
          if (sctrls) ldap_controls_free(sctrls);
          return ldap_failure(ld_, rc, what);
        }
        if (err != LDAP_SUCCESS) {
          if (sctrls) ldap_controls_free(sctrls);
          if (err == LDAP_SIZELIMIT_EXCEEDED)
            return Error::unavailable(fmt::format(
                "{}: the server stopped after {} entries (size limit) and ignored the paged-results control", what,
                entries));
          return ldap_failure(ld_, err, what, server_text.c_str());
        }
        if (cookie.bv_val) ber_memfree(cookie.bv_val);
        cookie = {0, nullptr};
        if (LDAPControl* pr = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, sctrls, nullptr)) {
          ber_int_t estimate = 0;
          rc = ldap_parse_pageresponse_control(ld_, pr, &estimate, &cookie);
          if (rc != LDAP_SUCCESS) {
            ldap_controls_free(sctrls);
            return ldap_failure(ld_, rc, what + ": paged-results response");
          }
        }
        if (sctrls) ldap_controls_free(sctrls);
        page_done = true;
      }
      // LDAP_RES_SEARCH_REFERENCE: referrals are not followed.
    }
  } while (cookie.bv_len > 0);
  return {};
}

Status LdapDirectory::for_each_account(const std::function<Status(Account&&)>& fn,
                                       std::vector<DirectoryAnomaly>* anomalies) {
  std::lock_guard lock(mu_);
  // Only re-run the search after a lost connection if nothing was delivered yet.
  bool delivered = false;
  auto counting = [&](Account&& a) -> Status {
    delivered = true;
    return fn(std::move(a));
  };
  size_t anomalies_before = anomalies ? anomalies->size() : 0;
  if (!ld_) MS_CHECK(open());
  auto st = search_paged(counting, anomalies);
  if (!st.ok() && st.error().code() == ErrorCode::kUnavailable && !delivered) {
    if (anomalies) anomalies->resize(anomalies_before);
    if (open().ok()) st = search_paged(counting, anomalies);
  }
  return st;
}

Result<std::vector<RawEntry>> LdapDirectory::search_entries(const std::string& base, int scope,
                                                            const std::string& filter, int size_limit) {
  AccountAttributes attrs(validator_);
  const std::string what = fmt::format("LDAP search '{}' under '{}'", printable(filter), printable(base));
  LDAPMessage* raw = nullptr;
  timeval tv = to_timeval(cfg_.timeout_ms);
  int rc = ldap_search_ext_s(ld_, base.c_str(), scope, filter.c_str(), attrs.data(), 0, nullptr, nullptr, &tv,
                             size_limit, &raw);
  MsgPtr res(raw);
  if (rc != LDAP_SUCCESS && !(rc == LDAP_SIZELIMIT_EXCEEDED && res)) return ldap_failure(ld_, rc, what);
  std::vector<RawEntry> out;
  for (LDAPMessage* e = ldap_first_entry(ld_, res.get()); e; e = ldap_next_entry(ld_, e))
    out.push_back(MS_TRY(read_entry(ld_, e, validator_)));
  return out;
}

Result<std::string> LdapDirectory::probe() {
  std::lock_guard lock(mu_);
  return with_reconnect([&]() -> Result<std::string> {
    auto entries = MS_TRY(search_entries(cfg_.base_dn, LDAP_SCOPE_SUBTREE, cfg_.filter, 1));
    return entries.empty() ? std::string() : entries.front().dn;
  });
}

Result<Account> LdapDirectory::find_account(const std::string& user) {
  return find_login(user, {validator_.user_attribute()});
}

Result<Account> LdapDirectory::find_login(const std::string& login, const std::vector<std::string>& attributes) {
  std::lock_guard lock(mu_);
  std::string match;
  for (const auto& a : attributes) match += equality_filter(a, login);
  if (attributes.size() > 1) match = "(|" + match + ")";
  const std::string filter = fmt::format("(&{}{})", cfg_.filter, match);
  auto entries = MS_TRY(with_reconnect([&] { return search_entries(cfg_.base_dn, LDAP_SCOPE_SUBTREE, filter, 2); }));
  const std::string who = fmt::format("{}={}", fmt::join(attributes, "|"), printable(login));
  if (entries.empty()) return Error::not_found(fmt::format("no account with {}", who));
  if (entries.size() > 1)
    return Error::invalid(fmt::format("several entries have {}: '{}', '{}'", who, printable(entries[0].dn),
                                      printable(entries[1].dn)));
  std::string dn_shown = printable(entries[0].dn);
  auto account = validator_.validate(std::move(entries[0]));
  if (!account.ok()) return Error::invalid(fmt::format("{} ({}): {}", who, dn_shown, account.error().message()));
  return account;
}

Status LdapDirectory::modify(const std::string& dn, const std::vector<std::pair<std::string, std::string>>& replace,
                             const std::optional<std::string>& assertion_filter) {
  const std::string what = fmt::format("LDAP modify '{}'", printable(dn));
  std::vector<LDAPMod> mods(replace.size());
  std::vector<std::array<char*, 2>> values(replace.size());
  std::vector<LDAPMod*> mod_ptrs;
  for (size_t i = 0; i < replace.size(); ++i) {
    values[i] = {const_cast<char*>(replace[i].second.c_str()), nullptr};
    mods[i].mod_op = LDAP_MOD_REPLACE;
    mods[i].mod_type = const_cast<char*>(replace[i].first.c_str());
    mods[i].mod_values = values[i].data();
    mod_ptrs.push_back(&mods[i]);
  }
  mod_ptrs.push_back(nullptr);
  ControlPtr assertion;
  if (assertion_filter) {
    std::string f = *assertion_filter;
    LDAPControl* raw = nullptr;
    int rc = ldap_create_assertion_control(ld_, f.data(), /*iscritical=*/1, &raw);
    if (rc != LDAP_SUCCESS)
      return Error::invalid(fmt::format("{}: bad assertion filter '{}': {}", what, printable(f), ldap_err2string(rc)));
    assertion.reset(raw);
  }
  std::array<LDAPControl*, 2> ctrls = {assertion.get(), nullptr};
  int rc = ldap_modify_ext_s(ld_, dn.c_str(), mod_ptrs.data(), assertion ? ctrls.data() : nullptr, nullptr);
  if (rc != LDAP_SUCCESS) return ldap_failure(ld_, rc, what);
  return {};
}

Result<std::vector<std::string>> LdapDirectory::read_values(const std::string& dn, const std::string& attribute) {
  std::string attr = attribute;
  std::array<char*, 2> attrs = {attr.data(), nullptr};
  LDAPMessage* raw = nullptr;
  timeval tv = to_timeval(cfg_.timeout_ms);
  int rc = ldap_search_ext_s(ld_, dn.c_str(), LDAP_SCOPE_BASE, "(objectClass=*)", attrs.data(), 0, nullptr, nullptr,
                             &tv, 1, &raw);
  MsgPtr res(raw);
  if (rc != LDAP_SUCCESS) return ldap_failure(ld_, rc, fmt::format("LDAP read '{}' of '{}'", printable(attribute), printable(dn)));
  std::vector<std::string> out;
  LDAPMessage* e = ldap_first_entry(ld_, res.get());
  if (!e) return Error::not_found(fmt::format("LDAP read '{}': no such entry", printable(dn)));
  berval** vals = ldap_get_values_len(ld_, e, attr.c_str());
  if (vals) {
    for (berval** p = vals; *p; ++p) out.emplace_back((*p)->bv_val, (*p)->bv_len);
    ldap_value_free_len(vals);
  }
  return out;
}

Status LdapDirectory::flip(const std::string& dn, const FlipExpectation& expected, const std::string& new_host,
                           const std::optional<std::string>& new_home) {
  std::lock_guard lock(mu_);
  const std::string& host_attr = validator_.host_attribute();
  const std::string& home_attr = validator_.home_attribute();
  std::vector<std::pair<std::string, std::string>> replace = {{host_attr, new_host}};
  if (new_home) replace.emplace_back(home_attr, *new_home);
  const std::string assertion = assertion_for(host_attr, home_attr, expected);

  auto st = with_reconnect([&] { return modify(dn, replace, assertion); });
  if (st.ok() || st.error().code() != ErrorCode::kConflict) return st;

  // The assertion failed: either someone else changed the entry, or an
  // earlier attempt of this very flip succeeded and its reply was lost.
  auto host_now = with_reconnect([&] { return read_values(dn, host_attr); });
  auto home_now = with_reconnect([&] { return read_values(dn, home_attr); });
  if (!host_now.ok()) return std::move(host_now).error();
  if (!home_now.ok()) return std::move(home_now).error();
  auto shown = [](const std::vector<std::string>& v) {
    if (v.empty()) return std::string("(none)");
    std::vector<std::string> p;
    for (const auto& s : v) p.push_back(printable(s, 120));
    return join(p, "|");
  };
  bool already = host_now->size() == 1 && (*host_now)[0] == new_host && home_now->size() == 1 &&
                 (*home_now)[0] == (new_home ? *new_home : expected.home);
  if (already) return {};
  return Error::conflict(fmt::format(
      "entry changed underneath us: '{}' was expected to hold {}={} {}={}{} but holds {}={} {}={}", printable(dn),
      host_attr, printable(expected.host, 120), home_attr, printable(expected.home, 120),
      expected.also.empty() ? "" : " and match " + printable(expected.also, 120), host_attr, shown(*host_now),
      home_attr, shown(*home_now)));
}

Status LdapDirectory::set_attribute(const std::string& dn, const std::string& attribute, const std::string& value,
                                    const std::optional<std::string>& assertion_filter) {
  std::lock_guard lock(mu_);
  auto st = with_reconnect([&] { return modify(dn, {{attribute, value}}, assertion_filter); });
  if (!st.ok() && st.error().code() == ErrorCode::kConflict) {
    // Already holding the value (a retried write whose reply was lost) is success.
    auto now = with_reconnect([&] { return read_values(dn, attribute); });
    if (now.ok() && now->size() == 1 && (*now)[0] == value) return {};
    return Error::conflict(fmt::format("entry changed underneath us: '{}' does not match {}", printable(dn),
                                       printable(assertion_filter.value_or(""))));
  }
  return st;
}

Result<std::optional<std::string>> LdapDirectory::get_attribute(const std::string& dn, const std::string& attribute) {
  std::lock_guard lock(mu_);
  auto values = MS_TRY(with_reconnect([&] { return read_values(dn, attribute); }));
  if (values.empty()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(values[0]));
}

LdapPasswordChecker::LdapPasswordChecker(LdapConfig ldap) : cfg_(std::move(ldap)) {}

LdapPasswordChecker::~LdapPasswordChecker() {
  if (ld_) ldap_unbind_ext_s(ld_, nullptr, nullptr);
}

Result<bool> LdapPasswordChecker::check(const std::string& dn, const std::string& password) {
  // An empty password would be an unauthenticated bind (RFC 4513 5.1.2),
  // which some servers answer with success: never a login.
  if (password.empty() || dn.empty()) return false;
  berval cred;
  cred.bv_val = const_cast<char*>(password.data());
  cred.bv_len = password.size();
  int rc = LDAP_SERVER_DOWN;
  for (int attempt = 0; attempt < 2 && connection_lost(rc); ++attempt) {
    // A fresh connection when there is none, or once more when the server
    // closed an idle one.
    if (!ld_ || attempt > 0) MS_CHECK(open_connection(cfg_, ld_, /*bind=*/false));
    rc = ldap_sasl_bind_s(ld_, dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
  }
  if (rc == LDAP_SUCCESS) return true;
  if (rc == LDAP_INVALID_CREDENTIALS) return false;
  Error e = ldap_failure(ld_, rc, fmt::format("LDAP bind as '{}' to {}", printable(dn), printable(cfg_.uri)));
  if (connection_lost(rc) && ld_) {
    ldap_unbind_ext_s(ld_, nullptr, nullptr);
    ld_ = nullptr;
  }
  return e;
}

}  // namespace mailshard
