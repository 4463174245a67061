#include "movers/stream_pool.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace mailshard {

Status run_streams(size_t n, int streams, const std::function<Status(size_t)>& task) {
  if (n == 0) return {};
  const size_t threads = std::min(n, static_cast<size_t>(std::max(1, streams)));
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::optional<Error> failure;
  auto worker = [&] {
    while (!stop.load()) {
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      Status st = task(i);
      if (!st.ok()) {
        std::lock_guard lock(mu);
        if (!failure) failure = std::move(st).error();
        stop = true;
        return;
      }
    }
  };
  std::vector<std::thread> others;
  others.reserve(threads - 1);
  for (size_t t = 1; t < threads; ++t) others.emplace_back(worker);
  worker();
  for (auto& t : others) t.join();
  if (failure) return std::move(*failure);
  return {};
}

}  // namespace mailshard
