// The dependency rule of docs/ARCHITECTURE.md holds in the code: every
// `#include "folder/..."` in a source folder names the folder itself or one
// the document's ```deps block allows it. The rule is read from the document,
// so the two cannot drift apart.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;

const fs::path kRoot = MAILSHARD_SOURCE_DIR;

// folder -> folders it may include, from the ```deps block.
std::map<std::string, std::set<std::string>> read_rule() {
  std::ifstream in(kRoot / "docs/ARCHITECTURE.md");
  std::map<std::string, std::set<std::string>> rule;
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside) {
      inside = line == "```deps";
      continue;
    }
    if (line == "```") break;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream deps(line.substr(colon + 1));
    std::set<std::string>& allowed = rule[line.substr(0, colon)];
    for (std::string d; deps >> d;) allowed.insert(d);
  }
  return rule;
}

// The folders a source folder holds code in: src/<x>/, planners/, movers/.
std::map<std::string, fs::path> source_folders() {
  std::map<std::string, fs::path> out;
  for (const auto& e : fs::directory_iterator(kRoot / "src"))
    if (e.is_directory()) out[e.path().filename().string()] = e.path();
  out["planners"] = kRoot / "planners";
  out["movers"] = kRoot / "movers";
  return out;
}

TEST(DependencyRule, EveryFolderIsInTheRule) {
  auto rule = read_rule();
  ASSERT_FALSE(rule.empty()) << "no ```deps block in docs/ARCHITECTURE.md";
  for (const auto& [name, path] : source_folders())
    EXPECT_TRUE(rule.count(name)) << name << "/ is not in the dependency rule of docs/ARCHITECTURE.md";
  for (const auto& [name, allowed] : rule)
    for (const auto& d : allowed) EXPECT_TRUE(rule.count(d)) << name << " may include '" << d << "', which is no folder";
}

TEST(DependencyRule, EveryIncludeIsAllowed) {
  auto rule = read_rule();
  auto folders = source_folders();
  int checked = 0;
  for (const auto& [name, path] : folders) {
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string ext = e.path().extension().string();
      if (ext != ".cc" && ext != ".h") continue;
      std::ifstream in(e.path());
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        if (line.rfind("#include \"", 0) != 0) continue;
        auto slash = line.find('/', 10);
        if (slash == std::string::npos) continue;
        const std::string to = line.substr(10, slash - 10);
        if (!folders.count(to)) continue;  // not one of our folders (a third-party path)
        ++checked;
        EXPECT_TRUE(to == name || rule[name].count(to))
            << e.path().lexically_relative(kRoot).string() << ":" << n << " includes " << to
            << "/, which the dependency rule of docs/ARCHITECTURE.md does not allow " << name << "/";
      }
    }
  }
  EXPECT_GT(checked, 100) << "the test read almost no includes: is MAILSHARD_SOURCE_DIR right?";
}

}  // namespace
