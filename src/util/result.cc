#include "util/result.h"

#include <cstring>
#include <string>

namespace mailshard {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidInput: return "invalid_input";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kPermission: return "permission";
    case ErrorCode::kNoSpace: return "no_space";
    case ErrorCode::kVerifyFailed: return "verify_failed";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kInterrupted: return "interrupted";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

Error Error::from_errno(int err, std::string_view what) {
  ErrorCode code = ErrorCode::kInternal;
  switch (err) {
    case ENOSPC:
    case EDQUOT: code = ErrorCode::kNoSpace; break;
    case EACCES:
    case EPERM:
    case EROFS: code = ErrorCode::kPermission; break;
    case ENOENT:
    case ENOTDIR: code = ErrorCode::kNotFound; break;
    case EEXIST:
    case ENOTEMPTY:
    case EBUSY: code = ErrorCode::kConflict; break;
    case ETIMEDOUT: code = ErrorCode::kTimeout; break;
    case EAGAIN:
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case EHOSTUNREACH:
    case ENETUNREACH: code = ErrorCode::kUnavailable; break;
    case ELOOP:
    case ENAMETOOLONG:
    case EINVAL:
    case EXDEV: code = ErrorCode::kInvalidInput; break;
    case EINTR: code = ErrorCode::kInterrupted; break;
    default: break;
  }
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Error(code, std::move(msg));
}

Error& Error::context(std::string_view ctx) & {
  if (!ctx.empty()) {
    std::string m;
    m.reserve(ctx.size() + 2 + message_.size());
    m.append(ctx).append(": ").append(message_);
    message_ = std::move(m);
  }
  return *this;
}

Error&& Error::context(std::string_view ctx) && {
  context(ctx);
  return std::move(*this);
}

}  // namespace mailshard
