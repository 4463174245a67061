#include "util/lazy_library.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace mailshard {

Status LazyLibrary::load() {
  std::call_once(once_, [this] {
    handle_ = ::dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
      const char* why = ::dlerror();
      error_ = fmt::format("cannot load {}: {} (is the runtime package installed?)", soname_, why ? why : "unknown error");
    }
  });
  if (!handle_) return Error::unavailable(error_);
  return {};
}

void* LazyLibrary::symbol(const char* name) {
  if (!load().ok()) {
    std::fprintf(stderr, "mailshard: internal error: %s called but %s\n", name, error_.c_str());
    std::abort();
  }
  void* p = ::dlsym(handle_, name);
  if (!p) {
    std::fprintf(stderr, "mailshard: internal error: %s has no symbol %s\n", soname_, name);
    std::abort();
  }
  return p;
}

}  // namespace mailshard
