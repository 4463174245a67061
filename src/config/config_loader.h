// Loading mailshard.toml into a Config.
//
// Every error is one line that names the file, the line and the key:
//   "/etc/mailshard/mailshard.toml:7: ldap.bind_pasword_file: unknown key (did you mean 'bind_password_file'?)"
// Unknown keys are errors: a mistyped key must never be silently ignored.
// Secrets come only from *_file keys or the environment and are never logged.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "core/config.h"
#include "util/result.h"

namespace mailshard {

// Looks up an environment variable; injected so tests control the environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

constexpr const char* kDefaultConfigPath = "/etc/mailshard/mailshard.toml";

// The config path to use: the -c value if given, else $MAILSHARD_CONFIG, else
// /etc/mailshard/mailshard.toml.
std::string resolve_config_path(const std::string& cli_value, const EnvLookup& env);

// Parses and validates the file, and reads the secret files it names.
// Errors are kInvalidInput (bad or unreadable config) with the message format above.
Result<Config> load_config(const std::string& path, const EnvLookup& env);
// Same, from text (for tests); `path` is only used in messages and to resolve nothing.
Result<Config> parse_config(const std::string& text, const std::string& path, const EnvLookup& env);

}  // namespace mailshard
