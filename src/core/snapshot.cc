#include "core/snapshot.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/fs.h"
#include "util/huge_pages.h"
#include "util/strings.h"

namespace mailshard {

void Snapshot::reserve_users(size_t n) {
  user_server.reserve(n);
  user_size.reserve(n);
  user_activity.reserve(n);
  user_pinned.reserve(n);
  // Huge pages for the columns about to be filled (util/huge_pages.h).
  advise_huge_pages(user_server.data(), n * sizeof(int32_t));
  advise_huge_pages(user_size.data(), n * sizeof(int64_t));
  advise_huge_pages(user_activity.data(), n * sizeof(double));
  advise_huge_pages(user_pinned.data(), n);
}

void Snapshot::add_user(int32_t server, int64_t size, double activity, bool pinned, std::string name) {
  user_server.push_back(server);
  user_size.push_back(size);
  user_activity.push_back(activity);
  user_pinned.push_back(pinned ? 1 : 0);
  if (!name.empty() || !user_names.empty()) {
    user_names.resize(user_server.size() - 1);
    user_names.push_back(std::move(name));
  }
}

std::string Snapshot::server_label(int32_t id) const {
  if (id >= 0 && static_cast<size_t>(id) < servers.size() && !servers[id].name.empty()) return servers[id].name;
  return std::to_string(id);
}

std::string Snapshot::user_label(int64_t id) const {
  if (id >= 0 && static_cast<size_t>(id) < user_names.size() && !user_names[id].empty()) return user_names[id];
  return std::to_string(id);
}

namespace {

// Bounds that keep every sum the planners take inside int64: one size at most
// 2^53 bytes (8 PiB, and exact as a double), and all capacities together, as
// all used bytes together, at most 2^62 bytes (4 EiB).
constexpr int64_t kMaxSizeBytes = int64_t{1} << 53;
constexpr int64_t kMaxTotalBytes = int64_t{1} << 62;

// Adds v to total; false when the total would pass kMaxTotalBytes.
bool add_bounded(int64_t& total, int64_t v) {
  return !__builtin_add_overflow(total, v, &total) && total <= kMaxTotalBytes;
}

constexpr std::array<std::string_view, 6> kServerColumns = {"server_id",        "class",         "capacity_bytes",
                                                            "other_used_bytes", "load_capacity", "draining"};
constexpr std::array<std::string_view, 6> kUserColumns = {"user_id",    "server_id", "class",
                                                          "size_bytes", "activity",  "pinned"};

// A read-only mapping of a whole file.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ && size_) munmap(const_cast<char*>(data_), size_);
  }
  Status open(const std::string& path) {
    RegularFile f = MS_TRY(open_regular_file(path));  // never a FIFO: it would hang
    size_ = static_cast<size_t>(f.st.st_size);
    if (size_ == 0) return {};
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, f.fd.get(), 0);
    if (p == MAP_FAILED) return Error::from_errno(errno, fmt::format("cannot map '{}'", printable(path)));
    madvise(p, size_, MADV_SEQUENTIAL);
    data_ = static_cast<const char*>(p);
    return {};
  }
  std::string_view view() const { return {data_ ? data_ : "", size_}; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// Splits one CSV line (no quoting: our fields never contain commas) into at
// most N fields; returns the number of fields found.
template <size_t N>
size_t split_fields(std::string_view line, std::array<std::string_view, N>& out) {
  size_t n = 0, start = 0;
  while (true) {
    size_t pos = line.find(',', start);
    if (n == N) return N + 1;  // too many
    if (pos == std::string_view::npos) {
      out[n++] = line.substr(start);
      return n;
    }
    out[n++] = line.substr(start, pos - start);
    start = pos + 1;
  }
}

template <size_t N>
Result<std::array<size_t, N>> map_header(std::string_view header, const std::array<std::string_view, N>& want,
                                         std::string_view file) {
  std::vector<std::string> have = split(trim(header), ',');
  std::array<size_t, N> idx{};
  std::string expected;
  for (size_t i = 0; i < N; ++i) expected += (i ? "," : "") + std::string(want[i]);
  for (size_t i = 0; i < N; ++i) {
    bool found = false;
    for (size_t j = 0; j < have.size(); ++j)
      if (trim(have[j]) == want[i]) {
        idx[i] = j;
        found = true;
      }
    if (!found)
      return Error::invalid(fmt::format("{}:1: missing column '{}' (expected {})", file, want[i], expected));
  }
  if (have.size() != N) return Error::invalid(fmt::format("{}:1: expected {} columns ({}), found {}", file, N, expected, have.size()));
  return idx;
}

template <typename T>
bool parse_num(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool parse_double_fast(std::string_view s, double& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool parse_flag(std::string_view s, bool& out) {
  if (s == "0" || s == "false") {
    out = false;
    return true;
  }
  if (s == "1" || s == "true") {
    out = true;
    return true;
  }
  return false;
}

// Iterates lines of a mapped file; strips a trailing '\r'; skips the header.
template <typename F>
Status for_each_line(std::string_view data, F&& fn) {
  size_t pos = 0;
  size_t line_no = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string_view::npos) end = data.size();
    std::string_view line = data.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    pos = end + 1;
    if (line_no == 1 || line.empty()) continue;
    MS_CHECK(fn(line, line_no));
  }
  return {};
}

// The fast path for users.csv in the canonical column order (what
// gen_fleet.py and write_snapshot produce): one pass, no field splitting.
// It accepts only perfectly regular rows; on anything else it returns false
// and the caller re-reads the file with the general parser, which reports
// the exact error (or note). 10 M rows: ~1 s instead of ~2.5 s.
//
// Digits eight at a time (SWAR). The non-digit bytes of w: nonzero (in the
// high nibble) in each byte that is not an ASCII digit, zero in the others
// -- a byte is a digit iff its high nibble is 3 and adding 6 keeps it there.
[[gnu::always_inline]] inline uint64_t swar_nondigits(uint64_t w) {
  const uint64_t hi = 0xF0F0F0F0F0F0F0F0ull, threes = 0x3030303030303030ull;
  return ((w & hi) ^ threes) | (((w + 0x0606060606060606ull) & hi) ^ threes);
}
// The number the first n (1..8) bytes of w spell, all digits: combined
// pairwise (Lemire's eight-digit conversion), the missing ones as leading
// zeros.
[[gnu::always_inline]] inline uint64_t swar_value(uint64_t w, int n) {
  const uint64_t threes = 0x3030303030303030ull;
  uint64_t v = (w - threes) << (8 * (8 - n));  // the n digits, leading zeros below them
  v = (v * 10) + (v >> 8);
  v = (((v & 0x000000FF000000FFull) * (100 + (1000000ull << 32))) +
       (((v >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32)))) >>
      32;
  return v;
}
// Up to 8 leading ASCII digits of the 8 bytes at p, as a number; `n` gets
// how many there were.
[[gnu::always_inline]] inline uint64_t swar_digits(const char* p, int& n) {
  uint64_t w;
  memcpy(&w, p, 8);
  const uint64_t bad = swar_nondigits(w);
  n = bad ? __builtin_ctzll(bad) / 8 : 8;
  return n == 0 ? 0 : swar_value(w, n);
}

// A server id: a few digits (a fleet has hundreds of servers, not millions),
// cheaper read one by one than eight at a time. At most 9 digits; a longer
// one fails here and the general reader names it.
[[gnu::always_inline]] inline bool parse_small(const char*& p, const char* end, int64_t& v) {
  const char* start = p;
  const char* lim = end - p > 9 ? p + 9 : end;
  uint64_t x = 0;
  while (p < lim) {
    const unsigned d = static_cast<unsigned>(static_cast<unsigned char>(*p)) - '0';
    if (d > 9) break;
    x = x * 10 + d;
    ++p;
  }
  v = static_cast<int64_t>(x);
  return p > start && (p == end || static_cast<unsigned>(static_cast<unsigned char>(*p) - '0') > 9);
}

// A decimal integer of at most 18 digits followed by a non-digit (or the end).
[[gnu::always_inline]] inline bool parse_digits(const char*& p, const char* end, int64_t& v) {
  static constexpr uint64_t kPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
  if (end - p >= 24) {  // two chunks readable, plus the byte after them
    int n;
    uint64_t x = swar_digits(p, n);
    if (n == 0) return false;
    if (n == 8) {
      int m;
      uint64_t y = swar_digits(p + 8, m);
      x = x * kPow10[m] + y;
      n += m;
      if (m == 8 && static_cast<unsigned>(static_cast<unsigned char>(p[16]) - '0') <= 9) {
        int k;
        uint64_t z = swar_digits(p + 16, k);
        if (k > 2) return false;  // more than 18 digits
        x = x * kPow10[k] + z;
        n += k;
      }
    }
    p += n;
    v = static_cast<int64_t>(x);
    return p == end || static_cast<unsigned>(static_cast<unsigned char>(*p) - '0') > 9;
  }
  const char* start = p;
  const char* lim = end - p > 18 ? p + 18 : end;
  uint64_t x = 0;
  while (p < lim) {
    unsigned d = static_cast<unsigned char>(*p) - '0';
    if (d > 9) break;
    x = x * 10 + d;
    ++p;
  }
  v = static_cast<int64_t>(x);
  return p > start && (p == end || static_cast<unsigned>(static_cast<unsigned char>(*p) - '0') > 9);
}

// "123.4567" without sign or exponent and at most 15 digits: the integer of
// all digits divided by a power of ten. Both are exact doubles, so the one
// IEEE division is correctly rounded -- the same value from_chars gives
// (Clinger's fast path). Anything else goes to from_chars.
[[gnu::always_inline]] inline bool parse_activity(const char*& p, const char* end, double& out) {
  static constexpr double kPow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  static constexpr uint64_t kIntPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
  // What gen_fleet.py writes, "2.0682,": digits, a dot, digits and the
  // comma within one word of 8 bytes. The dot is taken out (the bytes after
  // it move down one) and the 2..7 digits left are converted at once.
  if (end - p >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    const uint64_t bad = swar_nondigits(w);
    if (bad != 0) {
      const int dot = __builtin_ctzll(bad) / 8;
      const uint64_t after = bad & ~((uint64_t{2} << (8 * dot + 7)) - 1);  // non-digits past the dot
      if (after != 0 && p[dot] == '.') {
        const int stop = __builtin_ctzll(after) / 8;  // the byte after the fraction
        const int n_frac = stop - dot - 1;
        if (dot > 0 && n_frac > 0 && p[stop] == ',') {
          const uint64_t below = (uint64_t{1} << (8 * dot)) - 1;
          const uint64_t digits = (w & below) | ((w >> 8) & ~below);
          out = static_cast<double>(swar_value(digits, stop - 1)) / kPow10[n_frac];
          p += stop;
          return true;
        }
      }
    }
  }
  // Longer: an integer part and a fraction of fewer than eight digits each,
  // read eight bytes at a time. 16 readable bytes cover both chunks.
  if (end - p >= 16) {
    int n_int, n_frac = 0;
    uint64_t m = swar_digits(p, n_int);
    const char* q = p + n_int;
    bool ok = n_int < 8;
    if (ok && *q == '.') {
      const uint64_t frac = swar_digits(q + 1, n_frac);
      ok = n_frac > 0 && n_frac < 8;
      m = m * kIntPow10[ok ? n_frac : 0] + frac;
      q += 1 + n_frac;
    }
    if (ok && n_int + n_frac > 0 && (q == end || *q == ',')) {
      out = static_cast<double>(m) / kPow10[n_frac];
      p = q;
      return true;
    }
  }
  const char* q = p;
  uint64_t m = 0;
  int digits = 0, frac = 0;
  bool dot = false;
  for (; q < end && digits <= 15; ++q) {
    unsigned d = static_cast<unsigned char>(*q) - '0';
    if (d <= 9) {
      m = m * 10 + d;
      ++digits;
      frac += dot;
    } else if (*q == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (digits > 0 && digits <= 15 && (q == end || *q == ',') && q[-1] != '.') {
    out = static_cast<double>(m) / kPow10[frac];
    p = q;
    return true;
  }
  auto [r, ec] = std::from_chars(p, end, out);
  if (ec != std::errc()) return false;
  p = r;
  return true;
}

// A field of at most 7 bytes and its comma as one little-endian word: whether
// a row continues with it is one load and one compare. Fields the fast
// reader knows in advance: the user id (rows are in id order) and the class
// (the server's).
struct ShortField {
  uint64_t word = 0, mask = 0;
  size_t size = 0;  // with the comma; 0 = the text is too long for a word

  explicit ShortField(std::string_view text) {
    if (text.size() + 1 > sizeof word) return;
    size = text.size() + 1;
    char bytes[sizeof word] = {};
    memcpy(bytes, text.data(), text.size());
    bytes[text.size()] = ',';
    memcpy(&word, bytes, sizeof word);
    mask = size == sizeof word ? ~uint64_t{0} : (uint64_t{1} << (8 * size)) - 1;
  }
  // Whether p, with at least 8 readable bytes, starts with the field and its comma.
  bool at(const char* p) const {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return ((w ^ word) & mask) == 0;
  }
  // For a user id: the field of the next id. Its last digit goes up by one,
  // unless that digit is a 9 (then the text is written again); ids only grow,
  // so a field too long stays too long.
  void next_id(int64_t next) {
    if (size == 0) return;
    const unsigned last = 8 * static_cast<unsigned>(size - 2);
    if (((word >> last) & 0xFF) < '9') {
      word += uint64_t{1} << last;
      return;
    }
    const fmt::format_int text(next);
    *this = ShortField(std::string_view(text.data(), text.size()));
  }
};

bool read_users_fast(std::string_view data, Snapshot& snap, int64_t used_total) {
  const char* p = data.data();
  const char* end = p + data.size();
  const char* nl = static_cast<const char*>(memchr(p, '\n', data.size()));
  if (!nl) return true;  // header only
  p = nl + 1;
  const auto nservers = static_cast<int64_t>(snap.servers.size());
  std::vector<ShortField> classes;
  for (const auto& s : snap.servers) classes.emplace_back(s.server_class);
  int64_t expect = 0;
  ShortField id("0");
  while (p < end) {
    if (*p == '\n' || *p == '\r') return false;  // blank lines: general path
    int64_t uid, sid, size;
    if (id.size != 0 && end - p >= 8) {
      if (!id.at(p)) return false;
      p += id.size;
    } else if (!parse_digits(p, end, uid) || uid != expect || p == end || *p++ != ',') {
      return false;
    }
    if (!parse_small(p, end, sid) || sid >= nservers || p == end || *p++ != ',') return false;
    const ShortField& cls_field = classes[static_cast<size_t>(sid)];
    if (cls_field.size != 0 && end - p >= 8) {
      if (!cls_field.at(p)) return false;
      p += cls_field.size;
    } else {
      const std::string& cls = snap.servers[static_cast<size_t>(sid)].server_class;
      const size_t cn = cls.size();
      if (static_cast<size_t>(end - p) <= cn || p[cn] != ',') return false;
      for (size_t i = 0; i < cn; ++i)
        if (p[i] != cls[i]) return false;
      p += cn + 1;
    }
    if (!parse_digits(p, end, size) || size > kMaxSizeBytes || !add_bounded(used_total, size) || p == end ||
        *p++ != ',')
      return false;
    double act;
    if (!parse_activity(p, end, act) || !(act >= 0) || std::isinf(act) || p == end || *p++ != ',') return false;
    if (p == end || (*p != '0' && *p != '1')) return false;
    const bool pinned = *p++ == '1';
    if (p < end && *p == '\r') ++p;
    if (p < end && *p++ != '\n') return false;
    snap.user_server.push_back(static_cast<int32_t>(sid));
    snap.user_size.push_back(size);
    snap.user_activity.push_back(act);
    snap.user_pinned.push_back(pinned ? 1 : 0);
    ++expect;
    id.next_id(expect);
  }
  return true;
}

}  // namespace

Result<Snapshot> read_snapshot(const std::string& dir) {
  Snapshot snap;
  const std::string servers_file = "servers.csv", users_file = "users.csv";
  std::map<std::string, size_t> class_of_name;

  // meta.json is optional; it carries names and provenance.
  std::vector<std::string> server_names, user_names, storage_groups;
  auto meta_text = read_file(dir + "/meta.json");
  if (!meta_text.ok() && meta_text.error().code() != ErrorCode::kNotFound) return std::move(meta_text).error();
  if (meta_text.ok()) {
    auto meta = nlohmann::json::parse(*meta_text, nullptr, false);
    if (meta.is_discarded() || !meta.is_object())
      return Error::invalid("meta.json: not a JSON object");
    if (meta.contains("server_names") && meta["server_names"].is_array())
      for (auto& n : meta["server_names"]) server_names.push_back(n.is_string() ? n.get<std::string>() : "");
    if (meta.contains("user_names") && meta["user_names"].is_array())
      for (auto& n : meta["user_names"]) user_names.push_back(n.is_string() ? n.get<std::string>() : "");
    if (meta.contains("storage_groups")) {
      if (!meta["storage_groups"].is_array()) return Error::invalid("meta.json: storage_groups is not an array");
      for (auto& g : meta["storage_groups"]) {
        if (!g.is_string()) return Error::invalid("meta.json: storage_groups holds a value that is not a string");
        storage_groups.push_back(g.get<std::string>());
      }
    }
    if (meta.contains("taken_at_ms") && meta["taken_at_ms"].is_number_integer()) snap.taken_at_ms = meta["taken_at_ms"];
    if (meta.contains("generator") && meta["generator"].is_string()) snap.source = meta["generator"];
    if (meta.contains("source") && meta["source"].is_string()) snap.source = meta["source"];
  }

  int64_t capacity_total = 0, used_total = 0;
  {
    MappedFile f;
    MS_CHECK(f.open(dir + "/" + servers_file));
    std::string_view data = f.view();
    std::string_view header = data.substr(0, data.find('\n'));
    auto idx = MS_TRY(map_header(header, kServerColumns, servers_file));
    MS_CHECK(for_each_line(data, [&](std::string_view line, size_t ln) -> Status {
      std::array<std::string_view, 6> raw;
      if (split_fields(line, raw) != 6)
        return Error::invalid(fmt::format("{}:{}: expected 6 fields", servers_file, ln));
      std::array<std::string_view, 6> fld;
      for (size_t i = 0; i < 6; ++i) fld[i] = raw[idx[i]];
      SnapshotServer s;
      int64_t id;
      if (!parse_num(fld[0], id) || id != static_cast<int64_t>(snap.servers.size()))
        return Error::invalid(fmt::format("{}:{}: server_id '{}' must be {} (ids are 0..n-1 in order)", servers_file,
                                          ln, printable(fld[0], 40), snap.servers.size()));
      s.server_class = std::string(fld[1]);
      if (s.server_class.empty()) return Error::invalid(fmt::format("{}:{}: empty class", servers_file, ln));
      if (!parse_num(fld[2], s.capacity_bytes) || s.capacity_bytes <= 0 || s.capacity_bytes > kMaxSizeBytes)
        return Error::invalid(fmt::format("{}:{}: capacity_bytes '{}' must be a positive integer of at most 2^53",
                                          servers_file, ln, printable(fld[2], 40)));
      if (!parse_num(fld[3], s.other_used_bytes) || s.other_used_bytes < 0 || s.other_used_bytes > kMaxSizeBytes)
        return Error::invalid(fmt::format("{}:{}: other_used_bytes '{}' must be a non-negative integer of at most 2^53",
                                          servers_file, ln, printable(fld[3], 40)));
      if (!add_bounded(capacity_total, s.capacity_bytes))
        return Error::invalid(fmt::format("{}:{}: the capacities add up to more than 2^62 bytes", servers_file, ln));
      if (!add_bounded(used_total, s.other_used_bytes))
        return Error::invalid(fmt::format("{}:{}: the used bytes add up to more than 2^62", servers_file, ln));
      if (!parse_double_fast(fld[4], s.load_capacity) || !(s.load_capacity >= 0) || std::isinf(s.load_capacity))
        return Error::invalid(fmt::format("{}:{}: load_capacity '{}' must be a non-negative number", servers_file, ln,
                                          printable(fld[4], 40)));
      if (!parse_flag(fld[5], s.draining))
        return Error::invalid(fmt::format("{}:{}: draining '{}' must be 0 or 1", servers_file, ln, printable(fld[5], 40)));
      if (snap.servers.size() < server_names.size()) s.name = server_names[snap.servers.size()];
      snap.servers.push_back(std::move(s));
      return {};
    }));
    if (snap.servers.empty()) return Error::invalid(fmt::format("{}: no servers", servers_file));
    if (!storage_groups.empty()) {
      if (storage_groups.size() != snap.servers.size())
        return Error::invalid(fmt::format("meta.json: storage_groups has {} entries but {} has {} servers",
                                          storage_groups.size(), servers_file, snap.servers.size()));
      for (size_t i = 0; i < snap.servers.size(); ++i) snap.servers[i].storage_group = std::move(storage_groups[i]);
    }
  }

  {
    MappedFile f;
    MS_CHECK(f.open(dir + "/" + users_file));
    std::string_view data = f.view();
    std::string_view header = data.substr(0, data.find('\n'));
    auto idx = MS_TRY(map_header(header, kUserColumns, users_file));
    // A row takes at least 12 bytes ("0,0,c,0,0,0\n"): reserving for that many
    // never reallocates (a reallocation copies every column into fresh
    // pages), and pages reserved but never written cost no memory.
    snap.reserve_users(data.size() / 12 + 1);
    const int64_t nservers = static_cast<int64_t>(snap.servers.size());
    const bool canonical = idx == std::array<size_t, 6>{0, 1, 2, 3, 4, 5};
    const bool fast = canonical && read_users_fast(data, snap, used_total);
    if (!fast) {
      snap.user_server.clear();
      snap.user_size.clear();
      snap.user_activity.clear();
      snap.user_pinned.clear();
    }
    if (!fast) MS_CHECK(for_each_line(data, [&](std::string_view line, size_t ln) -> Status {
      std::array<std::string_view, 6> raw;
      if (split_fields(line, raw) != 6) return Error::invalid(fmt::format("{}:{}: expected 6 fields", users_file, ln));
      std::array<std::string_view, 6> fld;
      for (size_t i = 0; i < 6; ++i) fld[i] = raw[idx[i]];
      int64_t uid, sid, size;
      double act;
      bool pinned;
      size_t n = snap.user_count();
      if (!parse_num(fld[0], uid) || uid != static_cast<int64_t>(n))
        return Error::invalid(fmt::format("{}:{}: user_id '{}' must be {} (ids are 0..n-1 in order)", users_file, ln,
                                          printable(fld[0], 40), n));
      if (!parse_num(fld[1], sid))
        return Error::invalid(fmt::format("{}:{}: server_id '{}' is not an integer", users_file, ln, printable(fld[1], 40)));
      if (sid < 0 || sid >= nservers)
        return Error::invalid(fmt::format("{}:{}: server_id {} is not in {}", users_file, ln, sid, servers_file));
      if (!parse_num(fld[3], size))
        return Error::invalid(fmt::format("{}:{}: size_bytes '{}' is not an integer", users_file, ln, printable(fld[3], 40)));
      if (size < 0) return Error::invalid(fmt::format("{}:{}: size_bytes '{}' is negative", users_file, ln, size));
      if (size > kMaxSizeBytes)
        return Error::invalid(fmt::format("{}:{}: size_bytes {} is larger than 2^53", users_file, ln, size));
      if (!add_bounded(used_total, size))
        return Error::invalid(fmt::format("{}:{}: the used bytes add up to more than 2^62", users_file, ln));
      if (!parse_double_fast(fld[4], act) || !(act >= 0) || std::isinf(act))
        return Error::invalid(fmt::format("{}:{}: activity '{}' must be a non-negative number", users_file, ln,
                                          printable(fld[4], 40)));
      if (!parse_flag(fld[5], pinned))
        return Error::invalid(fmt::format("{}:{}: pinned '{}' must be 0 or 1", users_file, ln, printable(fld[5], 40)));
      const auto& srv = snap.servers[static_cast<size_t>(sid)];
      if (fld[2] != srv.server_class) {
        pinned = true;
        snap.notes.push_back(fmt::format("{}:{}: user {} is class '{}' but server {} is '{}'; treated as pinned",
                                         users_file, ln, uid, printable(fld[2], 40), sid, srv.server_class));
      }
      snap.user_server.push_back(static_cast<int32_t>(sid));
      snap.user_size.push_back(size);
      snap.user_activity.push_back(act);
      snap.user_pinned.push_back(pinned ? 1 : 0);
      return {};
    }));
  }
  if (!user_names.empty()) {
    if (user_names.size() != snap.user_count())
      return Error::invalid(fmt::format("meta.json: user_names has {} entries but users.csv has {} users",
                                        user_names.size(), snap.user_count()));
    snap.user_names = std::move(user_names);
  }
  return snap;
}

Status write_snapshot(const Snapshot& snap, const std::string& dir, const std::string& extra_meta_json,
                      FileAccess access) {
  MS_CHECK(make_dirs(dir));
  std::string servers = "server_id,class,capacity_bytes,other_used_bytes,load_capacity,draining\n";
  for (size_t i = 0; i < snap.servers.size(); ++i) {
    const auto& s = snap.servers[i];
    servers += fmt::format("{},{},{},{},{},{}\n", i, s.server_class, s.capacity_bytes, s.other_used_bytes,
                           s.load_capacity, s.draining ? 1 : 0);
  }
  std::string users = "user_id,server_id,class,size_bytes,activity,pinned\n";
  users.reserve(users.size() + snap.user_count() * 40);
  for (size_t u = 0; u < snap.user_count(); ++u) {
    int32_t s = snap.user_server[u];
    users += fmt::format("{},{},{},{},{:.4f},{}\n", u, s, snap.servers[static_cast<size_t>(s)].server_class,
                         snap.user_size[u], snap.user_activity[u], snap.user_pinned[u] ? 1 : 0);
  }
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  meta["generator"] = snap.source.empty() ? "mailshard" : snap.source;
  meta["source"] = snap.source;
  meta["taken_at_ms"] = snap.taken_at_ms;
  meta["n_servers"] = snap.servers.size();
  meta["n_users"] = snap.user_count();
  auto names = nlohmann::ordered_json::array();
  for (const auto& s : snap.servers) names.push_back(s.name);
  meta["server_names"] = names;
  if (!snap.user_names.empty()) meta["user_names"] = snap.user_names;
  meta["draining"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < snap.servers.size(); ++i)
    if (snap.servers[i].draining) meta["draining"].push_back(i);
  bool grouped = false;
  for (const auto& sv : snap.servers) grouped |= !sv.storage_group.empty();
  if (grouped) {
    auto groups = nlohmann::ordered_json::array();
    for (const auto& sv : snap.servers) groups.push_back(sv.storage_group);
    meta["storage_groups"] = groups;
  }
  if (!extra_meta_json.empty()) {
    auto extra = nlohmann::ordered_json::parse(extra_meta_json, nullptr, false);
    if (extra.is_discarded() || !extra.is_object()) return Error::internal("extra snapshot metadata is not a JSON object");
    for (auto& [k, v] : extra.items()) meta[k] = v;
  }
  MS_CHECK(write_file_atomic(dir + "/servers.csv", servers, access));
  MS_CHECK(write_file_atomic(dir + "/users.csv", users, access));
  MS_CHECK(write_file_atomic(dir + "/meta.json", meta.dump(2) + "\n", access));
  return {};
}

}  // namespace mailshard
