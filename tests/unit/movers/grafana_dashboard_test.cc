// examples/grafana/mailshard-rebalance.json reads only metrics that
// render_run_metrics writes, so the dashboard cannot drift from them; and it
// has a panel for each thing a person looks at in the morning.
#include <regex>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "movers/run_metrics.h"
#include "tests/unit/movers/run_fixture.h"
#include "util/fs.h"
#include "util/strings.h"

namespace mailshard {
namespace {

const std::string kDashboard = std::string(MAILSHARD_SOURCE_DIR) + "/examples/grafana/mailshard-rebalance.json";

// Every PromQL text of the dashboard: panel targets (rows nest panels) and
// template variable queries.
void collect_queries(const nlohmann::json& j, std::vector<std::string>& out) {
  if (j.is_object()) {
    for (const auto& [key, v] : j.items()) {
      if ((key == "expr" || key == "definition") && v.is_string()) out.push_back(v.get<std::string>());
      else if (key == "query" && v.is_string() && v.get<std::string>() != "prometheus") out.push_back(v.get<std::string>());
      else collect_queries(v, out);
    }
  } else if (j.is_array()) {
    for (const auto& v : j) collect_queries(v, out);
  }
}

// The sample names render_run_metrics writes (a run with servers, so every
// family has samples; _bucket, _sum and _count included).
std::set<std::string> emitted_names() {
  std::set<std::string> names;
  std::string text = render_run_metrics(testing::run_report(), testing::run_plan(), RunStatus::kOk, testing::kRunStart);
  for (const auto& l : split(text, '\n'))
    if (!l.empty() && l[0] != '#') names.insert(l.substr(0, l.find_first_of("{ ")));
  return names;
}

TEST(GrafanaDashboard, EveryMetricItReadsIsOneTheRunWrites) {
  auto text = read_file(kDashboard);
  ASSERT_TRUE(text.ok()) << text.error().message();
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << kDashboard << " is not JSON";
  EXPECT_GE(j["schemaVersion"].get<int>(), 36);
  EXPECT_EQ(j["__inputs"][0]["name"], "DS_PROMETHEUS");

  std::vector<std::string> queries;
  collect_queries(j, queries);
  ASSERT_FALSE(queries.empty());
  const auto emitted = emitted_names();
  const std::regex name_re("mailshard_[a-zA-Z0-9_:]*");
  std::set<std::string> used;
  for (const auto& q : queries) {
    size_t in_query = 0;
    for (std::sregex_iterator it(q.begin(), q.end(), name_re), end; it != end; ++it, ++in_query) {
      used.insert(it->str());
      EXPECT_TRUE(emitted.count(it->str())) << it->str() << " (in '" << q << "') is not written by render_run_metrics";
    }
    EXPECT_GT(in_query, 0u) << "a query reads no mailshard metric: " << q;
  }
  // A panel for each: status and times, moves, bytes, lockout p95, moves in
  // flight, slots, utilisation, back-off.
  for (const char* name : {"mailshard_rebalance_last_run_status", "mailshard_rebalance_last_run_start_timestamp_seconds",
                           "mailshard_rebalance_last_run_end_timestamp_seconds", "mailshard_rebalance_moves",
                           "mailshard_rebalance_bytes_moved", "mailshard_rebalance_lockout_seconds_bucket",
                           "mailshard_rebalance_moves_in_flight", "mailshard_rebalance_slots",
                           "mailshard_rebalance_server_utilisation", "mailshard_rebalance_backoff_events"})
    EXPECT_TRUE(used.count(name)) << "no panel reads " << name;
  bool p95 = false;
  for (const auto& q : queries) p95 |= q.find("histogram_quantile(0.95") != std::string::npos;
  EXPECT_TRUE(p95);

  // Every panel and target asks the datasource variable.
  for (const auto& p : j["panels"]) {
    EXPECT_EQ(p["datasource"]["uid"], "${DS_PROMETHEUS}") << p["title"];
    for (const auto& t : p["targets"]) EXPECT_EQ(t["datasource"]["uid"], "${DS_PROMETHEUS}") << p["title"];
  }
}

}  // namespace
}  // namespace mailshard
