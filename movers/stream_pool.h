// The one fan-out of the sync engine: runs task(0) .. task(n-1) on up to
// `streams` threads (the caller's thread is one of them), each taking the
// next index as it finishes one. The first failure stops the others from
// taking more and is returned; tasks already running finish. Each thread
// holds at most one stream of a transport at a time (transport.h).
#pragma once

#include <cstddef>
#include <functional>

#include "util/result.h"

namespace mailshard {

Status run_streams(size_t n, int streams, const std::function<Status(size_t)>& task);

}  // namespace mailshard
