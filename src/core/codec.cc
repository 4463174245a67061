#include "core/codec.h"

#include <fmt/format.h>

namespace mailshard {

void Encoder::u32(uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out_.append(b, 4);
}

void Encoder::u64(uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out_.append(b, 8);
}

void Encoder::str(std::string_view s) {
  u32(static_cast<uint32_t>(s.size()));
  out_.append(s);
}

void Encoder::hash(const Hash128& h) {
  u64(h.hi);
  u64(h.lo);
}

void Encoder::attrs(const FileAttrs& a) {
  u8(static_cast<uint8_t>(a.type));
  u32(a.mode);
  u32(a.uid);
  u32(a.gid);
  u32(a.nlink);
  i64(a.size);
  i64(a.mtime_ns);
  i64(a.ctime_ns);
  u64(a.ino);
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
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

Result<uint64_t> Decoder::u64() {
  auto b = MS_TRY(take(8));
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

Result<int64_t> Decoder::i64() { return static_cast<int64_t>(MS_TRY(u64())); }

Result<std::string> Decoder::str() {
  uint32_t n = MS_TRY(u32());
  auto b = MS_TRY(take(n));
  return std::string(b);
}

Result<Hash128> Decoder::hash() {
  Hash128 h;
  h.hi = MS_TRY(u64());
  h.lo = MS_TRY(u64());
  return h;
}

Result<FileAttrs> Decoder::attrs() {
  FileAttrs a;
  uint8_t t = MS_TRY(u8());
  if (t > static_cast<uint8_t>(EntryType::kOther)) return corrupt("bad entry type");
  a.type = static_cast<EntryType>(t);
  a.mode = MS_TRY(u32());
  a.uid = MS_TRY(u32());
  a.gid = MS_TRY(u32());
  a.nlink = MS_TRY(u32());
  a.size = MS_TRY(i64());
  // No file has a negative size; the engine's block math (maildir_rules.cc)
  // takes sizes as stat gave them.
  if (a.size < 0) return corrupt("negative file size");
  a.mtime_ns = MS_TRY(i64());
  a.ctime_ns = MS_TRY(i64());
  a.ino = MS_TRY(u64());
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
