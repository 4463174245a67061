#include "core/codec.h"

#include <fmt/format.h>

namespace mailshard {

namespace {

// n bytes of v, little-endian, at p.
inline void put_le(char* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

inline uint64_t get_le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

void Encoder::u32(uint32_t v) {
  char b[4];
  put_le(b, v, 4);
  out_.append(b, 4);
}

void Encoder::u64(uint64_t v) {
  char b[8];
  put_le(b, v, 8);
  out_.append(b, 8);
}

void Encoder::str(std::string_view s) {
  u32(static_cast<uint32_t>(s.size()));
  out_.append(s);
}

// Fields built in place and appended once: a sync state or a stat reply
// writes one per entry.
void Encoder::hash(const Hash128& h) {
  char b[16];
  put_le(b, h.hi, 8);
  put_le(b + 8, h.lo, 8);
  out_.append(b, sizeof b);
}

void Encoder::attrs(const FileAttrs& a) {
  char b[kEncodedAttrsBytes];
  b[0] = static_cast<char>(static_cast<uint8_t>(a.type));
  put_le(b + 1, a.mode, 4);
  put_le(b + 5, a.uid, 4);
  put_le(b + 9, a.gid, 4);
  put_le(b + 13, a.nlink, 4);
  put_le(b + 17, static_cast<uint64_t>(a.size), 8);
  put_le(b + 25, static_cast<uint64_t>(a.mtime_ns), 8);
  put_le(b + 33, static_cast<uint64_t>(a.ctime_ns), 8);
  put_le(b + 41, a.ino, 8);
  out_.append(b, sizeof b);
}

void Encoder::error(const Error& e) {
  u8(static_cast<uint8_t>(e.code()));
  str(e.message());
}

void Encoder::status(const Status& s) {
  u8(s.ok() ? 0 : 1);
  if (!s.ok()) error(s.error());
}

Error Decoder::corrupt(std::string_view what) const { return Error::corrupt(fmt::format("{}: {}", context_, what)); }

Result<std::string_view> Decoder::take(size_t n) {
  if (in_.size() < n) return corrupt("truncated payload");
  auto v = in_.substr(0, n);
  in_.remove_prefix(n);
  return v;
}

Result<uint8_t> Decoder::u8() {
  auto b = MS_TRY(take(1));
  return static_cast<uint8_t>(b[0]);
}

Result<uint32_t> Decoder::u32() {
  auto b = MS_TRY(take(4));
  return static_cast<uint32_t>(get_le(b.data(), 4));
}

Result<uint64_t> Decoder::u64() {
  auto b = MS_TRY(take(8));
  return get_le(b.data(), 8);
}

Result<int64_t> Decoder::i64() { return static_cast<int64_t>(MS_TRY(u64())); }

Result<std::string> Decoder::str() {
  uint32_t n = MS_TRY(u32());
  auto b = MS_TRY(take(n));
  return std::string(b);
}

Result<Hash128> Decoder::hash() {
  auto b = MS_TRY(take(16));
  Hash128 h;
  h.hi = get_le(b.data(), 8);
  h.lo = get_le(b.data() + 8, 8);
  return h;
}

// Read in three takes, so a truncated or bad input fails with the message it
// would field by field.
Result<FileAttrs> Decoder::attrs() {
  FileAttrs a;
  uint8_t t = MS_TRY(u8());
  if (t > static_cast<uint8_t>(EntryType::kOther)) return corrupt("bad entry type");
  a.type = static_cast<EntryType>(t);
  auto b = MS_TRY(take(4 * 4 + 8));  // mode, uid, gid, nlink, size
  a.mode = static_cast<uint32_t>(get_le(b.data(), 4));
  a.uid = static_cast<uint32_t>(get_le(b.data() + 4, 4));
  a.gid = static_cast<uint32_t>(get_le(b.data() + 8, 4));
  a.nlink = static_cast<uint32_t>(get_le(b.data() + 12, 4));
  a.size = static_cast<int64_t>(get_le(b.data() + 16, 8));
  // No file has a negative size; the engine's block math (maildir_rules.cc)
  // takes sizes as stat gave them.
  if (a.size < 0) return corrupt("negative file size");
  auto c = MS_TRY(take(8 * 3));  // mtime, ctime, ino
  a.mtime_ns = static_cast<int64_t>(get_le(c.data(), 8));
  a.ctime_ns = static_cast<int64_t>(get_le(c.data() + 8, 8));
  a.ino = get_le(c.data() + 16, 8);
  return a;
}

Result<ErrorValue> Decoder::error() {
  uint8_t c = MS_TRY(u8());
  if (c > static_cast<uint8_t>(ErrorCode::kInternal)) return corrupt("bad error code");
  std::string m = MS_TRY(str());
  return ErrorValue{Error(static_cast<ErrorCode>(c), std::move(m))};
}

Result<Status> Decoder::status() {
  uint8_t has = MS_TRY(u8());
  if (has > 1) return corrupt("bad status flag");
  if (has == 0) return Status();
  ErrorValue e = MS_TRY(error());
  return Status(std::move(e.error));
}

Result<uint32_t> Decoder::count(size_t min_item_bytes) {
  uint32_t n = MS_TRY(u32());
  if (min_item_bytes && static_cast<uint64_t>(n) * min_item_bytes > in_.size()) return corrupt("count exceeds payload");
  return n;
}

Result<uint64_t> Decoder::count64(size_t min_item_bytes) {
  uint64_t n = MS_TRY(u64());
  if (min_item_bytes && n > in_.size() / min_item_bytes) return corrupt("count exceeds payload");
  return n;
}

Status Decoder::done() const {
  if (!in_.empty()) return corrupt("trailing bytes");
  return {};
}

}  // namespace mailshard
