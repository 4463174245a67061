#include "inventory/prometheus_parser.h"

#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard {
namespace {

// Bounds that keep a hostile or broken page cheap to reject: node_exporter's
// longest lines are a few hundred bytes with under 10 labels.
constexpr size_t kMaxLineBytes = 64u << 10;
constexpr size_t kMaxLabels = 128;

bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }
bool label_start(char c) { return name_start(c) && c != ':'; }
bool label_char(char c) { return label_start(c) || (c >= '0' && c <= '9'); }
bool blank(char c) { return c == ' ' || c == '\t'; }

// Parses a sample value: a Go float literal as Prometheus writes it.
bool parse_value(std::string_view s, double& out) {
  if (s == "NaN" || s == "nan") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (s == "+Inf" || s == "Inf" || s == "+inf" || s == "inf") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-Inf" || s == "-inf") {
    out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  // from_chars would also take "inf"/"nan" spellings handled above; reject
  // anything that does not start like a number.
  char c = s.front();
  if (!((c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

class LineParser {
 public:
  LineParser(std::string_view line, size_t line_no) : s_(line), line_no_(line_no) {}

  Result<PromSample> sample() {
    PromSample out;
    skip_blanks();
    size_t start = pos_;
    if (pos_ >= s_.size() || !name_start(s_[pos_])) return bad_name();
    while (pos_ < s_.size() && name_char(s_[pos_])) ++pos_;
    out.name = std::string(s_.substr(start, pos_ - start));
    if (pos_ < s_.size() && !blank(s_[pos_]) && s_[pos_] != '{') return bad_name();
    skip_blanks();
    if (pos_ < s_.size() && s_[pos_] == '{') MS_CHECK(labels(out));
    skip_blanks();
    std::string_view value_tok = token();
    if (value_tok.empty()) return err(fmt::format("missing value after '{}'", printable(out.name, 60)));
    if (!parse_value(value_tok, out.value))
      return err(fmt::format("invalid value '{}' for '{}'", printable(value_tok, 40), printable(out.name, 60)));
    skip_blanks();
    std::string_view ts = token();
    if (!ts.empty()) {
      int64_t t;
      auto [p, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), t);
      if (ec != std::errc() || p != ts.data() + ts.size())
        return err(fmt::format("invalid timestamp '{}'", printable(ts, 40)));
      out.timestamp_ms = t;
    }
    skip_blanks();
    if (pos_ != s_.size()) return err(fmt::format("unexpected text '{}' after the sample", printable(s_.substr(pos_), 40)));
    return out;
  }

 private:
  Error err(const std::string& what) const { return Error::corrupt(fmt::format("line {}: {}", line_no_, what)); }
  Error bad_name() const {
    return err(fmt::format("invalid metric name '{}'", printable(s_.substr(0, s_.find_first_of(" \t{")), 40)));
  }
  void skip_blanks() {
    while (pos_ < s_.size() && blank(s_[pos_])) ++pos_;
  }
  std::string_view token() {
    size_t start = pos_;
    while (pos_ < s_.size() && !blank(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  Status labels(PromSample& out) {
    ++pos_;  // '{'
    while (true) {
      skip_blanks();
      if (pos_ >= s_.size()) return err("unterminated label set (missing '}')");
      if (s_[pos_] == '}') {
        ++pos_;
        return {};
      }
      size_t start = pos_;
      if (!label_start(s_[pos_])) return err(fmt::format("invalid label name at '{}'", printable(s_.substr(pos_), 40)));
      while (pos_ < s_.size() && label_char(s_[pos_])) ++pos_;
      std::string key(s_.substr(start, pos_ - start));
      skip_blanks();
      if (pos_ >= s_.size() || s_[pos_] != '=') return err(fmt::format("expected '=' after label name '{}'", key));
      ++pos_;
      skip_blanks();
      if (pos_ >= s_.size() || s_[pos_] != '"') return err(fmt::format("expected '\"' to open the value of label '{}'", key));
      ++pos_;
      std::string value;
      bool closed = false;
      while (pos_ < s_.size()) {
        char c = s_[pos_++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (pos_ >= s_.size()) break;
          char e = s_[pos_++];
          if (e == '\\') value += '\\';
          else if (e == '"') value += '"';
          else if (e == 'n') value += '\n';
          else return err(fmt::format("invalid escape '\\{}' in the value of label '{}'", printable(std::string_view(&e, 1)), key));
        } else {
          value += c;
        }
      }
      if (!closed) return err(fmt::format("unterminated value of label '{}'", key));
      // The duplicate check is quadratic in the label count, hence the bound.
      if (out.labels.size() == kMaxLabels) return err(fmt::format("more than {} labels", kMaxLabels));
      for (const auto& [k, v] : out.labels)
        if (k == key) return err(fmt::format("label '{}' given twice", key));
      out.labels.emplace_back(std::move(key), std::move(value));
      skip_blanks();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      skip_blanks();
      if (pos_ >= s_.size() || s_[pos_] != '}')
        return err(fmt::format("expected ',' or '}}' after the value of label '{}'", out.labels.back().first));
    }
  }

  std::string_view s_;
  size_t line_no_;
  size_t pos_ = 0;
};

// "# HELP name text" / "# TYPE name type": the name must be valid. Other
// comments are free text.
Status check_comment(std::string_view line, size_t line_no) {
  std::string_view rest = trim(line.substr(1));
  for (std::string_view kw : {"HELP", "TYPE"}) {
    if (!starts_with(rest, kw) || (rest.size() > kw.size() && !blank(rest[kw.size()]))) continue;
    std::string_view after = trim(rest.substr(kw.size()));
    std::string_view name = after.substr(0, after.find_first_of(" \t"));
    bool ok = !name.empty() && name_start(name.front());
    for (char c : name) ok = ok && name_char(c);
    if (!ok) return Error::corrupt(fmt::format("line {}: # {} without a valid metric name", line_no, kw));
    if (kw == "TYPE") {
      std::string_view type = trim(after.substr(name.size()));
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
        return Error::corrupt(fmt::format("line {}: unknown metric type '{}'", line_no, printable(type, 40)));
    }
  }
  return {};
}

}  // namespace

std::string_view PromSample::label(std::string_view key) const {
  for (const auto& [k, v] : labels)
    if (k == key) return v;
  return {};
}

Result<std::vector<PromSample>> parse_prometheus_text(std::string_view text) {
  std::vector<PromSample> out;
  size_t pos = 0, line_no = 0;
  if (text.find('\0') != std::string_view::npos) return Error::corrupt("binary data (a NUL byte), not Prometheus text");
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > kMaxLineBytes)
      return Error::corrupt(fmt::format("line {}: longer than {} bytes", line_no, kMaxLineBytes));
    std::string_view t = trim(line);
    if (t.empty()) continue;
    if (t.front() == '#') {
      MS_CHECK(check_comment(t, line_no));
      continue;
    }
    out.push_back(MS_TRY(LineParser(line, line_no).sample()));
  }
  return out;
}

}  // namespace mailshard
