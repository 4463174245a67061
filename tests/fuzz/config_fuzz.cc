// libFuzzer target for the config loader: arbitrary bytes as mailshard.toml,
// through toml++ and every check of config_loader.cc. The environment is empty,
// and secret files named by the input are read as the real loader would.
// Nothing may crash or invoke undefined behaviour; a bad file must come back
// as a "file:line: key: what" error.
//
// toml++ is compiled header-only into this target (tests/fuzz/CMakeLists.txt),
// so the TOML parser is instrumented too.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config_loader.h"

using namespace mailshard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  EnvLookup no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  (void)parse_config(text, "fuzz.toml", no_env);
  return 0;
}
