// libldap (with liblber), loaded on first use (util/lazy_library.h). Call
// load_ldap() before any ldap_* or ber_* function; LdapDirectory::open() does.
#pragma once

#include "util/result.h"

namespace mailshard {

// Error: kUnavailable "cannot load libldap-2.5.so.0: ...".
Status load_ldap();

}  // namespace mailshard
