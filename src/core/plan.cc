#include "core/plan.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include <fmt/compile.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/hash.h"
#include "util/strings.h"

namespace mailshard {

using namespace std::string_view_literals;

namespace {

// nlohmann::json keeps object keys in a std::map: sorted, hence canonical.
using Json = nlohmann::json;

constexpr std::array<std::pair<MoveReason, std::string_view>, 6> kReasons = {{
    {MoveReason::kDrain, "drain"},
    {MoveReason::kOverBand, "over_band"},
    {MoveReason::kUnderBand, "under_band"},
    {MoveReason::kLoad, "load"},
    {MoveReason::kSwap, "swap"},
    {MoveReason::kSpread, "spread"},
}};

constexpr std::array<std::pair<BandState, std::string_view>, 3> kBandStates = {{
    {BandState::kBelow, "below"},
    {BandState::kInside, "inside"},
    {BandState::kAbove, "above"},
}};

Result<BandState> parse_band_state(std::string_view name) {
  for (const auto& [s, n] : kBandStates)
    if (n == name) return s;
  return Error::invalid(fmt::format("unknown band state '{}'", name));
}

Json constraints_json(const Constraints& c) {
  Json drain = Json::array();
  for (int32_t s : c.drain) drain.push_back(s);
  return Json{{"strategy", c.strategy},
              {"band", c.band},
              {"hard_cap", c.hard_cap},
              {"min_free_bytes", c.min_free_bytes},
              {"headroom_bytes", c.headroom_bytes},
              {"load_band", c.load_band},
              {"drain", drain},
              {"max_bytes", c.max_bytes},
              {"max_moves", c.max_moves},
              {"max_moves_per_server", c.max_moves_per_server},
              {"max_move_bytes", c.max_move_bytes},
              {"nights", c.nights},
              {"cost_alpha_bytes", c.cost_alpha_bytes},
              {"execution",
               {{"slots_per_server", c.execution.slots_per_server},
                {"rate_bytes_per_s", c.execution.rate_bytes_per_s},
                {"overhead_s", c.execution.overhead_s},
                {"night_hours", c.execution.night_hours}}}};
}

// One object per server (500 at the scale point): filled key by key, which
// costs a third of nlohmann's initializer-list form (a temporary array per
// pair). Same document: keys are sorted either way.
Json server_json(const ServerOutcome& s) {
  Json j(Json::value_t::object);
  j["id"] = s.id;
  j["name"] = s.name.empty() ? std::to_string(s.id) : s.name;
  j["class"] = s.server_class;
  j["draining"] = s.draining;
  j["capacity_bytes"] = s.capacity_bytes;
  j["other_bytes"] = s.other_bytes;
  j["lower_bytes"] = s.lower_bytes;
  j["upper_bytes"] = s.upper_bytes;
  j["cap_bytes"] = s.cap_bytes;
  j["used_before"] = s.used_before;
  j["used_after"] = s.used_after;
  j["load_capacity"] = s.load_capacity;
  j["load_before"] = s.load_before;
  j["load_after"] = s.load_after;
  j["moves_in"] = s.moves_in;
  j["moves_out"] = s.moves_out;
  j["bytes_in"] = s.bytes_in;
  j["bytes_out"] = s.bytes_out;
  j["band_before"] = band_state_name(s.before);
  j["band_after"] = band_state_name(s.after);
  return j;
}

Json class_json(const ClassOutcome& c) {
  return Json{{"name", c.name},
              {"servers", c.servers},
              {"mean_util", c.mean_util},
              {"load_mean", c.load_mean},
              {"max_minus_mean_before", c.max_minus_mean_before},
              {"max_minus_mean_after", c.max_minus_mean_after},
              {"std_before", c.std_before},
              {"std_after", c.std_after},
              {"load_max_over_mean_before", c.load_max_over_mean_before},
              {"load_max_over_mean_after", c.load_max_over_mean_after},
              {"out_of_band_before", c.out_of_band_before},
              {"out_of_band_after", c.out_of_band_after},
              {"above_load_band_after", c.above_load_band_after}};
}

Json bounds_json(const LowerBounds& b) {
  Json classes = Json::array();
  for (const auto& c : b.classes)
    classes.push_back({{"name", c.name},
                       {"excess_bytes", c.excess_bytes},
                       {"deficit_bytes", c.deficit_bytes},
                       {"lb_bytes", c.lb_bytes},
                       {"k_src", c.k_src},
                       {"k_recv", c.k_recv},
                       {"lb_moves", c.lb_moves},
                       {"lb_cost", c.lb_cost}});
  return Json{{"classes", classes},
              {"lb_bytes", b.lb_bytes},
              {"lb_moves", b.lb_moves},
              {"lb_cost", b.lb_cost},
              {"t_lb_s", b.t_lb_s},
              {"max_server_moves_lb", b.max_server_moves_lb},
              {"nights_lb", b.nights_lb},
              {"infeasible_servers", b.infeasible_servers},
              {"pinned_on_draining", b.pinned_on_draining}};
}

Json estimate_json(const PlanEstimate& e) {
  Json nights = Json::array();
  for (const auto& n : e.per_night)
    nights.push_back({{"night", n.night}, {"bytes", n.bytes}, {"moves", n.moves}, {"makespan_s", n.makespan_s}});
  return Json{{"bytes", e.bytes},         {"moves", e.moves},   {"makespan_s", e.makespan_s},
              {"plan_lb_s", e.plan_lb_s}, {"nights", e.nights}, {"per_night", nights}};
}

// Ratios a reader wants next to the bounds; null when the bound is 0.
Json ratios_json(const Plan& p) {
  auto ratio = [](double a, double b) -> Json { return b > 0 ? Json(a / b) : Json(nullptr); };
  double cost = static_cast<double>(p.estimate.bytes) +
                static_cast<double>(p.constraints.cost_alpha_bytes) * static_cast<double>(p.estimate.moves);
  return Json{{"bytes_over_lb", ratio(static_cast<double>(p.estimate.bytes), static_cast<double>(p.bounds.lb_bytes))},
              {"moves_over_lb", ratio(static_cast<double>(p.estimate.moves), static_cast<double>(p.bounds.lb_moves))},
              {"cost_over_lb", ratio(cost, p.bounds.lb_cost)},
              {"makespan_over_t_lb", ratio(p.estimate.makespan_s, p.bounds.t_lb_s)},
              {"nights_minus_lb", p.estimate.nights - p.bounds.nights_lb}};
}

// The plan document with an empty "moves" array: the moves are written
// directly (write_canonical_move, write_pretty_move).
Json plan_document(const Plan& p) {
  Json servers = Json::array();
  for (const auto& s : p.servers) servers.push_back(server_json(s));
  Json classes = Json::array();
  for (const auto& c : p.classes) classes.push_back(class_json(c));
  return Json{{"format", "mailshard-plan/1"},
              {"strategy", p.strategy},
              {"snapshot",
               {{"users", p.snapshot_users},
                {"servers", p.snapshot_servers},
                {"taken_at_ms", p.snapshot_taken_at_ms},
                {"source", p.snapshot_source}}},
              {"constraints", constraints_json(p.constraints)},
              {"moves", Json::array()},
              {"servers", servers},
              {"classes", classes},
              {"lower_bounds", bounds_json(p.bounds)},
              {"estimate", estimate_json(p.estimate)},
              {"ratios", ratios_json(p)},
              {"warnings", p.warnings},
              {"partial", p.partial},
              {"partial_reasons", p.partial_reasons}};
}

// Typed field access with errors that name the field.
// Typed reads: a value of the wrong JSON type, or an integer that does not
// fit its field (2^40 in an int32 server index), is an error -- never a
// silent conversion or an exception.
bool convert(const Json& v, std::string& out) {
  if (!v.is_string()) return false;
  out = v.get_ref<const std::string&>();
  return true;
}
bool convert(const Json& v, bool& out) {
  if (!v.is_boolean()) return false;
  out = v.get<bool>();
  return true;
}
bool convert(const Json& v, double& out) {
  if (!v.is_number()) return false;
  out = v.get<double>();
  return std::isfinite(out);
}
template <typename T>
  requires std::is_integral_v<T>
bool convert(const Json& v, T& out) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    out = static_cast<T>(u);
    return true;
  }
  if (!v.is_number_integer()) return false;
  const auto i = v.get<int64_t>();
  if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) return false;
  out = static_cast<T>(i);
  return true;
}
template <typename T>
bool convert(const Json& v, std::vector<T>& out) {
  if (!v.is_array()) return false;
  out.clear();
  for (const Json& el : v) {
    T x{};
    if (!convert(el, x)) return false;
    out.push_back(std::move(x));
  }
  return true;
}

template <typename T>
Status get(const Json& j, const char* key, T& out, std::string_view where) {
  auto it = j.find(key);
  if (it == j.end()) return Error::invalid(fmt::format("plan JSON: {}: missing '{}'", where, key));
  if (!convert(*it, out)) return Error::invalid(fmt::format("plan JSON: {}: '{}' has the wrong type or is out of range", where, key));
  return {};
}

enum class Shape { kObject, kArray };

// A nested object or array, by reference.
Result<const Json*> get_node(const Json& j, const char* key, Shape shape, std::string_view where) {
  auto it = j.find(key);
  if (it == j.end()) return Error::invalid(fmt::format("plan JSON: {}: missing '{}'", where, key));
  if (shape == Shape::kObject ? !it->is_object() : !it->is_array())
    return Error::invalid(fmt::format("plan JSON: {}: '{}' has the wrong type (expected {})", where, key,
                                      shape == Shape::kObject ? "an object" : "an array"));
  return &*it;
}

Status range(bool ok, std::string_view where, std::string_view key, std::string_view what) {
  if (ok) return {};
  return Error::invalid(fmt::format("plan JSON: {}: '{}' {}", where, key, what));
}

// What the executor and the reports rely on, checked once before anything
// uses the plan: every index in range, counts and sizes not negative.
Status validate(const Plan& p) {
  const auto n_servers = static_cast<int64_t>(p.servers.size());
  const std::string servers_range = fmt::format("must be a server of the plan (0..{})", n_servers - 1);
  MS_CHECK(range(p.snapshot_users >= 0, "snapshot", "users", "must not be negative"));
  MS_CHECK(range(p.snapshot_servers == n_servers, "snapshot", "servers",
                 fmt::format("must equal the number of entries in 'servers' ({})", n_servers)));
  const Constraints& k = p.constraints;
  for (auto [key, v] : {std::pair{"min_free_bytes", k.min_free_bytes}, std::pair{"headroom_bytes", k.headroom_bytes},
                        std::pair{"max_bytes", k.max_bytes}, std::pair{"max_moves", k.max_moves},
                        std::pair{"max_moves_per_server", k.max_moves_per_server},
                        std::pair{"max_move_bytes", k.max_move_bytes}, std::pair{"cost_alpha_bytes", k.cost_alpha_bytes}})
    MS_CHECK(range(v >= 0, "constraints", key, "must not be negative"));
  MS_CHECK(range(k.nights >= 1, "constraints", "nights", "must be at least 1"));
  for (int32_t d : k.drain) MS_CHECK(range(d >= 0 && d < n_servers, "constraints", "drain", servers_range));
  for (size_t i = 0; i < p.servers.size(); ++i)
    MS_CHECK(range(p.servers[i].id == static_cast<int32_t>(i), fmt::format("servers[{}]", i), "id",
                   fmt::format("must be {} (ids are 0..n-1 in order)", i)));
  for (size_t i = 0; i < p.moves.size(); ++i) {
    const PlannedMove& m = p.moves[i];
    const std::string where = fmt::format("moves[{}]", i);
    MS_CHECK(range(m.from >= 0 && m.from < n_servers, where, "from", servers_range));
    MS_CHECK(range(m.to >= 0 && m.to < n_servers, where, "to", servers_range));
    MS_CHECK(range(m.from != m.to, where, "to", "must differ from 'from'"));
    MS_CHECK(range(m.user >= 0 && (p.snapshot_users == 0 || m.user < p.snapshot_users), where, "user_id",
                   fmt::format("must be a user of the snapshot (0..{})", p.snapshot_users - 1)));
    MS_CHECK(range(m.bytes >= 0, where, "bytes", "must not be negative"));
    MS_CHECK(range(m.activity >= 0, where, "activity", "must not be negative"));
    MS_CHECK(range(m.night >= 1, where, "night", "must be at least 1"));
  }
  return {};
}

}  // namespace

std::string_view move_reason_name(MoveReason r) {
  for (const auto& [reason, name] : kReasons)
    if (reason == r) return name;
  return "?";
}

Result<MoveReason> parse_move_reason(std::string_view name) {
  for (const auto& [reason, n] : kReasons)
    if (n == name) return reason;
  return Error::invalid(fmt::format("unknown move reason '{}'", name));
}

std::string_view band_state_name(BandState s) {
  for (const auto& [state, name] : kBandStates)
    if (state == s) return name;
  return "?";
}

namespace {

// The moves are the bulk of every plan text (10^4-10^5 of them): they are
// written straight into a character buffer, room made once per move and
// each piece copied in, instead of appended piece by piece to a string.
using TextBuffer = fmt::memory_buffer;

// Room for n more characters at the end of b; write there, then done().
char* room(TextBuffer& b, size_t n) {
  b.reserve(b.size() + n);
  return b.data() + b.size();
}
void done(TextBuffer& b, const char* end) { b.resize(static_cast<size_t>(end - b.data())); }

char* put(char* p, std::string_view s) {
  memcpy(p, s.data(), s.size());
  return p + s.size();
}
// Integers as fmt writes them, straight into place (FMT_COMPILE: no format
// string parsed per number).
char* put_int(char* p, int64_t v) { return fmt::format_to(p, FMT_COMPILE("{}"), v); }

// JSON string escaping for the hand-written canonical moves: quotes,
// backslash and control bytes; other bytes pass through (names are UTF-8).
// At most 6 characters per byte, plus the quotes.
std::string canonical_json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20)
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned char>(ch));
        else
          out += ch;
    }
  }
  out += '"';
  return out;
}

// A move's activity as fmt's "{}" writes it: the shortest text that reads
// back to the same double (FMT_COMPILE: the same text, without parsing "{}"
// for each number). Both plan texts start from it.
struct DoubleText {
  explicit DoubleText(double v) : value(v), size(static_cast<size_t>(fmt::format_to(buf, FMT_COMPILE("{}"), v) - buf)) {}
  std::string_view text() const { return {buf, size}; }
  double value;
  char buf[40];
  size_t size;
};

// Room one move takes in either text, names aside: the keys and punctuation
// (under 140 characters pretty), five integers of at most 20, the activity
// of at most 40, the reason.
constexpr size_t kMoveRoom = 400;
// What a move usually takes (room reserved for all of them at once, so the
// buffer is not copied as it grows): ~130 characters canonical, ~170 pretty
// for generated fleets.
constexpr size_t kCanonicalMoveBytes = 140;
constexpr size_t kPrettyMoveBytes = 180;

// One move of the canonical moves array (keys in sorted order like the rest
// of the canonical document). At 50 000 moves building it as a JSON DOM
// costs ten times more than the plan took to compute.
void write_canonical_move(TextBuffer& out, const PlannedMove& m, const DoubleText& activity, bool first) {
  std::string name;
  if (!m.user_name.empty()) name = canonical_json_string(m.user_name);
  char* p = room(out, kMoveRoom + name.size());
  if (!first) *p++ = ',';
  p = put(p, "{\"activity\":");
  p = put(p, activity.text());
  p = put(p, ",\"bytes\":");
  p = put_int(p, m.bytes);
  p = put(p, ",\"from\":");
  p = put_int(p, m.from);
  p = put(p, ",\"night\":");
  p = put_int(p, m.night);
  p = put(p, ",\"reason\":\"");
  p = put(p, move_reason_name(m.reason));
  p = put(p, "\",\"to\":");
  p = put_int(p, m.to);
  p = put(p, ",\"user\":");
  if (m.user_name.empty()) {
    *p++ = '"';
    p = put_int(p, m.user);
    *p++ = '"';
  } else {
    p = put(p, name);
  }
  p = put(p, ",\"user_id\":");
  p = put_int(p, m.user);
  *p++ = '}';
  done(out, p);
}

// The activity as the pretty dump prints it after parsing the canonical
// text: fmt's text of an integer ("3", "-0") parses as an integer and
// prints as one; anything else parses as the same double (fmt's text reads
// back exactly) and prints as nlohmann prints doubles.
char* put_reparsed_double(char* p, const DoubleText& d) {
  const std::string_view t = d.text();
  const size_t digits_from = !t.empty() && t[0] == '-' ? 1 : 0;
  const bool integral = t.size() > digits_from && t.find_first_not_of("0123456789", digits_from) == std::string_view::npos;
  if (integral) {
    int64_t i = 0;
    std::from_chars(t.data(), t.data() + t.size(), i);  // at most 16 digits: fmt writes larger values with an exponent
    return put_int(p, i);
  }
  if (!std::isfinite(d.value)) return put(p, "null");  // as nlohmann dumps it
  // What Json(v).dump() writes, without a serializer and a string per
  // move: the conversion nlohmann's serializer itself calls for a double
  // (serializer::dump_float).
  return nlohmann::detail::to_chars(p, p + 64, d.value);
}

// One move of the moves array as nlohmann's dump(1) of the parsed canonical
// document prints it: the array at depth 1, each move an object at depth 2
// with its keys sorted, strings escaped by nlohmann itself.
void write_pretty_move(TextBuffer& out, const PlannedMove& m, const DoubleText& activity, bool last) {
  std::string name;
  if (!m.user_name.empty()) name = Json(m.user_name).dump(-1, ' ', false, Json::error_handler_t::replace);
  char* p = room(out, kMoveRoom + name.size());
  p = put(p, "  {\n   \"activity\": ");
  p = put_reparsed_double(p, activity);
  p = put(p, ",\n   \"bytes\": ");
  p = put_int(p, m.bytes);
  p = put(p, ",\n   \"from\": ");
  p = put_int(p, m.from);
  p = put(p, ",\n   \"night\": ");
  p = put_int(p, m.night);
  p = put(p, ",\n   \"reason\": \"");
  p = put(p, move_reason_name(m.reason));
  p = put(p, "\",\n   \"to\": ");
  p = put_int(p, m.to);
  p = put(p, ",\n   \"user\": ");
  if (m.user_name.empty()) {
    *p++ = '"';
    p = put_int(p, m.user);
    *p++ = '"';
  } else {
    p = put(p, name);
  }
  p = put(p, ",\n   \"user_id\": ");
  p = put_int(p, m.user);
  p = put(p, last ? "\n  }\n" : "\n  },\n");
  done(out, p);
}

// The canonical document without its moves, split where the moves array's
// elements go: text = head + elements + tail.
struct CanonicalFrame {
  std::string text;
  size_t cut = 0;  // just after the '[' of "moves":[]
  std::string_view head() const { return std::string_view(text).substr(0, cut); }
  std::string_view tail() const { return std::string_view(text).substr(cut); }
};
// `doc` is plan_document(): the document minus its moves, with an empty
// array where they go; the key "moves" with an array value exists only at
// the top level.
CanonicalFrame canonical_frame(const Json& doc) {
  // Invalid UTF-8 in a name (directories are not always clean) becomes U+FFFD
  // rather than an exception.
  CanonicalFrame f;
  f.text = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
  const std::string_view slot = "\"moves\":[]";
  f.cut = f.text.find(slot) + slot.size() - 1;
  return f;
}

// Whether nlohmann's parser accepts s inside a string: well-formed UTF-8
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len) return false;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

// Whether the canonical text parses back, which the pretty text is defined
// by: not when a name is invalid UTF-8.
bool reparses(const Plan& plan) {
  return std::all_of(plan.moves.begin(), plan.moves.end(), [](const PlannedMove& m) { return valid_utf8(m.user_name); });
}

// The pretty text (see plan_to_pretty_json) from the plan document and the
// moves written by write_pretty_move. The text is defined as the canonical
// document parsed and dumped again with one space of indent. Parsing 10^4
// moves into a DOM costs more than the plan took to compute, so the same
// bytes are written directly: the rest of the document is a small DOM
// dumped as is (a dump parses back to an equal DOM), the moves as that dump
// writes them.
std::string pretty_text(Json& doc, const std::string& hash, const TextBuffer& moves) {
  doc["plan_hash"] = hash;
  std::string text = doc.dump(1, ' ', false, Json::error_handler_t::replace);
  // The top-level key sits at indent 1 on its own line: nothing inside a
  // string can look like this (newlines in strings are escaped).
  const std::string_view slot = "\n \"moves\": []";
  const size_t cut = text.find(slot) + slot.size() - 2;  // before "[]"
  std::string out;
  out.reserve(text.size() + moves.size() + 8);
  out.append(text, 0, cut);
  if (moves.size() == 0) {
    out += "[]";
  } else {
    out += "[\n";
    out.append(moves.data(), moves.size());
    out += " ]";
  }
  out.append(text, cut + 2, std::string::npos);
  out += '\n';
  return out;
}

// A plan whose canonical text does not parse (a name with invalid UTF-8):
// the canonical text kept as is, the hash first.
std::string pretty_fallback(const Plan& plan, const std::string& hash);

}  // namespace

std::string plan_to_json(const Plan& plan) {
  const CanonicalFrame f = canonical_frame(plan_document(plan));
  TextBuffer moves;
  moves.reserve(plan.moves.size() * kCanonicalMoveBytes);
  for (size_t i = 0; i < plan.moves.size(); ++i)
    write_canonical_move(moves, plan.moves[i], DoubleText(plan.moves[i].activity), i == 0);
  std::string out;
  out.reserve(f.text.size() + moves.size());
  out.append(f.head());
  out.append(moves.data(), moves.size());
  out.append(f.tail());
  return out;
}

namespace {
std::string pretty_fallback(const Plan& plan, const std::string& hash) {
  std::string canonical = plan_to_json(plan);
  return "{\"plan_hash\":\"" + hash + "\"," + canonical.substr(1) + "\n";
}
}  // namespace

std::string plan_to_pretty_json(const Plan& plan, const std::string& hash) {
  if (!reparses(plan)) return pretty_fallback(plan, hash);
  TextBuffer moves;
  moves.reserve(plan.moves.size() * kPrettyMoveBytes);
  for (size_t i = 0; i < plan.moves.size(); ++i)
    write_pretty_move(moves, plan.moves[i], DoubleText(plan.moves[i].activity), i + 1 == plan.moves.size());
  Json doc = plan_document(plan);
  return pretty_text(doc, hash, moves);
}

PlanTexts plan_texts(const Plan& plan, PrettyJson pretty) {
  // The hash of plan_to_json(plan), fed in pieces: the moves go through a
  // small buffer instead of one string as large as the document. With the
  // pretty text, each move's activity is formatted once for both, and the
  // plan document built once.
  constexpr size_t kChunk = 64 << 10;
  Json doc = plan_document(plan);
  const CanonicalFrame f = canonical_frame(doc);
  const bool write_pretty = pretty == PrettyJson::kYes && reparses(plan);
  Hasher h;
  h.update(f.head());
  TextBuffer chunk, pretty_moves;
  chunk.reserve(kChunk + kMoveRoom);
  if (write_pretty) pretty_moves.reserve(plan.moves.size() * kPrettyMoveBytes);
  for (size_t i = 0; i < plan.moves.size(); ++i) {
    const PlannedMove& m = plan.moves[i];
    const DoubleText activity(m.activity);
    write_canonical_move(chunk, m, activity, i == 0);
    if (chunk.size() >= kChunk) {
      h.update(chunk.data(), chunk.size());
      chunk.clear();
    }
    if (write_pretty) write_pretty_move(pretty_moves, m, activity, i + 1 == plan.moves.size());
  }
  h.update(chunk.data(), chunk.size());
  h.update(f.tail());
  PlanTexts out;
  out.hash = h.digest().hex();
  if (write_pretty)
    out.pretty_json = pretty_text(doc, out.hash, pretty_moves);
  else if (pretty == PrettyJson::kYes)
    out.pretty_json = pretty_fallback(plan, out.hash);
  return out;
}

std::string plan_hash(const Plan& plan) { return plan_texts(plan, PrettyJson::kNo).hash; }

Result<Plan> plan_from_json(std::string_view text) {
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return Error::invalid("plan JSON: not a JSON object");
  std::string format;
  MS_CHECK(get(doc, "format", format, "plan"));
  if (format != "mailshard-plan/1")
    return Error::invalid(fmt::format("plan JSON: unsupported format '{}' (expected mailshard-plan/1)", format));
  Plan p;
  MS_CHECK(get(doc, "strategy", p.strategy, "plan"));
  MS_CHECK(get(doc, "partial", p.partial, "plan"));
  MS_CHECK(get(doc, "partial_reasons", p.partial_reasons, "plan"));
  MS_CHECK(get(doc, "warnings", p.warnings, "plan"));

  const Json& snap = *MS_TRY(get_node(doc, "snapshot", Shape::kObject, "plan"));
  MS_CHECK(get(snap, "users", p.snapshot_users, "snapshot"));
  MS_CHECK(get(snap, "servers", p.snapshot_servers, "snapshot"));
  MS_CHECK(get(snap, "taken_at_ms", p.snapshot_taken_at_ms, "snapshot"));
  MS_CHECK(get(snap, "source", p.snapshot_source, "snapshot"));

  const Json& c = *MS_TRY(get_node(doc, "constraints", Shape::kObject, "plan"));
  Constraints& k = p.constraints;
  MS_CHECK(get(c, "strategy", k.strategy, "constraints"));
  MS_CHECK(get(c, "band", k.band, "constraints"));
  MS_CHECK(get(c, "hard_cap", k.hard_cap, "constraints"));
  MS_CHECK(get(c, "min_free_bytes", k.min_free_bytes, "constraints"));
  MS_CHECK(get(c, "headroom_bytes", k.headroom_bytes, "constraints"));
  MS_CHECK(get(c, "load_band", k.load_band, "constraints"));
  MS_CHECK(get(c, "drain", k.drain, "constraints"));
  MS_CHECK(get(c, "max_bytes", k.max_bytes, "constraints"));
  MS_CHECK(get(c, "max_moves", k.max_moves, "constraints"));
  MS_CHECK(get(c, "max_moves_per_server", k.max_moves_per_server, "constraints"));
  MS_CHECK(get(c, "max_move_bytes", k.max_move_bytes, "constraints"));
  MS_CHECK(get(c, "nights", k.nights, "constraints"));
  MS_CHECK(get(c, "cost_alpha_bytes", k.cost_alpha_bytes, "constraints"));
  const Json& e = *MS_TRY(get_node(c, "execution", Shape::kObject, "constraints"));
  MS_CHECK(get(e, "slots_per_server", k.execution.slots_per_server, "constraints.execution"));
  MS_CHECK(get(e, "rate_bytes_per_s", k.execution.rate_bytes_per_s, "constraints.execution"));
  MS_CHECK(get(e, "overhead_s", k.execution.overhead_s, "constraints.execution"));
  MS_CHECK(get(e, "night_hours", k.execution.night_hours, "constraints.execution"));

  const Json& moves = *MS_TRY(get_node(doc, "moves", Shape::kArray, "plan"));
  p.moves.reserve(moves.size());
  for (size_t i = 0; i < moves.size(); ++i) {
    std::string where = fmt::format("moves[{}]", i);
    if (!moves[i].is_object()) return Error::invalid(fmt::format("plan JSON: {}: not an object", where));
    const Json& j = moves[i];
    PlannedMove m;
    std::string reason, label;
    MS_CHECK(get(j, "user_id", m.user, where));
    MS_CHECK(get(j, "user", label, where));
    MS_CHECK(get(j, "from", m.from, where));
    MS_CHECK(get(j, "to", m.to, where));
    MS_CHECK(get(j, "bytes", m.bytes, where));
    MS_CHECK(get(j, "activity", m.activity, where));
    MS_CHECK(get(j, "reason", reason, where));
    MS_CHECK(get(j, "night", m.night, where));
    m.reason = MS_TRY_CTX(parse_move_reason(reason), "plan JSON: " + where);
    if (label != std::to_string(m.user)) m.user_name = label;
    p.moves.push_back(std::move(m));
  }

  const Json& servers = *MS_TRY(get_node(doc, "servers", Shape::kArray, "plan"));
  for (size_t i = 0; i < servers.size(); ++i) {
    std::string where = fmt::format("servers[{}]", i);
    if (!servers[i].is_object()) return Error::invalid(fmt::format("plan JSON: {}: not an object", where));
    const Json& j = servers[i];
    ServerOutcome s;
    std::string name, before, after;
    MS_CHECK(get(j, "id", s.id, where));
    MS_CHECK(get(j, "name", name, where));
    MS_CHECK(get(j, "class", s.server_class, where));
    MS_CHECK(get(j, "draining", s.draining, where));
    MS_CHECK(get(j, "capacity_bytes", s.capacity_bytes, where));
    MS_CHECK(get(j, "other_bytes", s.other_bytes, where));
    MS_CHECK(get(j, "lower_bytes", s.lower_bytes, where));
    MS_CHECK(get(j, "upper_bytes", s.upper_bytes, where));
    MS_CHECK(get(j, "cap_bytes", s.cap_bytes, where));
    MS_CHECK(get(j, "used_before", s.used_before, where));
    MS_CHECK(get(j, "used_after", s.used_after, where));
    MS_CHECK(get(j, "load_capacity", s.load_capacity, where));
    MS_CHECK(get(j, "load_before", s.load_before, where));
    MS_CHECK(get(j, "load_after", s.load_after, where));
    MS_CHECK(get(j, "moves_in", s.moves_in, where));
    MS_CHECK(get(j, "moves_out", s.moves_out, where));
    MS_CHECK(get(j, "bytes_in", s.bytes_in, where));
    MS_CHECK(get(j, "bytes_out", s.bytes_out, where));
    MS_CHECK(get(j, "band_before", before, where));
    MS_CHECK(get(j, "band_after", after, where));
    s.before = MS_TRY_CTX(parse_band_state(before), "plan JSON: " + where);
    s.after = MS_TRY_CTX(parse_band_state(after), "plan JSON: " + where);
    if (name != std::to_string(s.id)) s.name = name;
    p.servers.push_back(std::move(s));
  }

  const Json& classes = *MS_TRY(get_node(doc, "classes", Shape::kArray, "plan"));
  for (size_t i = 0; i < classes.size(); ++i) {
    std::string where = fmt::format("classes[{}]", i);
    if (!classes[i].is_object()) return Error::invalid(fmt::format("plan JSON: {}: not an object", where));
    const Json& j = classes[i];
    ClassOutcome o;
    MS_CHECK(get(j, "name", o.name, where));
    MS_CHECK(get(j, "servers", o.servers, where));
    MS_CHECK(get(j, "mean_util", o.mean_util, where));
    MS_CHECK(get(j, "load_mean", o.load_mean, where));
    MS_CHECK(get(j, "max_minus_mean_before", o.max_minus_mean_before, where));
    MS_CHECK(get(j, "max_minus_mean_after", o.max_minus_mean_after, where));
    MS_CHECK(get(j, "std_before", o.std_before, where));
    MS_CHECK(get(j, "std_after", o.std_after, where));
    MS_CHECK(get(j, "load_max_over_mean_before", o.load_max_over_mean_before, where));
    MS_CHECK(get(j, "load_max_over_mean_after", o.load_max_over_mean_after, where));
    MS_CHECK(get(j, "out_of_band_before", o.out_of_band_before, where));
    MS_CHECK(get(j, "out_of_band_after", o.out_of_band_after, where));
    MS_CHECK(get(j, "above_load_band_after", o.above_load_band_after, where));
    p.classes.push_back(std::move(o));
  }

  const Json& b = *MS_TRY(get_node(doc, "lower_bounds", Shape::kObject, "plan"));
  LowerBounds& lb = p.bounds;
  MS_CHECK(get(b, "lb_bytes", lb.lb_bytes, "lower_bounds"));
  MS_CHECK(get(b, "lb_moves", lb.lb_moves, "lower_bounds"));
  MS_CHECK(get(b, "lb_cost", lb.lb_cost, "lower_bounds"));
  MS_CHECK(get(b, "t_lb_s", lb.t_lb_s, "lower_bounds"));
  MS_CHECK(get(b, "max_server_moves_lb", lb.max_server_moves_lb, "lower_bounds"));
  MS_CHECK(get(b, "nights_lb", lb.nights_lb, "lower_bounds"));
  MS_CHECK(get(b, "infeasible_servers", lb.infeasible_servers, "lower_bounds"));
  MS_CHECK(get(b, "pinned_on_draining", lb.pinned_on_draining, "lower_bounds"));
  const Json& bc = *MS_TRY(get_node(b, "classes", Shape::kArray, "lower_bounds"));
  for (size_t i = 0; i < bc.size(); ++i) {
    std::string where = fmt::format("lower_bounds.classes[{}]", i);
    if (!bc[i].is_object()) return Error::invalid(fmt::format("plan JSON: {}: not an object", where));
    const Json& j = bc[i];
    ClassBounds cb;
    MS_CHECK(get(j, "name", cb.name, where));
    MS_CHECK(get(j, "excess_bytes", cb.excess_bytes, where));
    MS_CHECK(get(j, "deficit_bytes", cb.deficit_bytes, where));
    MS_CHECK(get(j, "lb_bytes", cb.lb_bytes, where));
    MS_CHECK(get(j, "k_src", cb.k_src, where));
    MS_CHECK(get(j, "k_recv", cb.k_recv, where));
    MS_CHECK(get(j, "lb_moves", cb.lb_moves, where));
    MS_CHECK(get(j, "lb_cost", cb.lb_cost, where));
    lb.classes.push_back(std::move(cb));
  }

  const Json& est = *MS_TRY(get_node(doc, "estimate", Shape::kObject, "plan"));
  MS_CHECK(get(est, "bytes", p.estimate.bytes, "estimate"));
  MS_CHECK(get(est, "moves", p.estimate.moves, "estimate"));
  MS_CHECK(get(est, "makespan_s", p.estimate.makespan_s, "estimate"));
  MS_CHECK(get(est, "plan_lb_s", p.estimate.plan_lb_s, "estimate"));
  MS_CHECK(get(est, "nights", p.estimate.nights, "estimate"));
  const Json& nights = *MS_TRY(get_node(est, "per_night", Shape::kArray, "estimate"));
  for (size_t i = 0; i < nights.size(); ++i) {
    std::string where = fmt::format("estimate.per_night[{}]", i);
    if (!nights[i].is_object()) return Error::invalid(fmt::format("plan JSON: {}: not an object", where));
    NightEstimate n;
    MS_CHECK(get(nights[i], "night", n.night, where));
    MS_CHECK(get(nights[i], "bytes", n.bytes, where));
    MS_CHECK(get(nights[i], "moves", n.moves, where));
    MS_CHECK(get(nights[i], "makespan_s", n.makespan_s, where));
    p.estimate.per_night.push_back(n);
  }
  MS_CHECK(validate(p));
  return p;
}

Result<Plan> plan_from_file_json(std::string_view text) {
  Plan p = MS_TRY(plan_from_json(text));
  // plan_from_json parsed it already; a second parse is cheap next to a plan.
  Json doc = Json::parse(text, nullptr, false);
  auto it = doc.find("plan_hash");
  if (it == doc.end())
    return Error::invalid("plan JSON: missing 'plan_hash' (a plan file must carry the hash it was reviewed under)");
  if (!it->is_string()) return Error::invalid("plan JSON: plan: 'plan_hash' has the wrong type or is out of range");
  const std::string hash = plan_hash(p);
  if (it->get_ref<const std::string&>() != hash)
    return Error::invalid(fmt::format("plan_hash {} does not match its content ({}); the file was edited",
                                      printable(it->get_ref<const std::string&>(), 40), hash));
  return p;
}

}  // namespace mailshard
