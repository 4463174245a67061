// The libcurl functions mailshard calls, defined here as forwarders to the
// library opened by load_curl() (see util/lazy_library.h for why). Each
// forwarder has the exact type of the header's declaration (decltype) and
// resolves its target once.
#define CURL_DISABLE_TYPECHECK  // the header's type-checking macros would rename the definitions below
#include <curl/curl.h>

#include <cstdarg>

#include "doveadm/curl_lazy.h"
#include "util/lazy_library.h"

namespace mailshard {
namespace {

LazyLibrary& curl_library() {
  static LazyLibrary lib(MAILSHARD_CURL_SONAME);
  return lib;
}

}  // namespace

Status load_curl() { return curl_library().load(); }

}  // namespace mailshard

#define MS_CURL_FN(name) \
  static const auto fn = reinterpret_cast<decltype(&::name)>(mailshard::curl_library().symbol(#name))

extern "C" {

CURLcode curl_global_init(long flags) {
  MS_CURL_FN(curl_global_init);
  return fn(flags);
}
CURL* curl_easy_init(void) {
  MS_CURL_FN(curl_easy_init);
  return fn();
}
CURLcode curl_easy_perform(CURL* curl) {
  MS_CURL_FN(curl_easy_perform);
  return fn(curl);
}
void curl_easy_cleanup(CURL* curl) {
  MS_CURL_FN(curl_easy_cleanup);
  fn(curl);
}
const char* curl_easy_strerror(CURLcode code) {
  MS_CURL_FN(curl_easy_strerror);
  return fn(code);
}
curl_slist* curl_slist_append(curl_slist* list, const char* data) {
  MS_CURL_FN(curl_slist_append);
  return fn(list, data);
}
void curl_slist_free_all(curl_slist* list) {
  MS_CURL_FN(curl_slist_free_all);
  fn(list);
}

// The variadic two: the argument's type follows from the option number,
// exactly as libcurl itself reads it (curl.h, CURLOPTTYPE_*).
CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
  MS_CURL_FN(curl_easy_setopt);
  va_list ap;
  va_start(ap, option);
  CURLcode rc;
  if (option < CURLOPTTYPE_OBJECTPOINT)
    rc = fn(curl, option, va_arg(ap, long));
  else if (option < CURLOPTTYPE_FUNCTIONPOINT)
    rc = fn(curl, option, va_arg(ap, void*));
  else if (option < CURLOPTTYPE_OFF_T)
    rc = fn(curl, option, va_arg(ap, void (*)()));
  else if (option < CURLOPTTYPE_BLOB)
    rc = fn(curl, option, va_arg(ap, curl_off_t));
  else
    rc = fn(curl, option, va_arg(ap, void*));
  va_end(ap);
  return rc;
}
CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
  MS_CURL_FN(curl_easy_getinfo);
  va_list ap;
  va_start(ap, info);
  CURLcode rc = fn(curl, info, va_arg(ap, void*));  // always a pointer to the result
  va_end(ap);
  return rc;
}

}  // extern "C"
