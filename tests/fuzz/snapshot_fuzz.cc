// libFuzzer target for the snapshot reader (`plan --snapshot DIR`): the input
// holds servers.csv, users.csv and (optionally) meta.json, separated by lines
// "%%"; they are written into a scratch folder and read with read_snapshot().
// Nothing may crash or invoke undefined behaviour; a bad file must come back
// as a "file:line: what" error.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/snapshot.h"

using namespace mailshard;

namespace {

const char* const kFiles[] = {"servers.csv", "users.csv", "meta.json"};

// One folder per process (libFuzzer may run several), removed at exit.
const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string tmpl = std::string(base) + "/mailshard-snapshot-fuzz.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return tmpl;
  }();
  static const bool cleanup = [] {
    std::atexit([] {
      for (const char* f : kFiles) ::unlink((dir + "/" + f).c_str());
      ::rmdir(dir.c_str());
    });
    return true;
  }();
  (void)cleanup;
  return dir;
}

void put(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n <= 0) std::abort();
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  ::close(fd);
}

// The next part up to a "\n%%\n" line (or the end).
std::string_view next_part(std::string_view& rest) {
  size_t sep = rest.find("\n%%\n");
  std::string_view part = rest.substr(0, sep == std::string_view::npos ? rest.size() : sep + 1);
  rest = sep == std::string_view::npos ? std::string_view() : rest.substr(sep + 4);
  return part;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  const std::string& dir = scratch_dir();
  std::string_view servers = next_part(rest);
  std::string_view users = next_part(rest);
  bool has_meta = !rest.empty();
  put(dir + "/servers.csv", servers);
  put(dir + "/users.csv", users);
  if (has_meta) {
    put(dir + "/meta.json", rest);
  } else {
    ::unlink((dir + "/meta.json").c_str());
  }
  auto snap = read_snapshot(dir);
  if (snap.ok()) {
    for (int32_t i = 0; i < static_cast<int32_t>(snap->servers.size()); ++i) (void)snap->server_label(i);
    for (size_t u = 0; u < snap->user_count(); ++u) (void)snap->user_label(static_cast<int64_t>(u));
  }
  return 0;
}
