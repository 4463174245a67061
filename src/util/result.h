// Error and Result<T>: the one error type of mailshard.
//
// An Error carries a code chosen by what the caller does next (retry later,
// fix the input, give up, roll back) and a message that grows context at each
// layer, so the final line reads
//   "move alice@example.org: final_sync store2: rename ...: No space left on device".
//
// Thread-safety: values; no shared state.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace mailshard {

enum class ErrorCode {
  kInvalidInput,   // bad config, argument or data: fix the input, retrying will not help
  kNotFound,       // the thing named does not exist (user, server, file)
  kConflict,       // someone else changed it or holds it (LDAP assertion, move claim)
  kUnavailable,    // a server or service is down or busy: retry later
  kTimeout,        // an operation ran past its bound: retry later
  kPermission,     // access denied: fix credentials or ownership
  kNoSpace,        // destination full: choose another destination
  kVerifyFailed,   // copies differ: never flip or delete on this
  kCorrupt,        // stored data (journal, frame, file) is malformed
  kInterrupted,    // the operator pressed Ctrl-C / sent SIGTERM
  kUnsupported,    // not implemented or not available in this build
  kInternal,       // a bug or an unexpected system failure
};

// Stable lower-case name of a code ("invalid_input", ...), used in JSON output.
std::string_view error_code_name(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Error invalid(std::string m) { return {ErrorCode::kInvalidInput, std::move(m)}; }
  static Error not_found(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
  static Error conflict(std::string m) { return {ErrorCode::kConflict, std::move(m)}; }
  static Error unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
  static Error timeout(std::string m) { return {ErrorCode::kTimeout, std::move(m)}; }
  static Error permission(std::string m) { return {ErrorCode::kPermission, std::move(m)}; }
  static Error no_space(std::string m) { return {ErrorCode::kNoSpace, std::move(m)}; }
  static Error verify_failed(std::string m) { return {ErrorCode::kVerifyFailed, std::move(m)}; }
  static Error corrupt(std::string m) { return {ErrorCode::kCorrupt, std::move(m)}; }
  static Error interrupted(std::string m) { return {ErrorCode::kInterrupted, std::move(m)}; }
  static Error unsupported(std::string m) { return {ErrorCode::kUnsupported, std::move(m)}; }
  static Error internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

  // "<what>: <strerror(err)>" with the code derived from errno (ENOSPC ->
  // kNoSpace, EACCES/EPERM -> kPermission, ENOENT -> kNotFound, ...).
  static Error from_errno(int err, std::string_view what);

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prepends "ctx: " to the message. Returns *this for chaining.
  Error& context(std::string_view ctx) &;
  Error&& context(std::string_view ctx) &&;

 private:
  ErrorCode code_;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

  // Adds context to an error; no-op on success.
  Result& context(std::string_view ctx) & {
    if (!ok()) std::get<1>(v_).context(ctx);
    return *this;
  }
  Result&& context(std::string_view ctx) && {
    if (!ok()) std::get<1>(v_).context(ctx);
    return std::move(*this);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}

  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  void value() const {}
  const Error& error() const& { return *e_; }
  Error&& error() && { return std::move(*e_); }

  Result& context(std::string_view ctx) & {
    if (e_) e_->context(ctx);
    return *this;
  }
  Result&& context(std::string_view ctx) && {
    if (e_) e_->context(ctx);
    return std::move(*this);
  }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;
inline Status ok_status() { return {}; }

}  // namespace mailshard

// MS_TRY(expr): evaluates a Result<T> expression; on error returns the error
// from the enclosing function, otherwise yields the value (GNU statement
// expression; g++ and clang both accept it).
#define MS_TRY(expr)                                         \
  ({                                                         \
    auto _ms_r = (expr);                                     \
    if (!_ms_r.ok()) return std::move(_ms_r).error();        \
    std::move(_ms_r).value();                                \
  })

// MS_TRY_CTX(expr, ctx): as MS_TRY, adding context to the error.
#define MS_TRY_CTX(expr, ctx)                                               \
  ({                                                                        \
    auto _ms_r = (expr);                                                    \
    if (!_ms_r.ok()) return std::move(std::move(_ms_r).error().context(ctx)); \
    std::move(_ms_r).value();                                               \
  })

// MS_CHECK(expr): for Result<void> (or when the value is not needed).
#define MS_CHECK(expr)                                  \
  do {                                                  \
    auto _ms_r = (expr);                                \
    if (!_ms_r.ok()) return std::move(_ms_r).error();   \
  } while (0)

#define MS_CHECK_CTX(expr, ctx)                                              \
  do {                                                                       \
    auto _ms_r = (expr);                                                     \
    if (!_ms_r.ok()) return std::move(std::move(_ms_r).error().context(ctx)); \
  } while (0)
