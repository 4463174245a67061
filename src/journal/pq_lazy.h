// libpq, loaded on first use (util/lazy_library.h): a journal on SQLite (the
// default) never pays for libpq and the ~20 libraries it brings (GSSAPI,
// OpenSSL, libldap...). Call load_libpq() before any PQ* function;
// PgJournal::open() does.
#pragma once

#include "util/result.h"

namespace mailshard {

// Error: kUnavailable "cannot load libpq.so.5: ..." (install libpq5).
Status load_libpq();

}  // namespace mailshard
