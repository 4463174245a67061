#include "util/hash.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <fmt/format.h>

#include "util/fs.h"
#include "util/strings.h"

namespace mailshard {

std::string Hash128::hex() const { return fmt::format("{:016x}{:016x}", hi, lo); }

Result<Hash128> Hash128::from_hex(std::string_view hex) {
  if (hex.size() != 32) return Error::invalid("hash must be 32 hex digits");
  Hash128 h;
  for (size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (v < 0) return Error::invalid("hash must be lower-case hex");
    uint64_t& part = i < 16 ? h.hi : h.lo;
    part = (part << 4) | static_cast<uint64_t>(v);
  }
  return h;
}

Hasher::Hasher() : state_(XXH3_createState()) { XXH3_128bits_reset(state_); }
Hasher::~Hasher() { XXH3_freeState(state_); }
void Hasher::update(const void* data, size_t len) { XXH3_128bits_update(state_, data, len); }
void Hasher::reset() { XXH3_128bits_reset(state_); }
Hash128 Hasher::digest() const {
  XXH128_hash_t d = XXH3_128bits_digest(state_);
  return {d.high64, d.low64};
}

Hash128 hash_bytes(std::string_view data) {
  XXH128_hash_t d = XXH3_128bits(data.data(), data.size());
  return {d.high64, d.low64};
}

Result<Hash128> hash_fd(int fd, int64_t limit, int64_t* size_out) {
  Hasher h;
  std::vector<char> buf(1 << 18);
  int64_t off = 0;
  while (limit < 0 || off < limit) {
    size_t want = buf.size();
    if (limit >= 0 && static_cast<int64_t>(want) > limit - off) want = static_cast<size_t>(limit - off);
    ssize_t n = ::pread(fd, buf.data(), want, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read");
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    off += n;
  }
  if (size_out) *size_out = off;
  return h.digest();
}

Result<Hash128> hash_file(const std::string& path, int64_t* size_out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(errno, fmt::format("cannot open '{}'", printable(path)));
  return hash_fd(fd.get(), -1, size_out).context(fmt::format("'{}'", printable(path)));
}

}  // namespace mailshard
