// A shared library opened on first use (dlopen) instead of at every start.
//
// Why: libcurl and libldap bring ~30 shared objects with them (GnuTLS,
// OpenSSL, Kerberos, IDN, SASL, ...). Loading and relocating those costs
// ~7 ms at every start of the binary, more than the whole work of `status`,
// `plan` on a 100k-user snapshot or an agent started per sync, none of which
// talk HTTP or LDAP. The libraries are still what the card names; only
// their loading is deferred to the first command that needs them.
//
// Use: the library's users call load() first and report its error (it names
// the library and the loader's reason); the forwarding stubs (curl_lazy.cc,
// ldap_lazy.cc) define the library's functions under their own names and
// resolve each one on first call, so call sites read like the library's
// documented API.
//
// Thread-safety: load() and symbol() may be called from any thread.
#pragma once

#include <mutex>
#include <string>

#include "util/result.h"

namespace mailshard {

class LazyLibrary {
 public:
  explicit LazyLibrary(const char* soname) : soname_(soname) {}
  LazyLibrary(const LazyLibrary&) = delete;
  LazyLibrary& operator=(const LazyLibrary&) = delete;

  // Opens the library once (RTLD_NOW | RTLD_LOCAL). Error: kUnavailable,
  // "cannot load <soname>: <dlerror>".
  Status load();

  // The address of `name` in the library or its dependencies. Calling a
  // function of a library that is not loaded, or that lacks it, is a
  // programming error: the process stops with a message naming both.
  void* symbol(const char* name);

  const char* soname() const { return soname_; }

 private:
  const char* soname_;
  std::once_flag once_;
  void* handle_ = nullptr;
  std::string error_;
};

}  // namespace mailshard
