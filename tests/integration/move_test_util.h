// Helpers shared by the move scenarios (one scenario per file): running the
// mailshard binary against the lab, comparing IMAP states, looking at homes.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/lab.h"

namespace mailshard::testing {

inline std::string mailshard_bin() {
  const char* b = std::getenv("MAILSHARD_BIN");
  if (!b) throw LabError("MAILSHARD_BIN is not set (run the test through ctest)");
  return b;
}

// The lab's config with `edits` applied (regex -> replacement, line by line),
// written next to it under a new name. Returns its path.
inline std::string lab_config(const std::string& name, const std::vector<std::pair<std::string, std::string>>& edits = {},
                              const std::string& append = {}) {
  Lab& lab = Lab::get();
  std::ifstream in(lab.dir() + "/mailshard.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& [re, rep] : edits) text = std::regex_replace(text, std::regex(re), rep);
  text += append;
  std::string path = lab.dir() + "/" + name + ".toml";
  std::ofstream(path) << text;
  return path;
}

// mailshard -c CONFIG ARGS..., with extra environment ("K=V") through env(1).
inline RunResult mailshard(const std::string& config, std::vector<std::string> args,
                           std::vector<std::string> env = {}, int timeout_s = 300) {
  std::vector<std::string> argv = {"env"};
  for (auto& e : env) argv.push_back(e);
  argv.push_back(mailshard_bin());
  argv.push_back("-c");
  argv.push_back(config);
  for (auto& a : args) argv.push_back(a);
  return Lab::get().run(argv, {}, timeout_s);
}

// The JSON record of the user's latest move (mailshard status USER --json).
inline nlohmann::json latest_move(const std::string& config, const std::string& user) {
  RunResult r = mailshard(config, {"--json", "status", user, "--limit", "1"});
  if (r.rc != 0) throw LabError("mailshard status failed: " + r.describe());
  auto j = nlohmann::json::parse(r.out);
  if (!j.is_array() || j.empty()) throw LabError("no move for " + user);
  return j[0];
}

inline bool path_exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

// Staging directories ("<home>.mailshard-incoming-<id>") left next to a home.
inline std::vector<std::string> staging_dirs(const std::string& home) {
  std::vector<std::string> out;
  std::filesystem::path h(home);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(h.parent_path(), ec)) {
    std::string n = e.path().filename().string();
    if (n.rfind(h.filename().string() + ".mailshard-incoming-", 0) == 0) out.push_back(e.path().string());
  }
  return out;
}

// Gives `user` the Dovecot mail_location `mail` on `store`: a line in the
// store's split-users (a passwd-file userdb read before LDAP). Dovecot
// re-reads that file at most once a second, so a login in the same second as
// an earlier lookup would still see the old location: this waits until
// `doveadm user` answers with the new one.
inline void set_user_mail_location(Lab& lab, const std::string& store, const std::string& user,
                                   const std::string& mail) {
  const std::string conf = lab.store_env(store, "CONF");
  const std::string file = std::filesystem::path(conf).parent_path().string() + "/split-users";
  std::ofstream(file, std::ios::app) << user << "::" << lab.env("MAIL_UID") << ":" << lab.env("MAIL_GID")
                                     << "::" << lab.home_path(store, user) << "::userdb_mail=" << mail << "\n";
  RunResult r;
  for (int i = 0; i < 50; ++i) {
    r = lab.run({lab.dir() + "/bin/doveadm-" + store, "user", "-f", "mail", user});
    if (r.rc == 0 && r.out.find(mail) != std::string::npos) return;
    ::usleep(100 * 1000);
  }
  throw LabError("Dovecot on " + store + " does not give " + user + " the location " + mail + ": " + r.describe());
}

// Every folder of `before` is in `after` with its UIDVALIDITY, and every
// message with its UID, Message-ID, flags (and INTERNALDATE when asked).
inline void expect_uids_kept(const nlohmann::json& before, const nlohmann::json& after, bool internaldate = true) {
  for (const auto& [folder, f] : before["folders"].items()) {
    SCOPED_TRACE(folder);
    ASSERT_TRUE(after["folders"].contains(folder));
    const auto& g = after["folders"][folder];
    if (f.value("noselect", false)) {  // an mbox folder with subfolders is a directory
      EXPECT_TRUE(g.value("noselect", false)) << g.dump();
      continue;
    }
    EXPECT_EQ(g["uidvalidity"], f["uidvalidity"]);
    std::map<int64_t, nlohmann::json> now;
    for (const auto& row : g["detail"]) now[row["uid"].get<int64_t>()] = row;
    for (const auto& row : f["detail"]) {
      auto it = now.find(row["uid"].get<int64_t>());
      ASSERT_NE(it, now.end()) << row.dump();
      EXPECT_EQ(it->second["message_id"], row["message_id"]);
      EXPECT_EQ(it->second["flags"], row["flags"]);
      if (internaldate) {
        EXPECT_EQ(it->second["internaldate"], row["internaldate"]);
      }
    }
  }
}

// How many times each Message-ID occurs over all folders of an IMAP state
// taken with detail (detail rows are [uid, flags, internaldate, size, message-id]
// or objects with a "message_id" key).
inline std::map<std::string, int> message_id_counts(const nlohmann::json& state) {
  std::map<std::string, int> counts;
  for (const auto& [name, f] : state["folders"].items()) {
    if (!f.contains("detail")) continue;
    for (const auto& row : f["detail"]) {
      std::string id;
      if (row.is_object() && row.contains("message_id")) id = row["message_id"].get<std::string>();
      else if (row.is_array() && !row.empty() && row.back().is_string()) id = row.back().get<std::string>();
      if (!id.empty()) ++counts[id];
    }
  }
  return counts;
}

}  // namespace mailshard::testing
