#include "movers/courier_to_dovecot.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {

namespace {

// Dovecot Maildir keeps keywords in file names as letters a..z.
constexpr size_t kMaxKeywordLetters = 26;

std::string path_of(const std::string& maildir, const std::string& dir, std::string_view name) {
  std::string p = maildir;
  for (std::string_view part : {std::string_view(dir), name}) {
    if (part.empty()) continue;
    if (!p.empty()) p += '/';
    p += part;
  }
  return p;
}

Error bad_file(ErrorCode code, const std::string& user, const std::string& path, const std::string& what) {
  return Error(code, fmt::format("user {}: {}: {}", printable(user), printable(path), what));
}

// The base name: the message name before ":2," (Maildir's info separator).
std::string_view base_of(std::string_view name) {
  auto p = name.find(':');
  return p == std::string_view::npos ? name : name.substr(0, p);
}

// Lines of a file that must end in a newline; nullopt when its last line was
// cut (a truncated file).
std::optional<std::vector<std::string_view>> whole_lines(std::string_view text) {
  std::vector<std::string_view> out;
  if (text.empty()) return out;
  if (text.back() != '\n') return std::nullopt;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 10 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int64_t to_int(std::string_view s) {
  int64_t v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// A keyword: an IMAP atom without the characters flags may not hold.
bool valid_keyword(std::string_view k) {
  if (k.empty() || k.front() == '\\') return false;
  for (unsigned char c : k)
    if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' || c == ']')
      return false;
  return true;
}

// ---------------------------------------------------------------------------
// UTF-8 and modified UTF-7 (RFC 3501 5.1.3)

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";


void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

Result<std::string> utf8_to_mutf7(std::string_view utf8) {
  std::string out;
  std::vector<uint16_t> units;  // the pending non-ASCII run, as UTF-16
  auto flush = [&] {
    if (units.empty()) return;
    out += '&';
    uint32_t bits = 0;
    int nbits = 0;
    for (uint16_t u : units) {
      bits = (bits << 16) | u;
      nbits += 16;
      while (nbits >= 6) {
        nbits -= 6;
        out += kB64[(bits >> nbits) & 0x3F];
      }
      bits &= (1u << nbits) - 1;
    }
    if (nbits > 0) out += kB64[(bits << (6 - nbits)) & 0x3F];
    out += '-';
    units.clear();
  };
  size_t i = 0;
  while (i < utf8.size()) {
    uint32_t cp = 0;
    if (!next_code_point(utf8, i, cp))
      return Error::corrupt(fmt::format("'{}' is not valid UTF-8 (byte {})", printable(utf8), i + 1));
    if (cp >= 0x20 && cp <= 0x7E) {
      flush();
      out += static_cast<char>(cp);
      if (cp == '&') out += '-';
    } else if (cp >= 0x10000) {
      cp -= 0x10000;
      units.push_back(static_cast<uint16_t>(0xD800 + (cp >> 10)));
      units.push_back(static_cast<uint16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      units.push_back(static_cast<uint16_t>(cp));
    }
  }
  flush();
  return out;
}

Result<std::string> mutf7_to_utf8(std::string_view s) {
  auto bad = [&] { return Error::corrupt(fmt::format("'{}' is not valid modified UTF-7", printable(s))); };
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c > 0x7E) return bad();
    if (c != '&') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t end = s.find('-', i + 1);
    if (end == std::string_view::npos) return bad();
    if (end == i + 1) {
      out += '&';
      i = end + 1;
      continue;
    }
    uint32_t bits = 0;
    int nbits = 0;
    std::vector<uint16_t> units;
    for (size_t k = i + 1; k < end; ++k) {
      const char* p = std::strchr(kB64, s[k]);
      if (!p || !*p) return bad();
      bits = (bits << 6) | static_cast<uint32_t>(p - kB64);
      nbits += 6;
      if (nbits >= 16) {
        nbits -= 16;
        units.push_back(static_cast<uint16_t>((bits >> nbits) & 0xFFFF));
        bits &= (1u << nbits) - 1;
      }
    }
    if (bits != 0 || units.empty()) return bad();  // padding bits must be zero
    for (size_t k = 0; k < units.size(); ++k) {
      uint32_t u = units[k];
      if (u >= 0xD800 && u <= 0xDBFF) {
        if (k + 1 >= units.size() || units[k + 1] < 0xDC00 || units[k + 1] > 0xDFFF) return bad();
        u = 0x10000 + ((u - 0xD800) << 10) + (units[++k] - 0xDC00);
      } else if (u >= 0xDC00 && u <= 0xDFFF) {
        return bad();
      } else if (u >= 0x20 && u <= 0x7E) {
        return bad();  // printable ASCII must stand for itself
      }
      append_utf8(out, u);
    }
    i = end + 1;
  }
  return out;
}

namespace {

// A control character: Dovecot's UTF-8 names carry it raw (a tab would split
// a subscription into levels), modified UTF-7 encodes it.
bool has_control(std::string_view s) {
  for (unsigned char ch : s)
    if (ch < 0x20 || ch == 0x7f) return true;
  return false;
}

// In LAYOUT=fs a folder level is a directory beside its parent folder's own
// entries: Maildir's cur/new/tmp (Dovecot's maildir_is_internal_name), and
// the files Dovecot and Courier keep in a folder or the Maildir. A level of
// such a name would be taken for them, or collide with them.
bool fs_reserved_level(std::string_view level) {
  static constexpr std::string_view kNames[] = {
      "cur",           "new",           "tmp",           "subscriptions",       "maildirsize",
      "maildirfolder", "dovecot-uidlist", "dovecot-keywords", "courierimapkeywords", "courierimaphieracl",
      "courierimapuiddb", "courierimapacl", "courierimapsubscribed", "courierpop3dsizelist", "dovecot-uidvalidity"};
  // (Dovecot's "dovecot.index*" and "dovecot-uidvalidity.<hex>" have a '.',
  // which no Maildir++ level has.)
  for (auto n : kNames)
    if (level == n) return true;
  return false;
}

}  // namespace

Result<std::string> dovecot_folder_dir(std::string_view courier_dir, const DovecotLayout& layout) {
  if (courier_dir.empty()) return std::string();
  if (courier_dir.front() != '.')
    return Error::corrupt(fmt::format("'{}' is not a Maildir++ folder (no leading '.')", printable(courier_dir)));
  std::string out;
  for (const auto& level : split(courier_dir.substr(1), '.')) {
    if (level.empty())
      return Error::corrupt(fmt::format("folder '{}' has an empty hierarchy level", printable(courier_dir)));
    auto enc = utf8_to_mutf7(level);
    if (!enc.ok())
      return Error::corrupt(fmt::format("folder name '{}' is not valid UTF-8", printable(courier_dir)));
    if (layout.utf8 && has_control(level))
      return Error::unsupported(fmt::format("folder name '{}' has a control character, which the destination's UTF-8 "
                                            "names cannot carry",
                                            printable(courier_dir)));
    // In LAYOUT=fs a level is a directory beside the folder's own cur/, new/,
    // tmp/ and files: a level of those names would be taken for them.
    if (layout.fs && fs_reserved_level(level))
      return Error::unsupported(fmt::format("folder '{}' has a level '{}', which LAYOUT=fs cannot tell from the "
                                            "folder's own files (rename the folder, or use Dovecot's Maildir++ layout)",
                                            printable(courier_dir), printable(level)));
    if (!out.empty() || !layout.fs) out += layout.fs ? '/' : '.';
    out += layout.utf8 ? std::string(level) : *enc;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Courier's side

namespace {

struct ParsedUiddb {
  int64_t uidvalidity = 0;
  int64_t next_uid = 0;
  std::vector<std::pair<int64_t, std::string>> entries;  // in file order
};

Result<ParsedUiddb> parse_uiddb(const std::string& user, const std::string& path, std::string_view text) {
  auto bad = [&](const std::string& what) { return bad_file(ErrorCode::kCorrupt, user, path, what); };
  auto lines = whole_lines(text);
  if (!lines) return bad("truncated (the last line has no end)");
  if (lines->empty()) return bad("truncated (empty, no header line)");
  auto head = split((*lines)[0], ' ');
  if (head.size() != 3 || !all_digits(head[0]) || !all_digits(head[1]) || !all_digits(head[2]))
    return bad(fmt::format("malformed header '{}' (want '<version> <uidvalidity> <nextuid>')", printable((*lines)[0])));
  if (head[0] != "1" && head[0] != "2") return bad(fmt::format("unknown version {}", head[0]));
  ParsedUiddb out;
  out.uidvalidity = to_int(head[1]);
  out.next_uid = to_int(head[2]);
  if (out.uidvalidity == 0 || out.next_uid == 0)
    return bad(fmt::format("UIDVALIDITY {} and next UID {} must be above 0", out.uidvalidity, out.next_uid));
  // Hash sets of views into `text`: a 100k-message folder is parsed under the
  // freeze, and ordered sets of long, same-prefix names cost tens of ms there.
  std::unordered_set<int64_t> seen_uids;
  std::unordered_set<std::string_view> seen_bases;
  seen_uids.reserve(lines->size());
  seen_bases.reserve(lines->size());
  for (size_t n = 1; n < lines->size(); ++n) {
    std::string_view line = (*lines)[n];
    auto sp = line.find(' ');
    std::string_view uid_text = line.substr(0, sp);
    std::string_view name = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    if (!all_digits(uid_text) || name.empty() || name.find('/') != std::string_view::npos)
      return bad(fmt::format("line {}: malformed entry '{}' (want '<uid> <file name>')", n + 1, printable(line)));
    const int64_t uid = to_int(uid_text);
    if (uid == 0 || uid >= out.next_uid)
      return bad(fmt::format("line {}: UID {} is not between 1 and the next UID {}", n + 1, uid, out.next_uid));
    if (!seen_uids.insert(uid).second) return bad(fmt::format("line {}: UID {} appears twice", n + 1, uid));
    std::string_view base = base_of(name);
    if (!seen_bases.insert(base).second)
      return bad(fmt::format("line {}: message {} appears twice", n + 1, printable(base)));
    out.entries.emplace_back(uid, std::string(base));
  }
  return out;
}

// The base names of a folder's messages (views into its CourierFolder).
using BaseSet = std::unordered_set<std::string_view>;

// Keywords per base name, and the keyword order (:list first).
struct ParsedKeywords {
  std::vector<std::string> order;
  std::map<std::string, std::set<std::string>> by_base;
};

Result<ParsedKeywords> parse_keywords(const std::string& user, const std::string& maildir, const CourierFolder& f,
                                      const BaseSet& bases) {
  ParsedKeywords out;
  auto kw_path = [&](const std::string& name) { return path_of(maildir, f.dir, "courierimapkeywords/" + name); };
  std::set<std::string, std::less<>> known;
  auto add_name = [&](const std::string& k) {
    if (known.insert(k).second) out.order.push_back(k);
  };
  if (auto it = f.keyword_files.find(":list"); it != f.keyword_files.end()) {
    const std::string path = kw_path(":list");
    auto bad = [&](const std::string& what) { return bad_file(ErrorCode::kCorrupt, user, path, what); };
    auto lines = whole_lines(it->second);
    if (!lines) return bad("truncated (the last line has no end)");
    std::vector<std::string> names;
    size_t n = 0;
    for (; n < lines->size() && !(*lines)[n].empty(); ++n) {
      std::string k((*lines)[n]);
      if (!valid_keyword(k)) return bad(fmt::format("line {}: '{}' is not a keyword", n + 1, printable(k)));
      names.push_back(k);
    }
    if (n == lines->size() && !lines->empty()) return bad("truncated (no empty line after the keyword names)");
    for (++n; n < lines->size(); ++n) {
      std::string_view line = (*lines)[n];
      auto colon = line.rfind(':');
      if (colon == std::string_view::npos || colon == 0)
        return bad(fmt::format("line {}: malformed entry '{}' (want '<file name>:<index>...')", n + 1, printable(line)));
      std::string base(line.substr(0, colon));
      // A message expunged since: Courier drops its entry at its next rewrite
      // of the list; its keywords went with the message. Not an error.
      if (!bases.count(base)) continue;
      auto& set = out.by_base[base];
      set.clear();
      for (const auto& idx : split(line.substr(colon + 1), ' ')) {
        if (idx.empty()) continue;
        if (!all_digits(idx) || static_cast<size_t>(to_int(idx)) >= names.size())
          return bad(fmt::format("line {}: keyword index '{}' is not among the {} names", n + 1, printable(idx),
                                 names.size()));
        set.insert(names[to_int(idx)]);
      }
    }
    for (const auto& k : names) add_name(k);
  }
  // Updates: the plain name wins over every ".<n>." one, else the highest n.
  struct Update {
    int64_t rank = -1;  // n, or INT64_MAX for the plain name
    const std::string* file = nullptr;
    std::string name;
  };
  std::map<std::string, Update> updates;
  for (const auto& [name, content] : f.keyword_files) {
    if (name == ":list") continue;
    std::string base = name;
    int64_t rank = INT64_MAX;
    if (name.size() > 1 && name[0] == '.') {
      auto dot = name.find('.', 1);
      if (dot != std::string::npos && all_digits(std::string_view(name).substr(1, dot - 1))) {
        rank = to_int(std::string_view(name).substr(1, dot - 1));
        base = name.substr(dot + 1);
      }
    }
    // The update of a message expunged since: Courier-IMAP leaves these
    // behind after an EXPUNGE (the lab's Courier store shows it) until it
    // next merges the updates into :list. Refusing them would refuse real
    // mailboxes; the keywords went with the message.
    if (!bases.count(base)) continue;
    auto& u = updates[base];
    if (rank > u.rank) u = {rank, &content, name};
  }
  std::set<std::string> from_updates;
  for (const auto& [base, u] : updates) {
    const std::string path = kw_path(u.name);
    auto lines = whole_lines(*u.file);
    if (!lines) return bad_file(ErrorCode::kCorrupt, user, path, "truncated (the last line has no end)");
    std::set<std::string> set;
    for (size_t n = 0; n < lines->size(); ++n) {
      std::string k((*lines)[n]);
      if (k.empty()) continue;
      if (!valid_keyword(k))
        return bad_file(ErrorCode::kCorrupt, user, path, fmt::format("line {}: '{}' is not a keyword", n + 1, printable(k)));
      set.insert(k);
      if (!known.count(k)) from_updates.insert(k);
    }
    out.by_base[base] = std::move(set);
  }
  for (const auto& k : from_updates) add_name(k);
  for (auto it = out.by_base.begin(); it != out.by_base.end();) it = it->second.empty() ? out.by_base.erase(it) : ++it;
  return out;
}

BaseSet bases_of(const CourierFolder& f) {
  BaseSet bases;
  bases.reserve(f.cur.size() + f.new_.size());
  for (const auto* names : {&f.cur, &f.new_})
    for (const auto& n : *names) bases.emplace(base_of(n));
  return bases;
}

// One courierpop3dsizelist entry: the message and what POP3 clients know it by.
struct Pop3Entry {
  std::string base;
  std::string uidl;
  int64_t order = 0;  // the data line's number, 1-based
};

// Courier's UIDL of a message known by name only (version 0 lines, uid 0):
// the base name, with what POP3 may not carry and its own escape written +XX.
std::string escaped_uidl(std::string_view base) {
  std::string out;
  for (unsigned char c : base) {
    if (c < 0x21 || c > 0x7e || c == '\'' || c == '"' || c == '+') out += fmt::format("+{:02X}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

// What a dovecot-uidlist P field can hold and a POP3 client accepts: Dovecot
// ends a field at a space (maildir_uidlist_read_extended) and RFC 1939 allows
// 0x21..0x7e.
bool carriable_uidl(std::string_view uidl) {
  return !uidl.empty() && std::all_of(uidl.begin(), uidl.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) <= 0x7e;
  });
}

struct ParsedSizelist {
  int64_t uidvalidity = 0;  // from a /2 or /3 header; 0 otherwise
  std::vector<Pop3Entry> entries;
};

Result<ParsedSizelist> parse_sizelist(const std::string& user, const std::string& path, std::string_view text) {
  auto bad = [&](const std::string& what) { return bad_file(ErrorCode::kCorrupt, user, path, what); };
  auto lines = whole_lines(text);
  if (!lines) return bad("truncated (the last line has no end)");
  ParsedSizelist out;
  size_t first = 0;
  if (!lines->empty() && starts_with((*lines)[0], "/")) {
    auto head = split((*lines)[0], ' ');
    const bool v23 = (head[0] == "/2" || head[0] == "/3") && head.size() == 3 && all_digits(head[1]) && all_digits(head[2]);
    const bool v1 = head[0] == "/1" && head.size() == 2 && all_digits(head[1]);
    if (!v23 && !v1)
      return bad(fmt::format("line 1: unknown header '{}' (want '/3 <nextuid> <uidvalidity>', '/2 ...' or '/1 <nextuid>')",
                             printable((*lines)[0])));
    if (v23) out.uidvalidity = to_int(head[2]);
    first = 1;
  }
  std::set<std::string, std::less<>> seen_bases, seen_uidls;
  for (size_t n = first; n < lines->size(); ++n) {
    std::string_view line = (*lines)[n];
    auto f = split(line, ' ');
    // "<file name> <size>[ <uid>[:<uidv>[:<digit>]]]", each line on its own
    // (Dovecot's migration tool reads them so).
    std::vector<std::string> ids = f.size() == 3 ? split(f[2], ':') : std::vector<std::string>{};
    const bool ok = (f.size() == 2 || f.size() == 3) && !f[0].empty() && f[0].find('/') == std::string::npos &&
                    all_digits(f[1]) &&
                    (f.size() == 2 ||
                     (ids.size() <= 3 && all_digits(ids[0]) && (ids.size() < 2 || all_digits(ids[1])) &&
                      (ids.size() < 3 || (ids[2].size() == 1 && all_digits(ids[2])))));
    if (!ok)
      return bad(fmt::format("line {}: malformed entry '{}' (want '<file name> <size> [<uid>[:<uidvalidity>[:<n>]]]')",
                             n + 1, printable(line)));
    Pop3Entry e;
    e.base = std::string(base_of(f[0]));
    e.order = static_cast<int64_t>(n - first + 1);
    const int64_t uid = ids.empty() ? 0 : to_int(ids[0]);
    const int64_t uidv = ids.size() < 2 ? 0 : to_int(ids[1]);
    e.uidl = uid == 0 ? escaped_uidl(e.base) : uidv != 0 ? fmt::format("UID{}-{}", uid, uidv) : fmt::format("UID{}", uid);
    if (!carriable_uidl(e.uidl))
      return bad_file(ErrorCode::kUnsupported, user, path,
                      fmt::format("line {}: UIDL '{}' cannot be carried in a dovecot-uidlist P field; not converting",
                                  n + 1, printable(e.uidl)));
    if (!seen_bases.insert(e.base).second)
      return bad(fmt::format("line {}: message {} appears twice", n + 1, printable(e.base)));
    if (!seen_uidls.insert(e.uidl).second)
      return bad(fmt::format("line {}: UIDL {} appears twice", n + 1, printable(e.uidl)));
    out.entries.push_back(std::move(e));
  }
  return out;
}

// Adds the POP3 UIDLs and order of the INBOX's listed messages to its view;
// a listed message without a UID gets the next one (see the header).
Status add_pop3(const std::string& user, const std::string& maildir, const CourierFolder& f, std::string_view sizelist,
                FolderView& v) {
  const std::string path = path_of(maildir, f.dir, "courierpop3dsizelist");
  auto list = MS_TRY(parse_sizelist(user, path, sizelist));
  const auto bases = bases_of(f);
  std::map<std::string, int64_t, std::less<>> uid_of;
  for (const auto& [uid, base] : v.uids) uid_of.emplace(base, uid);
  for (const auto& e : list.entries) {
    if (!bases.count(e.base)) continue;  // expunged since pop3d wrote the list
    auto it = uid_of.find(e.base);
    int64_t uid = 0;
    if (it != uid_of.end()) {
      uid = it->second;
    } else {
      if (v.uidvalidity == 0) {
        if (list.uidvalidity == 0)
          return bad_file(ErrorCode::kUnsupported, user, path,
                          "POP3 UIDLs but no courierimapuiddb and no UIDVALIDITY in this file's header, so no UIDs "
                          "to carry them; open the INBOX once with Courier-IMAP (it writes courierimapuiddb), then "
                          "move again");
        v.uidvalidity = list.uidvalidity;
        v.next_uid = 1;
      }
      uid = v.next_uid++;
      v.uids.emplace(uid, e.base);
    }
    v.pop3_uidls[uid] = e.uidl;
    v.pop3_order[uid] = e.order;
  }
  return {};
}

// The folder's view, and its keyword order for the conversion (one parse of
// the keyword files for both).
Result<FolderView> folder_view(const std::string& user, const std::string& maildir, const CourierFolder& f,
                               const BaseSet& bases, std::vector<std::string>* keyword_order) {
  FolderView v;
  // A name starting with ':' has no base name: neither Courier's nor
  // Dovecot's UID list can name it (the fuzzer's find).
  for (const auto* names : {&f.cur, &f.new_})
    for (const auto& n : *names)
      if (base_of(n).empty())
        return bad_file(ErrorCode::kUnsupported, user, path_of(maildir, f.dir, (names == &f.cur ? "cur/" : "new/") + n),
                        "a message file name that starts with ':' has no base name; rename it, then move again");
  if (f.uiddb) {
    auto db = MS_TRY(parse_uiddb(user, path_of(maildir, f.dir, "courierimapuiddb"), *f.uiddb));
    v.uidvalidity = db.uidvalidity;
    v.next_uid = db.next_uid;
    for (auto& [uid, base] : db.entries)
      if (bases.count(base)) v.uids.emplace(uid, std::move(base));  // gone: expunged since Courier wrote the list
  }
  auto kw = MS_TRY(parse_keywords(user, maildir, f, bases));
  v.keywords = std::move(kw.by_base);
  if (keyword_order) *keyword_order = std::move(kw.order);
  return v;
}

}  // namespace

Result<FolderView> courier_folder_view(const std::string& user, const std::string& maildir, const CourierFolder& f) {
  return folder_view(user, maildir, f, bases_of(f), nullptr);
}

namespace {

// Message name with the keyword letters added to its ":2," flags (sorted,
// without duplicates; whatever follows a ',' after the flags is kept).
std::string with_letters(std::string_view name, const std::string& letters) {
  std::string base(base_of(name));
  std::string flags, rest;
  auto info = name.find(":2,");
  if (info != std::string_view::npos) {
    std::string_view tail = name.substr(info + 3);
    auto comma = tail.find(',');
    flags = std::string(tail.substr(0, comma));
    if (comma != std::string_view::npos) rest = std::string(tail.substr(comma));
  }
  // A letter Courier put there means nothing to it; Dovecot would read a keyword.
  flags.erase(std::remove_if(flags.begin(), flags.end(), [](char c) { return c >= 'a' && c <= 'z'; }), flags.end());
  flags += letters;
  std::sort(flags.begin(), flags.end());
  flags.erase(std::unique(flags.begin(), flags.end()), flags.end());
  return base + ":2," + flags + rest;
}

// Whether the ":2," flags of a file name hold a lowercase letter.
bool has_lowercase_flag(std::string_view name) {
  auto info = name.find(":2,");
  if (info == std::string_view::npos) return false;
  for (char c : name.substr(info + 3)) {
    if (c == ',') break;
    if (c >= 'a' && c <= 'z') return true;
  }
  return false;
}

}  // namespace

Result<DovecotConversion> convert_courier_to_dovecot(const std::string& user, const CourierMailbox& in,
                                                     const DovecotLayout& layout) {
  DovecotConversion out;
  out.layout = layout;
  if (layout.fs && !in.other_dirs.empty())
    return bad_file(ErrorCode::kUnsupported, user, path_of(in.maildir, in.other_dirs.front(), ""),
                    "is a directory but no folder; Dovecot's LAYOUT=fs would list it as a folder (move it out of the "
                    "Maildir, or use Dovecot's Maildir++ layout)");
  std::set<std::string> dst_dirs;
  for (const auto& f : in.folders) {
    DovecotFolder d;
    d.src_dir = f.dir;
    auto dst = dovecot_folder_dir(f.dir, layout);
    if (!dst.ok()) return bad_file(dst.error().code(), user, path_of(in.maildir, f.dir, ""), dst.error().message());
    d.dst_dir = std::move(*dst);
    if (!dst_dirs.insert(d.dst_dir).second)
      return bad_file(ErrorCode::kConflict, user, path_of(in.maildir, f.dir, ""),
                      fmt::format("becomes {}, which another folder becomes too", printable(d.dst_dir)));
    std::vector<std::string> courier_order;
    d.view = MS_TRY(folder_view(user, in.maildir, f, bases_of(f), &courier_order));
    if (f.dir.empty() && in.pop3_sizelist) MS_CHECK(add_pop3(user, in.maildir, f, *in.pop3_sizelist, d.view));

    // Keyword letters: in Courier's order (:list first), only those in use.
    std::set<std::string> used;
    for (const auto& [base, set] : d.view.keywords) used.insert(set.begin(), set.end());
    std::vector<std::string> order;
    for (const auto& k : courier_order)
      if (used.count(k)) order.push_back(k);
    if (order.size() > kMaxKeywordLetters)
      return bad_file(ErrorCode::kUnsupported, user, path_of(in.maildir, f.dir, "courierimapkeywords"),
                      fmt::format("{} keywords are in use in this folder; Dovecot Maildir keeps at most {} (as file "
                                  "name letters a-z), so the rest would be lost; not converting",
                                  order.size(), kMaxKeywordLetters));
    std::map<std::string, char> letter;
    for (size_t i = 0; i < order.size(); ++i) letter[order[i]] = static_cast<char>('a' + i);
    if (!order.empty()) {
      std::string text;
      for (size_t i = 0; i < order.size(); ++i) text += fmt::format("{} {}\n", i, order[i]);
      d.keywords = std::move(text);
    }

    // Names after the renames, by base name (keys are views into `f`'s
    // names; the values are copies: the renames are sorted below, and a
    // view into a short (in-place) string would then show another rename's
    // target, as the fuzzer found).
    std::unordered_map<std::string_view, std::string> final_name;  // base -> file name in cur/ or new/
    final_name.reserve(f.cur.size() + f.new_.size());
    auto place = [&](const std::vector<std::string>& names, std::string_view sub) {
      for (const auto& n : names) {
        std::string_view base = base_of(n);
        auto it = d.view.keywords.empty() ? d.view.keywords.end() : d.view.keywords.find(std::string(base));
        // A message with keywords goes to cur/ with their letters; one
        // without keeps its place, but not lowercase letters another
        // program left in its flags (Dovecot would read keywords).
        if (it != d.view.keywords.end() || has_lowercase_flag(n)) {
          std::string letters;
          if (it != d.view.keywords.end())
            for (const auto& k : it->second) letters += letter.at(k);
          std::string to = std::string(it != d.view.keywords.end() ? "cur" : sub) + "/" + with_letters(n, letters);
          std::string from = std::string(sub) + "/" + n;
          if (to != from) {
            d.renames.emplace_back(std::move(from), std::move(to));
            final_name[base] = d.renames.back().second.substr(4);
            continue;
          }
        }
        final_name[base] = n;
      }
    };
    place(f.cur, "cur");
    place(f.new_, "new");
    std::sort(d.renames.begin(), d.renames.end());

    if (d.view.uidvalidity != 0) {  // a courierimapuiddb, or POP3 UIDLs that need UIDs
      std::string text = fmt::format("3 V{} N{}\n", d.view.uidvalidity, d.view.next_uid);
      text.reserve(text.size() + d.view.uids.size() * 96);
      for (const auto& [uid, base] : d.view.uids) {
        text += std::to_string(uid);
        if (auto p = d.view.pop3_uidls.find(uid); p != d.view.pop3_uidls.end()) {
          text += " P";
          text += p->second;
          text += " O";
          text += std::to_string(d.view.pop3_order.at(uid));
        }
        text += " :";
        text += final_name.at(base);
        text += '\n';
      }
      d.uidlist = std::move(text);
    }
    out.folders.push_back(std::move(d));
  }
  std::sort(out.folders.begin(), out.folders.end(),
            [](const DovecotFolder& a, const DovecotFolder& b) { return a.src_dir < b.src_dir; });
  // A folder must not take the name another folder has now (".A&-B" is
  // Courier's "A&-B" and Dovecot's "A&B"): the renames would collide.
  std::set<std::string> src_dirs;
  for (const auto& f : out.folders) src_dirs.insert(f.src_dir);
  for (const auto& f : out.folders)
    if (f.dst_dir != f.src_dir && src_dirs.count(f.dst_dir))
      return bad_file(ErrorCode::kConflict, user, path_of(in.maildir, f.src_dir, ""),
                      fmt::format("becomes {}, the name another Courier folder has", printable(f.dst_dir)));

  // Shares: Courier's ACL lines are "IDENTIFIER RIGHTS" ("user=bob lr",
  // "-user=bob w", "anyone l"); the owner's and the administrators' rights
  // are Courier's defaults and need nothing on Dovecot's side.
  for (const auto& f : in.folders) {
    if (!f.acl) continue;
    std::vector<std::string> grants;
    for (const auto& line : split(*f.acl, '\n')) {
      std::string_view l = trim(line);
      if (l.empty()) continue;
      const auto sp = l.find(' ');
      std::string_view ident = l.substr(0, sp);
      if (ident == "owner" || ident == "administrators") continue;
      std::string shown(starts_with(ident, "user=") ? ident.substr(5) : ident);
      if (starts_with(ident, "-user=")) shown = "-" + std::string(ident.substr(6));
      if (sp != std::string_view::npos) shown += " " + std::string(trim(l.substr(sp + 1)));
      grants.push_back(std::move(shown));
    }
    if (grants.empty()) continue;
    out.acls_left_out.push_back(fmt::format("INBOX{} ({})", f.dir, join(grants, ", ")));
  }

  if (in.subscribed) {
    const std::string path = path_of(in.maildir, "", "courierimapsubscribed");
    std::set<std::string> names;
    for (const auto& line : split(*in.subscribed, '\n')) {
      std::string_view name = trim(line);
      if (name.empty()) continue;
      if (name == "INBOX") {
        names.insert("INBOX");
        continue;
      }
      if (!starts_with(name, "INBOX.")) {
        out.left_out.emplace_back(name);
        continue;
      }
      std::vector<std::string> levels;
      for (const auto& level : split(name.substr(6), '.')) {
        auto enc = utf8_to_mutf7(level);
        if (!enc.ok() || level.empty() || (layout.utf8 && has_control(level)))
          return bad_file(ErrorCode::kCorrupt, user, path,
                          fmt::format("subscription '{}' is not a valid UTF-8 folder name", printable(name)));
        levels.push_back(layout.utf8 ? std::string(level) : std::move(*enc));
      }
      names.insert(join(levels, "\t"));
    }
    std::string text = "V\t2\n\n";
    for (const auto& n : names) text += n + "\n";
    out.subscriptions = std::move(text);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Dovecot's side (verification reads what was written, independently)

Result<FolderView> dovecot_folder_view(const std::string& user, const std::string& where,
                                       const std::optional<std::string>& uidlist,
                                       const std::optional<std::string>& keywords, const std::vector<std::string>& cur,
                                       const std::vector<std::string>& new_) {
  FolderView v;
  std::unordered_map<std::string_view, std::string_view> name_of;  // base -> full name (views into cur, new_)
  name_of.reserve(cur.size() + new_.size());
  for (const auto* names : {&cur, &new_})
    for (const auto& n : *names) name_of.emplace(base_of(n), n);
  if (uidlist) {
    const std::string path = path_of(where, "", "dovecot-uidlist");
    auto bad = [&](const std::string& what) { return bad_file(ErrorCode::kCorrupt, user, path, what); };
    auto lines = whole_lines(*uidlist);
    if (!lines || lines->empty()) return bad("truncated");
    auto head = split((*lines)[0], ' ');
    if (head.empty() || head[0] != "3") return bad(fmt::format("not version 3: '{}'", printable((*lines)[0])));
    for (size_t i = 1; i < head.size(); ++i) {
      if (head[i].size() < 2) continue;
      std::string_view val = std::string_view(head[i]).substr(1);
      if (head[i][0] == 'V' && all_digits(val)) v.uidvalidity = to_int(val);
      if (head[i][0] == 'N' && all_digits(val)) v.next_uid = to_int(val);
    }
    if (v.uidvalidity == 0 || v.next_uid == 0) return bad(fmt::format("broken header '{}'", printable((*lines)[0])));
    int64_t prev = 0;
    for (size_t n = 1; n < lines->size(); ++n) {
      std::string_view line = (*lines)[n];
      auto colon = line.find(" :");
      std::string_view uid_text = line.substr(0, line.find(' '));
      if (colon == std::string_view::npos || !all_digits(uid_text))
        return bad(fmt::format("line {}: malformed entry '{}'", n + 1, printable(line)));
      const int64_t uid = to_int(uid_text);
      if (uid <= prev) return bad(fmt::format("line {}: UIDs not ascending ({} after {})", n + 1, uid, prev));
      prev = uid;
      std::string_view base = base_of(line.substr(colon + 2));
      if (!name_of.count(base)) continue;
      v.uids.emplace_hint(v.uids.end(), uid, std::string(base));  // ascending
      // Extension fields between the UID and " :", as Dovecot reads them.
      for (const auto& field : split(line.substr(uid_text.size(), colon - uid_text.size()), ' ')) {
        if (field.size() < 2) continue;
        if (field[0] == 'P') v.pop3_uidls[uid] = field.substr(1);
        if (field[0] == 'O') {
          if (!all_digits(std::string_view(field).substr(1)))
            return bad(fmt::format("line {}: malformed POP3 order '{}'", n + 1, printable(field)));
          v.pop3_order[uid] = to_int(std::string_view(field).substr(1));
        }
      }
    }
  }
  std::vector<std::string> names(26);
  if (keywords) {
    for (const auto& line : split(*keywords, '\n')) {
      if (line.empty()) continue;
      auto sp = line.find(' ');
      if (sp == std::string::npos || !all_digits(std::string_view(line).substr(0, sp)) ||
          to_int(std::string_view(line).substr(0, sp)) >= 26)
        return bad_file(ErrorCode::kCorrupt, user, path_of(where, "", "dovecot-keywords"),
                        fmt::format("malformed line '{}'", printable(line)));
      names[to_int(std::string_view(line).substr(0, sp))] = line.substr(sp + 1);
    }
  }
  for (const auto& [base, name] : name_of) {
    auto info = name.find(":2,");
    if (info == std::string::npos) continue;
    std::set<std::string> set;
    for (size_t i = info + 3; i < name.size() && name[i] != ','; ++i) {
      if (name[i] < 'a' || name[i] > 'z') continue;
      const std::string& k = names[name[i] - 'a'];
      set.insert(k.empty() ? fmt::format("unknown-{}", name[i] - 'a') : k);
    }
    if (!set.empty()) v.keywords.emplace(std::string(base), std::move(set));
  }
  return v;
}

std::vector<std::string> compare_folder_views(const FolderView& want, const FolderView& got, size_t max) {
  std::vector<std::string> out;
  auto add = [&](std::string s) {
    if (out.size() < max) out.push_back(std::move(s));
  };
  if (want.uidvalidity != got.uidvalidity) add(fmt::format("UIDVALIDITY {} became {}", want.uidvalidity, got.uidvalidity));
  if (want.next_uid != got.next_uid) add(fmt::format("next UID {} became {}", want.next_uid, got.next_uid));
  for (const auto& [uid, base] : want.uids) {
    auto it = got.uids.find(uid);
    if (it == got.uids.end()) add(fmt::format("UID {} ({}) is missing", uid, printable(base)));
    else if (it->second != base) add(fmt::format("UID {} is {} instead of {}", uid, printable(it->second), printable(base)));
  }
  for (const auto& [uid, base] : got.uids)
    if (!want.uids.count(uid)) add(fmt::format("UID {} ({}) appeared", uid, printable(base)));
  auto names = [](const std::set<std::string>& s) { return s.empty() ? std::string("none") : join({s.begin(), s.end()}, " "); };
  for (const auto& [base, set] : want.keywords) {
    auto it = got.keywords.find(base);
    const std::set<std::string> empty;
    const auto& have = it == got.keywords.end() ? empty : it->second;
    if (have != set) add(fmt::format("{}: keywords {} became {}", printable(base), names(set), names(have)));
  }
  for (const auto& [base, set] : got.keywords)
    if (!want.keywords.count(base)) add(fmt::format("{}: keywords none became {}", printable(base), names(set)));
  auto uidl = [](const std::map<int64_t, std::string>& m, int64_t uid) {
    auto it = m.find(uid);
    return it == m.end() ? std::string("none") : printable(it->second);
  };
  for (const auto& [uid, base] : want.uids)
    if (uidl(want.pop3_uidls, uid) != uidl(got.pop3_uidls, uid))
      add(fmt::format("UID {}: POP3 UIDL {} became {}", uid, uidl(want.pop3_uidls, uid), uidl(got.pop3_uidls, uid)));
  auto order = [](const std::map<int64_t, int64_t>& m, int64_t uid) {
    auto it = m.find(uid);
    return it == m.end() ? std::string("none") : std::to_string(it->second);
  };
  for (const auto& [uid, base] : want.uids)
    if (order(want.pop3_order, uid) != order(got.pop3_order, uid))
      add(fmt::format("UID {}: POP3 order {} became {}", uid, order(want.pop3_order, uid), order(got.pop3_order, uid)));
  return out;
}

Result<std::vector<std::string>> dovecot_subscription_names(std::string_view text, const DovecotLayout& layout) {
  std::vector<std::string> out;
  auto lines = split(text, '\n');
  size_t first = 0;
  if (!lines.empty() && starts_with(lines[0], "V\t")) first = 2;  // "V\t2", then an empty line
  for (size_t i = first; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    std::vector<std::string> levels;
    for (const auto& level : split(lines[i], '\t'))
      levels.push_back(layout.utf8 ? std::string(level) : MS_TRY(mutf7_to_utf8(level)));
    out.push_back(join(levels, "."));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> courier_subscription_names(std::string_view subscribed) {
  std::set<std::string> out;
  for (const auto& line : split(subscribed, '\n')) {
    std::string_view name = trim(line);
    if (name == "INBOX") out.insert("INBOX");
    else if (starts_with(name, "INBOX.") && name.size() > 6) out.emplace(name.substr(6));
  }
  return {out.begin(), out.end()};
}

}  // namespace mailshard
