// The libldap/liblber functions mailshard calls, defined here as forwarders
// to the library opened by load_ldap() (see util/lazy_library.h for why).
// Each forwarder has the exact type of the header's declaration (decltype)
// and resolves its target once; liblber's functions are found through
// libldap, which depends on it.
#include <lber.h>
#include <ldap.h>

#include "directory/ldap_lazy.h"
#include "util/lazy_library.h"

namespace mailshard {
namespace {

LazyLibrary& ldap_library() {
  static LazyLibrary lib(MAILSHARD_LDAP_SONAME);
  return lib;
}

}  // namespace

Status load_ldap() { return ldap_library().load(); }

}  // namespace mailshard

#define MS_LDAP_FORWARD(ret, name, params, args)                                                        \
  ret name params {                                                                                     \
    static const auto fn = reinterpret_cast<decltype(&::name)>(mailshard::ldap_library().symbol(#name)); \
    return fn args;                                                                                     \
  }

extern "C" {

MS_LDAP_FORWARD(void, ber_free, (BerElement* ber, int freebuf), (ber, freebuf))
MS_LDAP_FORWARD(void, ber_memfree, (void* p), (p))
MS_LDAP_FORWARD(int, ldap_initialize, (LDAP** ldp, const char* url), (ldp, url))
MS_LDAP_FORWARD(int, ldap_set_option, (LDAP* ld, int option, const void* in), (ld, option, in))
MS_LDAP_FORWARD(int, ldap_get_option, (LDAP* ld, int option, void* out), (ld, option, out))
MS_LDAP_FORWARD(int, ldap_start_tls_s, (LDAP* ld, LDAPControl** sc, LDAPControl** cc), (ld, sc, cc))
MS_LDAP_FORWARD(int, ldap_sasl_bind_s,
                (LDAP* ld, const char* dn, const char* mech, struct berval* cred, LDAPControl** sc, LDAPControl** cc,
                 struct berval** servercred),
                (ld, dn, mech, cred, sc, cc, servercred))
MS_LDAP_FORWARD(int, ldap_unbind_ext_s, (LDAP* ld, LDAPControl** sc, LDAPControl** cc), (ld, sc, cc))
MS_LDAP_FORWARD(char*, ldap_err2string, (int err), (err))
MS_LDAP_FORWARD(void, ldap_memfree, (void* p), (p))
MS_LDAP_FORWARD(int, ldap_search_ext,
                (LDAP* ld, const char* base, int scope, const char* filter, char** attrs, int attrsonly,
                 LDAPControl** sc, LDAPControl** cc, struct timeval* timeout, int sizelimit, int* msgidp),
                (ld, base, scope, filter, attrs, attrsonly, sc, cc, timeout, sizelimit, msgidp))
MS_LDAP_FORWARD(int, ldap_search_ext_s,
                (LDAP* ld, const char* base, int scope, const char* filter, char** attrs, int attrsonly,
                 LDAPControl** sc, LDAPControl** cc, struct timeval* timeout, int sizelimit, LDAPMessage** res),
                (ld, base, scope, filter, attrs, attrsonly, sc, cc, timeout, sizelimit, res))
MS_LDAP_FORWARD(int, ldap_result, (LDAP* ld, int msgid, int all, struct timeval* timeout, LDAPMessage** result),
                (ld, msgid, all, timeout, result))
MS_LDAP_FORWARD(int, ldap_abandon_ext, (LDAP* ld, int msgid, LDAPControl** sc, LDAPControl** cc), (ld, msgid, sc, cc))
MS_LDAP_FORWARD(int, ldap_msgfree, (LDAPMessage* lm), (lm))
MS_LDAP_FORWARD(LDAPMessage*, ldap_first_entry, (LDAP* ld, LDAPMessage* chain), (ld, chain))
MS_LDAP_FORWARD(LDAPMessage*, ldap_next_entry, (LDAP* ld, LDAPMessage* entry), (ld, entry))
MS_LDAP_FORWARD(int, ldap_get_dn_ber, (LDAP* ld, LDAPMessage* e, BerElement** berout, struct berval* dn),
                (ld, e, berout, dn))
MS_LDAP_FORWARD(int, ldap_get_attribute_ber,
                (LDAP* ld, LDAPMessage* e, BerElement* ber, struct berval* attr, struct berval** vals),
                (ld, e, ber, attr, vals))
MS_LDAP_FORWARD(struct berval**, ldap_get_values_len, (LDAP* ld, LDAPMessage* entry, const char* target),
                (ld, entry, target))
MS_LDAP_FORWARD(void, ldap_value_free_len, (struct berval** vals), (vals))
MS_LDAP_FORWARD(int, ldap_parse_result,
                (LDAP* ld, LDAPMessage* res, int* errcodep, char** matcheddnp, char** diagmsgp, char*** referralsp,
                 LDAPControl*** sc, int freeit),
                (ld, res, errcodep, matcheddnp, diagmsgp, referralsp, sc, freeit))
MS_LDAP_FORWARD(int, ldap_create_page_control,
                (LDAP* ld, ber_int_t pagesize, struct berval* cookie, int iscritical, LDAPControl** ctrlp),
                (ld, pagesize, cookie, iscritical, ctrlp))
MS_LDAP_FORWARD(int, ldap_parse_pageresponse_control,
                (LDAP* ld, LDAPControl* ctrl, ber_int_t* count, struct berval* cookie), (ld, ctrl, count, cookie))
MS_LDAP_FORWARD(int, ldap_create_assertion_control, (LDAP* ld, char* filter, int iscritical, LDAPControl** ctrlp),
                (ld, filter, iscritical, ctrlp))
MS_LDAP_FORWARD(LDAPControl*, ldap_control_find, (const char* oid, LDAPControl** ctrls, LDAPControl*** nextctrlp),
                (oid, ctrls, nextctrlp))
MS_LDAP_FORWARD(void, ldap_control_free, (LDAPControl* ctrl), (ctrl))
MS_LDAP_FORWARD(void, ldap_controls_free, (LDAPControl** ctrls), (ctrls))
MS_LDAP_FORWARD(int, ldap_modify_ext_s,
                (LDAP* ld, const char* dn, LDAPMod** mods, LDAPControl** sc, LDAPControl** cc), (ld, dn, mods, sc, cc))

}  // extern "C"
