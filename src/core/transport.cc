#include "core/transport.h"

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

Status check_relative_path(const std::string& path) {
  auto bad = [&](std::string_view why) {
    return Error::invalid(fmt::format("invalid path '{}': {}", printable(path), why));
  };
  if (path.empty()) return {};
  if (path.size() > 4096) return bad("longer than 4096 bytes");
  if (path.front() == '/') return bad("absolute paths are not allowed");
  if (path.find('\0') != std::string::npos) return bad("NUL byte");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view comp(path.data() + start, end - start);
    if (comp.empty()) return bad("empty component");
    if (comp == "..") return bad("'..' component");
    if (comp == ".") return bad("'.' component");
    if (comp.size() > 255) return bad("component longer than 255 bytes");
    start = end + 1;
  }
  return {};
}

Result<std::vector<Result<Signature>>> Transport::signatures(const std::vector<SignatureRequest>& requests) {
  std::vector<Result<Signature>> out;
  out.reserve(requests.size());
  for (const auto& r : requests) out.push_back(signature(r));
  return out;
}

Status Transport::size_homes(const std::vector<std::string>& homes, const HomeSizeSink& sink) {
  (void)homes;
  (void)sink;
  return Error::unsupported(fmt::format("{} cannot size mailbox homes", describe()));
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  std::string out;
  out.reserve(a.size() + 1 + b.size());
  out.append(a).push_back('/');
  out.append(b);
  return out;
}

}  // namespace mailshard
