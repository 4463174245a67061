// libcurl, loaded on first use (util/lazy_library.h). Call load_curl() before
// any curl_* function; http_request() does.
#pragma once

#include "util/result.h"

namespace mailshard {

// Error: kUnavailable "cannot load libcurl.so.4: ...".
Status load_curl();

}  // namespace mailshard
