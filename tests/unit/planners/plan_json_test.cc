// The canonical plan JSON (core/plan.h): stable text, parseable back to the
// same plan, names with awkward bytes included.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/plan.h"

namespace mailshard {
namespace {

Plan small_plan() {
  Plan p;
  p.strategy = "balance";
  p.moves.push_back({7, "", 0, 2, 1 << 20, 0.5, MoveReason::kOverBand, 1});
  p.moves.push_back({9, "o'brien \"the\" \\ name\t\x01", 1, 2, 3, 1e-5, MoveReason::kUnderBand, 2});
  p.warnings = {"a warning"};
  return p;
}

TEST(PlanJson, CanonicalTextIsStableAndParsesBack) {
  Plan p = small_plan();
  std::string text = plan_to_json(p);
  EXPECT_EQ(text, plan_to_json(p));
  auto doc = nlohmann::json::parse(text);  // valid JSON
  EXPECT_EQ(doc["moves"][0],
            nlohmann::json::parse(R"({"activity":0.5,"bytes":1048576,"from":0,"night":1,"reason":"over_band","to":2,)"
                                  R"("user":"7","user_id":7})"));
  EXPECT_EQ(doc["moves"][1]["user"], "o'brien \"the\" \\ name\t\x01");
  EXPECT_EQ(doc["moves"][1]["activity"], 1e-5);
  auto back = plan_from_json(text);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->moves[1].user_name, p.moves[1].user_name);
  EXPECT_EQ(back->moves[1].night, 2);
  EXPECT_EQ(plan_to_json(*back), text);
  EXPECT_EQ(plan_hash(*back), plan_hash(p));
  EXPECT_EQ(plan_hash(p).size(), 32u);
}

TEST(PlanJson, PrettyCarriesTheHashAndInvalidUtf8DoesNotThrow) {
  Plan p = small_plan();
  auto pretty = nlohmann::json::parse(plan_to_pretty_json(p, plan_hash(p)));
  EXPECT_EQ(pretty["plan_hash"], plan_hash(p));
  p.moves[0].user_name = "bad\xff\xfename";
  std::string text = plan_to_json(p);
  std::string out = plan_to_pretty_json(p, "h");
  EXPECT_EQ(out.rfind("{\"plan_hash\":\"h\",", 0), 0u);
  EXPECT_NE(text.find("bad\xff\xfename"), std::string::npos);
}

TEST(PlanJson, BadDocumentsNameTheField) {
  auto r = plan_from_json("{\"format\":\"mailshard-plan/1\"}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "plan JSON: plan: missing 'strategy'");
  auto v = plan_from_json("{\"format\":\"other/9\"}");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().message(), "plan JSON: unsupported format 'other/9' (expected mailshard-plan/1)");
  EXPECT_EQ(plan_from_json("[1,2]").error().message(), "plan JSON: not a JSON object");
}

}  // namespace
}  // namespace mailshard
