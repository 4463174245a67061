// The timed halves of tests/bench/inventory/run.sh (the baselines are
// ldapsearch, scan.c and du, run by the script in the same invocation):
//
//   inventory_bench ldap CONFIG   read every account with LdapDirectory (paged)
//   inventory_bench size DIR      size the tree at DIR with the Maildir scanner
//   inventory_bench walk DIR      a bare recursive readdir walk (no stat at all),
//                                 the floor when ../shared/bench/scan.c is absent
//
// Each prints one line of counts, so the script can check that every tool saw
// the same data.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "config/config_loader.h"
#include "directory/ldap_directory.h"
#include "inventory/maildir_scanner.h"

namespace {

using namespace mailshard;

int fail(const std::string& msg) {
  std::fprintf(stderr, "inventory_bench: %s\n", msg.c_str());
  return 1;
}

int read_ldap(const char* config_path) {
  auto config = load_config(config_path, process_env());
  if (!config.ok()) return fail(config.error().message());
  auto dir = LdapDirectory::connect(*config);
  if (!dir.ok()) return fail(dir.error().message());
  int64_t accounts = 0, bytes = 0;
  std::vector<DirectoryAnomaly> anomalies;
  auto st = (*dir)->for_each_account(
      [&](Account&& a) -> Status {
        ++accounts;
        bytes += static_cast<int64_t>(a.user.size() + a.host.size() + a.home.size());
        return {};
      },
      &anomalies);
  if (!st.ok()) return fail(st.error().message());
  std::printf("accounts=%lld anomalies=%zu value_bytes=%lld\n", static_cast<long long>(accounts), anomalies.size(),
              static_cast<long long>(bytes));
  return 0;
}

int size_tree(const char* path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(std::string(path) + ": " + std::strerror(errno));
  auto r = scan_tree(fd, path);
  if (!r.ok()) return fail(r.error().message());
  std::printf("bytes=%lld messages=%lld files=%lld stat_calls=%lld\n", static_cast<long long>(r->bytes),
              static_cast<long long>(r->messages), static_cast<long long>(r->files),
              static_cast<long long>(r->stat_calls));
  return 0;
}

int64_t walk(int fd) {
  DIR* d = fdopendir(fd);
  if (!d) return 0;
  int64_t n = 0;
  while (struct dirent* e = readdir(d)) {
    const char* name = e->d_name;
    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
    ++n;
    if (e->d_type == DT_DIR) {
      int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) n += walk(sub);
    }
  }
  closedir(d);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return fail("usage: inventory_bench ldap CONFIG | size DIR | walk DIR");
  std::string mode = argv[1];
  if (mode == "ldap") return read_ldap(argv[2]);
  if (mode == "size") return size_tree(argv[2]);
  if (mode == "walk") {
    int fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(std::string(argv[2]) + ": " + std::strerror(errno));
    std::printf("entries=%lld\n", static_cast<long long>(walk(fd)));
    return 0;
  }
  return fail("unknown mode '" + mode + "'");
}
