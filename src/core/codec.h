// The one binary codec: fixed-width little-endian integers, u32-length
// strings, Hash128, FileAttrs, Error and Status. The agent protocol's
// payloads (wire/wire.h) and the sync state blob (movers/sync_state.h)
// are both written with it, so a FileAttrs field is encoded in one place.
//
// Decoding never trusts a length: a string or a count that the rest of the
// input cannot hold is kCorrupt, "<context>: <what>" (context is what the
// caller decodes: "malformed frame", "sync state").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/transport.h"
#include "util/result.h"

namespace mailshard {

class Encoder {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v);
  void u64(uint64_t v);
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void str(std::string_view s);
  void raw(std::string_view s) { out_.append(s); }
  void hash(const Hash128& h);
  void attrs(const FileAttrs& a);
  void error(const Error& e);
  void status(const Status& s);

  size_t size() const { return out_.size(); }
  std::string take() { return std::move(out_); }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

// Bytes of an encoded FileAttrs.
inline constexpr size_t kEncodedAttrsBytes = 1 + 4 * 4 + 8 * 4;

// An Error as a decoded value (Result<Error> would be ambiguous).
struct ErrorValue {
  Error error;
};

class Decoder {
 public:
  Decoder(std::string_view in, std::string_view context) : in_(in), context_(context) {}
  Result<uint8_t> u8();
  Result<uint32_t> u32();
  Result<uint64_t> u64();
  Result<int64_t> i64();
  Result<std::string> str();
  Result<Hash128> hash();
  Result<FileAttrs> attrs();
  Result<ErrorValue> error();
  Result<Status> status();
  // A u32 count of items each at least min_item_bytes long: refuses counts the
  // rest of the input cannot hold (no huge reserve() from a hostile count).
  Result<uint32_t> count(size_t min_item_bytes);
  // The same for a u64 count.
  Result<uint64_t> count64(size_t min_item_bytes);
  std::string_view rest() const { return in_; }
  // kCorrupt if bytes are left over.
  Status done() const;
  // kCorrupt "<context>: <what>".
  Error corrupt(std::string_view what) const;

 private:
  Result<std::string_view> take(size_t n);
  std::string_view in_;
  std::string_view context_;
};

}  // namespace mailshard
