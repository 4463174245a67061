// The canonical plan JSON (core/plan.h): stable text, parseable back to the
// same plan, names with awkward bytes included.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/plan.h"
#include "util/hash.h"

namespace mailshard {
namespace {

Plan small_plan() {
  Plan p;
  p.strategy = "balance";
  p.snapshot_users = 10;
  p.snapshot_servers = 3;
  p.servers.resize(3);
  for (int32_t i = 0; i < 3; ++i) p.servers[static_cast<size_t>(i)].id = i;
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

// plan_to_pretty_json is defined as the canonical text parsed and dumped
// again (indent 1, the hash added); it writes those bytes without the parse.
std::string pretty_by_reparsing(const Plan& p, const std::string& hash) {
  auto doc = nlohmann::json::parse(plan_to_json(p));
  doc["plan_hash"] = hash;
  return doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

TEST(PlanJson, PrettyIsTheCanonicalTextParsedAndDumpedAgain) {
  Plan p = small_plan();
  EXPECT_EQ(plan_to_pretty_json(p, "abc"), pretty_by_reparsing(p, "abc"));
  // Numbers whose text changes on the way through a parse: integral doubles
  // (fmt writes "2", which reads back as an integer), -0, tiny, huge, and
  // values where two shortest-text algorithms may disagree.
  const double values[] = {0.0,     -0.0,    2.0,   1e-5,    1e15,  1e16,   123456.789, 0.1 + 0.2, 5e-324,
                           1.7976931348623157e308, 9007199254740993.0, 0.3, 1.0 / 3, 4.35, 1234.5678, 7e22};
  for (double v : values) {
    Plan q = small_plan();
    q.moves[0].activity = v;
    EXPECT_EQ(plan_to_pretty_json(q, "h"), pretty_by_reparsing(q, "h")) << v;
  }
  // Names nlohmann escapes differently from the canonical writer (\b, \f),
  // DEL, multi-byte UTF-8, a name that looks like the id of another user.
  for (std::string name : {std::string("a\bb\fc\x7f"), std::string("z\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), std::string("12"),
                           std::string("\"moves\": []"), std::string(1, '\0')}) {
    Plan q = small_plan();
    q.moves[1].user_name = name;
    EXPECT_EQ(plan_to_pretty_json(q, "h"), pretty_by_reparsing(q, "h")) << name;
  }
  Plan none = small_plan();
  none.moves.clear();
  EXPECT_EQ(plan_to_pretty_json(none, "h"), pretty_by_reparsing(none, "h"));
  Plan named = small_plan();
  named.servers[1].name = "bad\xffserver";
  named.classes.push_back({});
  named.classes.back().name = "std";
  named.classes.back().mean_util = 1.0;
  named.warnings.push_back("\n \"moves\": []");
  EXPECT_EQ(plan_to_pretty_json(named, "h"), pretty_by_reparsing(named, "h"));
}

TEST(PlanJson, TheHashIsXxh3OfTheCanonicalTextAlsoWhenItIsHashedInPieces) {
  Plan p = small_plan();
  EXPECT_EQ(plan_hash(p), hash_bytes(plan_to_json(p)).hex());
  // Enough moves to cross several of plan_hash's 64 KiB chunks.
  for (int i = 0; i < 5000; ++i)
    p.moves.push_back({100 + i, i % 7 ? "" : "name" + std::to_string(i), i % 3, 2, int64_t{1} << (i % 40), i * 0.37,
                       MoveReason::kSpread, 1 + i % 3});
  EXPECT_EQ(plan_hash(p), hash_bytes(plan_to_json(p)).hex());
  p.moves.clear();
  EXPECT_EQ(plan_hash(p), hash_bytes(plan_to_json(p)).hex());
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

// A plan file is validated completely before anything uses it: wrong JSON
// types (which threw nlohmann::json::type_error, exit 134), integers that do
// not fit (2^40 cut to int32), and indexes outside the plan's servers.
nlohmann::json valid_doc() { return nlohmann::json::parse(plan_to_json(small_plan())); }

std::string error_of(const nlohmann::json& doc) {
  auto r = plan_from_json(doc.dump());
  return r.ok() ? "accepted" : r.error().message();
}

TEST(PlanJson, WrongTypesAreOneLineErrors) {
  auto d = valid_doc();
  d["classes"] = "x";
  EXPECT_EQ(error_of(d), "plan JSON: plan: 'classes' has the wrong type (expected an array)");
  d = valid_doc();
  d["moves"][0]["from"] = "0";
  EXPECT_EQ(error_of(d), "plan JSON: moves[0]: 'from' has the wrong type or is out of range");
  d = valid_doc();
  d["moves"][1] = 5;
  EXPECT_EQ(error_of(d), "plan JSON: moves[1]: not an object");
  d = valid_doc();
  d["estimate"]["per_night"] = {1, 2};
  EXPECT_EQ(error_of(d), "plan JSON: estimate.per_night[0]: not an object");
  d = valid_doc();
  d["snapshot"] = nullptr;
  EXPECT_EQ(error_of(d), "plan JSON: plan: 'snapshot' has the wrong type (expected an object)");
  d = valid_doc();
  d["constraints"]["band"] = true;
  EXPECT_EQ(error_of(d), "plan JSON: constraints: 'band' has the wrong type or is out of range");
}

TEST(PlanJson, IntegersThatDoNotFitAreRefusedNotTruncated) {
  auto d = valid_doc();
  d["moves"][0]["to"] = (int64_t{1} << 40) + 2;  // was read as server 2
  EXPECT_EQ(error_of(d), "plan JSON: moves[0]: 'to' has the wrong type or is out of range");
  d = valid_doc();
  d["moves"][0]["night"] = 1.5;
  EXPECT_EQ(error_of(d), "plan JSON: moves[0]: 'night' has the wrong type or is out of range");
  d = valid_doc();
  d["moves"][0]["bytes"] = 18446744073709551615ull;
  EXPECT_EQ(error_of(d), "plan JSON: moves[0]: 'bytes' has the wrong type or is out of range");
}

TEST(PlanJson, IndexesOutsideThePlanAreRefused) {
  auto d = valid_doc();
  d["moves"][0]["from"] = 3;
  EXPECT_EQ(error_of(d), "plan JSON: moves[0]: 'from' must be a server of the plan (0..2)");
  d = valid_doc();
  d["moves"][1]["to"] = -1;
  EXPECT_EQ(error_of(d), "plan JSON: moves[1]: 'to' must be a server of the plan (0..2)");
  d = valid_doc();
  d["moves"][0]["user_id"] = 10;
  EXPECT_EQ(error_of(d), "plan JSON: moves[0]: 'user_id' must be a user of the snapshot (0..9)");
  d = valid_doc();
  d["moves"][0]["bytes"] = -1;
  EXPECT_EQ(error_of(d), "plan JSON: moves[0]: 'bytes' must not be negative");
  d = valid_doc();
  d["snapshot"]["servers"] = 4;
  EXPECT_EQ(error_of(d), "plan JSON: snapshot: 'servers' must equal the number of entries in 'servers' (3)");
  d = valid_doc();
  d["constraints"]["drain"] = {7};
  EXPECT_EQ(error_of(d), "plan JSON: constraints: 'drain' must be a server of the plan (0..2)");
}

TEST(PlanJson, AFileMustCarryItsHash) {
  Plan p = small_plan();
  auto pretty = plan_to_pretty_json(p, plan_hash(p));
  ASSERT_TRUE(plan_from_file_json(pretty).ok());
  auto d = nlohmann::json::parse(pretty);
  d.erase("plan_hash");
  EXPECT_EQ(plan_from_file_json(d.dump()).error().message(),
            "plan JSON: missing 'plan_hash' (a plan file must carry the hash it was reviewed under)");
  d["plan_hash"] = nullptr;
  EXPECT_EQ(plan_from_file_json(d.dump()).error().message(),
            "plan JSON: plan: 'plan_hash' has the wrong type or is out of range");
  d["plan_hash"] = 5;
  EXPECT_EQ(plan_from_file_json(d.dump()).error().message(),
            "plan JSON: plan: 'plan_hash' has the wrong type or is out of range");
  d["plan_hash"] = plan_hash(p);
  d["moves"][0]["bytes"] = 1;
  EXPECT_EQ(plan_from_file_json(d.dump()).error().message(),
            "plan_hash " + plan_hash(p) + " does not match its content (" +
                plan_hash(*plan_from_json(d.dump())) + "); the file was edited");
}

}  // namespace
}  // namespace mailshard
