#include "movers/maildir_rules.h"

#include <algorithm>
#include <cmath>

namespace mailshard {

namespace {
bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends(std::string_view s, std::string_view p) { return s.size() >= p.size() && s.substr(s.size() - p.size()) == p; }
}  // namespace

std::string_view file_class_name(FileClass c) {
  switch (c) {
    case FileClass::kSkip: return "skip";
    case FileClass::kMessage: return "message";
    case FileClass::kImmutable: return "immutable";
    case FileClass::kAppendLog: return "append-log";
    case FileClass::kInPlace: return "in-place";
    case FileClass::kRewritten: return "rewritten";
  }
  return "?";
}

std::string_view message_base(std::string_view name) {
  auto i = name.find(":2,");
  return i == std::string_view::npos ? name : name.substr(0, i);
}

std::optional<std::string_view> message_flags(std::string_view name) {
  auto i = name.find(":2,");
  if (i == std::string_view::npos) return std::nullopt;
  return name.substr(i + 3);
}

KeywordTable parse_keywords_file(std::string_view text) {
  KeywordTable out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t i = 0;
    int idx = 0;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9' && idx < 1000) idx = idx * 10 + (line[i++] - '0');
    if (i == 0 || i >= line.size() || line[i] != ' ' || i + 1 == line.size() || idx > 25) continue;
    out[idx] = std::string(line.substr(i + 1));
  }
  return out;
}

RemappedFlags remap_message_flags(std::string_view flags, const KeywordTable* src, const KeywordTable* dst) {
  RemappedFlags out;
  std::string_view rest;
  if (auto comma = flags.find(','); comma != std::string_view::npos) {
    rest = flags.substr(comma);
    flags = flags.substr(0, comma);
  }
  std::string kept;
  for (char ch : flags) {
    if (ch >= 'a' && ch <= 'z') {
      const std::string* name = nullptr;
      if (src) {
        auto it = src->find(ch - 'a');
        if (it != src->end()) name = &it->second;
      }
      char mapped = 0;
      if (name && dst)
        for (const auto& [idx, n] : *dst)
          if (n == *name) mapped = static_cast<char>('a' + idx);
      if (mapped) kept.push_back(mapped);
      else out.dropped.push_back(name ? *name : std::string("letter '") + ch + "'");
      continue;
    }
    kept.push_back(ch);  // standard flags, and whatever else Dovecot would read there
  }
  // Maildir wants the flags in ASCII order, each once.
  std::sort(kept.begin(), kept.end());
  kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
  out.flags = kept + std::string(rest);
  return out;
}

DirInfo classify_dir(std::string_view dir_name, bool parent_has_cur_new) {
  DirInfo d;
  if (parent_has_cur_new) {
    d.maildir_sub = dir_name == "cur" || dir_name == "new";
    d.maildir_tmp = dir_name == "tmp";
  }
  d.dbox_mails = dir_name == "dbox-Mails" || dir_name == "dbox-alt-Mails";
  return d;
}

bool is_skipped_name(std::string_view name) {
  // Dotlocks (dovecot-uidlist.lock, *.lock) belong to a running writer; our
  // own temps are half-written by definition.
  return ends(name, ".lock") || starts(name, kTempPrefix);
}

FileClass classify_file(const DirInfo& dir, std::string_view name) {
  if (is_skipped_name(name) || dir.maildir_tmp) return FileClass::kSkip;
  if (dir.maildir_sub) return FileClass::kMessage;
  if (dir.dbox_mails && starts(name, "u.")) return FileClass::kImmutable;
  if (starts(name, "dovecot.index.log") || starts(name, "dovecot.list.index.log") || name == "dovecot.mailbox.log" ||
      name == "maildirsize" || name == "dovecot-uidlist" || name == "courierimapuiddb" ||
      is_mdbox_storage_file(name))
    return FileClass::kAppendLog;
  if (ends(name, ".cache")) return FileClass::kInPlace;
  return FileClass::kRewritten;
}

uint32_t signature_block_len(std::string_view name, int64_t size) {
  // Index-like files change in scattered small records (a flag word, a
  // removed uidlist line): each change costs about one block of literal
  // data, so blocks are small: librsync's sqrt(size) rule, kept within
  // [256, 512]. The signature (4 + 32 bytes per block) flows back.
  if ((starts(name, "dovecot.") || starts(name, "dovecot-")) && size <= (256ll << 20)) {
    // (A negative size, which only a corrupt state or reply could carry, is 0 here.)
    uint32_t rule = static_cast<uint32_t>(std::sqrt(static_cast<double>(std::max<int64_t>(size, 0)))) & ~127u;
    return std::clamp<uint32_t>(rule, 256, 512);
  }
  return 0;  // mbox and others: librsync's recommendation
}

uint32_t diff_block_size(int64_t size) {
  uint32_t bs = 1024;
  while (static_cast<int64_t>(bs) * 65536 < size && bs < (1u << 24)) bs <<= 1;
  return bs;
}

bool is_mdbox_storage_file(std::string_view name) {
  return starts(name, "m.") && name.size() > 2 && name.find_first_not_of("0123456789", 2) == std::string_view::npos;
}

bool is_mbox_index_path(std::string_view rel) {
  const auto slash = rel.rfind('/');
  if (starts(slash == std::string_view::npos ? rel : rel.substr(slash + 1), "dovecot.")) return true;
  return starts(rel, ".imap/") || rel.find("/.imap/") != std::string_view::npos;
}

bool is_uid_list(std::string_view name) { return name == "dovecot-uidlist" || name == "courierimapuiddb"; }

}  // namespace mailshard
