#include "movers/move_progress.h"

#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include <fmt/format.h>

namespace mailshard {

namespace {

using Json = nlohmann::json;

// The counters of PassStats by their key in PassStats::to_json() (the round
// trip in move_progress_test.cc fails when a counter is missing here).
constexpr std::array<std::pair<const char*, int64_t PassStats::*>, 24> kPassCounters = {{
    {"dirs", &PassStats::dirs},
    {"entries", &PassStats::entries},
    {"files_copied", &PassStats::files_copied},
    {"bytes_sent", &PassStats::bytes_sent},
    {"signature_bytes", &PassStats::signature_bytes},
    {"renames", &PassStats::renames},
    {"deletes", &PassStats::deletes},
    {"dirs_created", &PassStats::dirs_created},
    {"dirs_removed", &PassStats::dirs_removed},
    {"hard_links", &PassStats::hard_links},
    {"symlinks", &PassStats::symlinks},
    {"stat_calls", &PassStats::stat_calls},
    {"metadata_checked", &PassStats::metadata_checked},
    {"metadata_sent", &PassStats::metadata_sent},
    {"tails", &PassStats::tails},
    {"block_patches", &PassStats::block_patches},
    {"deltas", &PassStats::deltas},
    {"whole", &PassStats::whole},
    {"attrs_fixed", &PassStats::attrs_fixed},
    {"adopted", &PassStats::adopted},
    {"vanished", &PassStats::vanished},
    {"unstable", &PassStats::unstable},
    {"audit_mismatches", &PassStats::audit_mismatches},
    {"temps_removed", &PassStats::temps_removed},
}};

// One JSON value into one typed field; false (and `out` untouched) when the
// value has another type or does not fit. nlohmann's get<T>() throws on a
// wrong type, so every get<T>() here comes after its type check.
bool convert(const Json& v, std::string& out) {
  if (!v.is_string()) return false;
  out = v.get<std::string>();
  return true;
}
bool convert(const Json& v, bool& out) {
  if (!v.is_boolean()) return false;
  out = v.get<bool>();
  return true;
}
bool convert(const Json& v, double& out) {
  if (!v.is_number()) return false;
  double d = v.get<double>();
  if (!std::isfinite(d)) return false;
  out = d;
  return true;
}
bool convert(const Json& v, int64_t& out) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    out = static_cast<int64_t>(u);
    return true;
  }
  if (!v.is_number_integer()) return false;
  out = v.get<int64_t>();
  return true;
}
bool convert(const Json& v, PassKind& out) {
  if (!v.is_string()) return false;
  for (PassKind k : {PassKind::kWarm, PassKind::kFrozen, PassKind::kMetadata})
    if (v.get_ref<const std::string&>() == pass_kind_name(k)) {
      out = k;
      return true;
    }
  return false;
}
bool convert(const Json& v, QuotaRecalc& out) {
  if (!v.is_string()) return false;
  for (QuotaRecalc q : {QuotaRecalc::kDone, QuotaRecalc::kSkipped, QuotaRecalc::kFailed})
    if (v.get_ref<const std::string&>() == quota_recalc_name(q)) {
      out = q;
      return true;
    }
  return false;
}
bool convert(const Json& v, std::vector<std::string>& out) {
  if (!v.is_array()) return false;
  std::vector<std::string> all;
  for (const Json& el : v) {
    if (!el.is_string()) return false;
    all.push_back(el.get<std::string>());
  }
  out = std::move(all);
  return true;
}

// The fields of one JSON object, read one by one: a missing key leaves its
// field alone, a key of the wrong type too, and is noted as ignored.
class Fields {
 public:
  Fields(const Json& obj, std::string prefix, std::vector<std::string>& ignored)
      : obj_(obj), prefix_(std::move(prefix)), ignored_(ignored) {}

  // The value at `key`, or null when it is missing.
  const Json* find(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }
  void ignore(std::string_view key) { ignored_.push_back(path(key)); }
  std::string path(std::string_view key) const { return prefix_ + std::string(key); }

  template <typename T>
  void read(const char* key, T& out) {
    const Json* v = find(key);
    if (!v) return;
    T value{};
    if (convert(*v, value)) out = std::move(value);
    else ignore(key);
  }
  template <typename T>
  void read(const char* key, std::optional<T>& out) {
    const Json* v = find(key);
    if (!v) return;
    T value{};
    if (convert(*v, value)) out = std::move(value);
    else ignore(key);
  }

 private:
  const Json& obj_;
  std::string prefix_;
  std::vector<std::string>& ignored_;
};

PassStats parse_pass_stats(const Json& j, const std::string& where, std::vector<std::string>& ignored) {
  PassStats s;
  Fields f(j, where + ".", ignored);
  f.read("kind", s.kind);
  f.read("audit", s.audit);
  for (const auto& [key, member] : kPassCounters) f.read(key, s.*member);
  if (const Json* ph = f.find("seconds_per_phase")) {
    if (!ph->is_object()) {
      f.ignore("seconds_per_phase");
    } else {
      for (const auto& [name, seconds] : ph->items()) {
        double d = 0;
        if (convert(seconds, d)) s.phases.emplace_back(name, d);
        else f.ignore("seconds_per_phase." + name);
      }
    }
  }
  f.read("seconds", s.seconds);
  return s;
}

VerifyReport parse_verify_report(const Json& j, const std::string& where, std::vector<std::string>& ignored) {
  VerifyReport r;
  Fields f(j, where + ".", ignored);
  f.read("entries_compared", r.entries_compared);
  f.read("files_hashed", r.files_hashed);
  f.read("uidlists_checked", r.uidlists_checked);
  f.read("mismatches", r.mismatches);
  f.read("seconds", r.seconds);
  return r;
}

}  // namespace

std::string_view quota_recalc_name(QuotaRecalc q) {
  switch (q) {
    case QuotaRecalc::kDone: return "done";
    case QuotaRecalc::kSkipped: return "skipped";
    case QuotaRecalc::kFailed: return "failed";
  }
  return "?";
}

Json MoveProgress::to_json_object() const {
  Json j = Json::object();
  j["src_home"] = src_home;
  if (src_location) j["src_location"] = *src_location;
  if (dst_location) j["dst_location"] = *dst_location;
  if (new_home) j["new_home"] = *new_home;
  j["empty_source"] = empty_source;
  if (!trees.empty()) {
    Json list = Json::array();
    for (const auto& t : trees) {
      Json o = {{"name", t.name}, {"src", t.src}, {"dst", t.dst}, {"empty_source", t.empty_source}};
      if (t.file) o["file"] = true;
      if (t.renamed) o["renamed"] = true;
      if (t.files_copied) o["files_copied"] = *t.files_copied;
      if (t.uidlists_checked) o["uidlists_checked"] = *t.uidlists_checked;
      list.push_back(std::move(o));
    }
    j["trees"] = std::move(list);
  }
  if (clock_skew_ms) j["clock_skew_ms"] = *clock_skew_ms;
  if (quota_limit_kib) j["quota_limit_kib"] = *quota_limit_kib;
  if (quota_message_limit) j["quota_message_limit"] = *quota_message_limit;
  if (quota_need_bytes) j["quota_need_bytes"] = *quota_need_bytes;
  if (quota_need_messages) j["quota_need_messages"] = *quota_need_messages;
  if (!precopy.empty()) {
    Json passes = Json::array();
    for (const auto& p : precopy) passes.push_back(p.to_json());
    j["precopy"] = std::move(passes);
  }
  if (freeze_requested) j["freeze_requested"] = true;
  if (!freeze_owner.empty()) j["freeze_owner"] = freeze_owner;
  if (convert) j["convert"] = *convert;
  if (convert_maildir) j["convert_maildir"] = *convert_maildir;
  if (converted_folders) j["converted_folders"] = *converted_folders;
  if (final_pass) j["final_pass"] = final_pass->to_json();
  if (verify) j["verify"] = verify->to_json();
  if (doveadm_mailboxes_compared) j["doveadm_mailboxes_compared"] = *doveadm_mailboxes_compared;
  if (doveadm_messages_compared) j["doveadm_messages_compared"] = *doveadm_messages_compared;
  if (renamed) j["renamed"] = true;
  if (swept) j["swept"] = *swept;
  if (purge_swept) j["purge_swept"] = *purge_swept;
  if (quota_recalc) j["quota_recalc"] = quota_recalc_name(*quota_recalc);
  if (quota_recalc_error) j["quota_recalc_error"] = *quota_recalc_error;
  if (quota_storage_kib) j["quota_storage_kib"] = *quota_storage_kib;
  if (quota_messages) j["quota_messages"] = *quota_messages;
  if (director) {
    j["kind"] = "director";
    j["storage_group"] = director->storage_group;
    j["from_host"] = director->from_host;
    j["to_host"] = director->to_host;
    if (director->before) j["director_before"] = *director->before;
    if (director->hashed) j["director_hashed"] = *director->hashed;
    if (director->moved) j["director_moved"] = *director->moved;
    if (director->move_ms) j["director_move_ms"] = *director->move_ms;
  }
  return j;
}

std::string MoveProgress::to_json() const { return to_json_object().dump(); }

Result<MoveProgress> MoveProgress::parse(std::string_view text, std::vector<std::string>* ignored) {
  std::vector<std::string> dropped;
  MoveProgress p;
  if (text.empty()) return p;
  Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::corrupt("move progress: not JSON");
  if (!doc.is_object()) return Error::corrupt("move progress: not a JSON object");

  Fields f(doc, "", dropped);
  f.read("src_home", p.src_home);
  f.read("src_location", p.src_location);
  f.read("dst_location", p.dst_location);
  f.read("new_home", p.new_home);
  f.read("empty_source", p.empty_source);
  if (const Json* list = f.find("trees")) {
    if (!list->is_array()) {
      f.ignore("trees");
      p.trees.push_back({});  // a tree without paths: open_sides refuses to guess
    } else {
      for (size_t i = 0; i < list->size(); ++i) {
        std::string where = fmt::format("trees[{}]", i);
        ExtraTree t;
        if ((*list)[i].is_object()) {
          Fields tf((*list)[i], where + ".", dropped);
          tf.read("name", t.name);
          tf.read("src", t.src);
          tf.read("dst", t.dst);
          tf.read("empty_source", t.empty_source);
          tf.read("file", t.file);
          tf.read("renamed", t.renamed);
          tf.read("files_copied", t.files_copied);
          tf.read("uidlists_checked", t.uidlists_checked);
        } else {
          f.ignore(where);
        }
        p.trees.push_back(std::move(t));  // an unreadable one stays, empty: open_sides refuses to guess
      }
    }
  }
  f.read("clock_skew_ms", p.clock_skew_ms);
  f.read("quota_limit_kib", p.quota_limit_kib);
  f.read("quota_message_limit", p.quota_message_limit);
  f.read("quota_need_bytes", p.quota_need_bytes);
  f.read("quota_need_messages", p.quota_need_messages);
  if (const Json* passes = f.find("precopy")) {
    if (!passes->is_array()) {
      f.ignore("precopy");
    } else {
      for (size_t i = 0; i < passes->size(); ++i) {
        std::string where = fmt::format("precopy[{}]", i);
        if ((*passes)[i].is_object()) p.precopy.push_back(parse_pass_stats((*passes)[i], where, dropped));
        else f.ignore(where);
      }
    }
  }
  f.read("freeze_requested", p.freeze_requested);
  f.read("freeze_owner", p.freeze_owner);
  f.read("convert", p.convert);
  f.read("convert_maildir", p.convert_maildir);
  f.read("converted_folders", p.converted_folders);
  if (const Json* stats = f.find("final_pass")) {
    if (stats->is_object()) p.final_pass = parse_pass_stats(*stats, "final_pass", dropped);
    else f.ignore("final_pass");
  }
  if (const Json* report = f.find("verify")) {
    if (report->is_object()) p.verify = parse_verify_report(*report, "verify", dropped);
    else f.ignore("verify");
  }
  f.read("doveadm_mailboxes_compared", p.doveadm_mailboxes_compared);
  f.read("doveadm_messages_compared", p.doveadm_messages_compared);
  f.read("renamed", p.renamed);
  f.read("swept", p.swept);
  f.read("purge_swept", p.purge_swept);
  f.read("quota_recalc", p.quota_recalc);
  f.read("quota_recalc_error", p.quota_recalc_error);
  f.read("quota_storage_kib", p.quota_storage_kib);
  f.read("quota_messages", p.quota_messages);
  if (const Json* kind = f.find("kind")) {
    if (kind->is_string() && kind->get_ref<const std::string&>() == "director") {
      DirectorProgress d;
      f.read("storage_group", d.storage_group);
      f.read("from_host", d.from_host);
      f.read("to_host", d.to_host);
      f.read("director_before", d.before);
      f.read("director_hashed", d.hashed);
      f.read("director_moved", d.moved);
      f.read("director_move_ms", d.move_ms);
      p.director = std::move(d);
    } else {
      f.ignore("kind");
    }
  }

  if (ignored) ignored->insert(ignored->end(), dropped.begin(), dropped.end());
  return p;
}

}  // namespace mailshard
