// A secret value (password, API key). It has no formatter and no stream
// operator, so it cannot end up in a log line or an error message by accident;
// reveal() is the one explicit way out, used only where the secret is sent.
#pragma once

#include <string>
#include <utility>

namespace mailshard {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  bool empty() const { return value_.empty(); }
  const std::string& reveal() const { return value_; }

 private:
  std::string value_;
};

}  // namespace mailshard
