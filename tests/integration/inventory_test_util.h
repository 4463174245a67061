// Helpers shared by the inventory integration tests: running the binary on a
// lab config, and the independent references the inventory is checked
// against (ldapsearch, du, node_exporter's page read with curl).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/lab.h"

namespace mailshard::testing {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/inv-itest-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { Lab::get().run({"rm", "-rf", path}); }
};

inline std::string mailshard_bin() {
  const char* bin = std::getenv("MAILSHARD_BIN");
  if (!bin) throw LabError("MAILSHARD_BIN is not set (run the test through ctest)");
  return bin;
}

// mailshard -c CONFIG args... (CONFIG: the lab's own mailshard.toml unless given).
inline RunResult run_mailshard(const Lab& lab, std::vector<std::string> args, const std::string& config = {}) {
  std::vector<std::string> argv = {mailshard_bin(), "-c", config.empty() ? lab.env("MAILSHARD_CONFIG") : config};
  argv.insert(argv.end(), args.begin(), args.end());
  return lab.run(argv, {}, 300);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// One edit of the lab's mailshard.toml: the first `from` after `anchor`
// ("" = from the top) becomes `to`.
struct ConfigEdit {
  std::string anchor, from, to;
};

// The lab's mailshard.toml with `edits` applied, written to DIR/mailshard.toml; returns its path.
inline std::string edited_config(const Lab& lab, const std::string& dir, const std::vector<ConfigEdit>& edits) {
  std::string text = read_text(lab.env("MAILSHARD_CONFIG"));
  for (const auto& e : edits) {
    size_t start = e.anchor.empty() ? 0 : text.find(e.anchor);
    if (start == std::string::npos) throw LabError("config edit: anchor '" + e.anchor + "' not found");
    size_t pos = text.find(e.from, start);
    if (pos == std::string::npos) throw LabError("config edit: '" + e.from + "' not found");
    text.replace(pos, e.from.size(), e.to);
  }
  std::string path = dir + "/mailshard.toml";
  write_text(path, text);
  return path;
}

// du -s --apparent-size -B1 PATH
inline int64_t du_apparent(const Lab& lab, const std::string& path) {
  RunResult r = lab.run({"du", "-s", "--apparent-size", "-B1", path});
  if (r.rc != 0) throw LabError("du " + path + ": " + r.describe());
  return std::atoll(r.out.c_str());
}

struct LdapAccount {
  std::string dn, host, home;
};

// Every mail account as the reader sees it (ldapsearch, paged).
inline std::vector<LdapAccount> ldap_accounts(const Lab& lab) {
  RunResult r = lab.run({"ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", lab.env("LDAP_URI"), "-D",
                         lab.env("LDAP_READER_DN"), "-w", lab.env("LDAP_READER_PW"), "-b", lab.env("LDAP_PEOPLE"),
                         "-E", "pr=500/noprompt", "(objectClass=mlabMailAccount)", "mailHost", "mailMessageStore"});
  if (r.rc != 0) throw LabError("ldapsearch: " + r.describe());
  std::vector<LdapAccount> out;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("dn: ", 0) == 0) out.push_back({line.substr(4), "", ""});
    else if (!out.empty() && line.rfind("mailHost: ", 0) == 0) out.back().host = line.substr(10);
    else if (!out.empty() && line.rfind("mailMessageStore: ", 0) == 0) out.back().home = line.substr(18);
  }
  return out;
}

struct NodeFs {
  std::string mountpoint;
  int64_t size = -1, avail = -1;
};

// node_filesystem_{size,avail}_bytes of the longest mountpoint that holds the
// lab directory, read from node_exporter with curl.
inline NodeFs node_filesystem(const Lab& lab) {
  RunResult r = lab.run({"curl", "-sf", lab.env("NODE_EXPORTER_URL")});
  if (r.rc != 0) throw LabError("curl node_exporter: " + r.describe());
  std::map<std::string, NodeFs> by_mount;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    for (const char* metric : {"node_filesystem_size_bytes{", "node_filesystem_avail_bytes{"}) {
      if (line.rfind(metric, 0) != 0) continue;
      size_t mp = line.find("mountpoint=\"");
      if (mp == std::string::npos) continue;
      std::string mount = line.substr(mp + 12, line.find('"', mp + 12) - mp - 12);
      auto value = static_cast<int64_t>(std::stod(line.substr(line.rfind(' ') + 1)));
      NodeFs& fs = by_mount[mount];
      fs.mountpoint = mount;
      (std::string(metric).find("size") != std::string::npos ? fs.size : fs.avail) = value;
    }
  }
  NodeFs best;
  for (const auto& [mount, fs] : by_mount) {
    bool holds = mount == "/" || (lab.dir() + "/").rfind(mount + "/", 0) == 0;
    if (holds && mount.size() >= best.mountpoint.size()) best = fs;
  }
  if (best.size < 0 || best.avail < 0) throw LabError("node_exporter has no filesystem for " + lab.dir());
  return best;
}

}  // namespace mailshard::testing
