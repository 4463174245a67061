// MoveProgress: the typed record a move journals as MoveRecord::detail_json.
// What these pin: every field survives the round trip; the records the
// untyped JSON bag of earlier versions wrote (copied from a lab journal) parse
// to the same values and are written back byte for byte; garbage and fields of
// the wrong type give an empty or partial record, never an exception.
#include "movers/move_progress.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailshard {
namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// Every PassStats field set, each to a different value (phases in name order:
// the JSON object that holds them is ordered by name).
PassStats full_stats(int64_t base, PassKind kind) {
  PassStats s;
  s.kind = kind;
  s.audit = true;
  int64_t v = base;
  for (int64_t* f : {&s.dirs, &s.entries, &s.files_copied, &s.bytes_sent, &s.signature_bytes, &s.renames, &s.deletes,
                     &s.dirs_created, &s.dirs_removed, &s.hard_links, &s.symlinks, &s.stat_calls, &s.metadata_checked,
                     &s.metadata_sent, &s.tails, &s.block_patches, &s.deltas, &s.whole, &s.attrs_fixed, &s.adopted,
                     &s.vanished, &s.unstable, &s.audit_mismatches, &s.temps_removed})
    *f = ++v;
  s.phases = {{"copy", 0.25}, {"diff", 1.5e-06}, {"scan", 0.125}};
  s.seconds = 0.375;
  return s;
}

MoveProgress full_progress() {
  MoveProgress p;
  p.src_home = "example.org/alice";
  p.new_home = "/srv/mail/store2/example.org/alice";
  p.empty_source = true;
  p.clock_skew_ms = -7;
  p.quota_limit_kib = 1048576;
  p.quota_message_limit = 5000;
  p.quota_need_bytes = 123456;
  p.quota_need_messages = 42;
  p.precopy = {full_stats(100, PassKind::kWarm), full_stats(200, PassKind::kWarm)};
  p.freeze_requested = true;
  p.freeze_owner = "7.9f3a1c2b";
  p.final_pass = full_stats(300, PassKind::kFrozen);
  p.verify = VerifyReport{144, 32, 12, {"extra on the destination: 'cur/x'"}, 0.5, {}};
  p.doveadm_mailboxes_compared = 12;
  p.renamed = true;
  p.swept = 3;
  p.purge_swept = 2;
  p.quota_recalc = QuotaRecalc::kFailed;
  p.quota_recalc_error = "quota recalc on store2: doveadm quotaRecalc: exit code 75 (temporary failure)";
  p.quota_storage_kib = 121;
  p.quota_messages = 43;
  p.director = DirectorProgress{"nfs1", "127.2.0.1", "127.2.0.2", "127.2.0.1", "127.2.0.2", true, 70};
  return p;
}

MoveProgress parsed(std::string_view text, std::vector<std::string>* ignored = nullptr) {
  auto p = MoveProgress::parse(text, ignored);
  EXPECT_TRUE(p.ok()) << p.error().message();
  return p.ok() ? *p : MoveProgress{};
}

TEST(MoveProgress, EveryFieldSurvivesTheRoundTrip) {
  MoveProgress p = full_progress();
  std::vector<std::string> ignored;
  MoveProgress back = parsed(p.to_json(), &ignored);
  EXPECT_THAT(ignored, IsEmpty());
  EXPECT_EQ(back, p);
  EXPECT_EQ(back.to_json(), p.to_json());
  // Each quota_recalc outcome by name.
  for (QuotaRecalc q : {QuotaRecalc::kDone, QuotaRecalc::kSkipped, QuotaRecalc::kFailed}) {
    MoveProgress r;
    r.quota_recalc = q;
    EXPECT_EQ(nlohmann::json::parse(r.to_json())["quota_recalc"], quota_recalc_name(q));
    EXPECT_EQ(parsed(r.to_json()).quota_recalc, q);
  }
  // Each pass kind by name.
  for (PassKind k : {PassKind::kWarm, PassKind::kFrozen, PassKind::kMetadata}) {
    MoveProgress q;
    q.final_pass = full_stats(0, k);
    EXPECT_EQ(parsed(q.to_json()).final_pass, q.final_pass) << pass_kind_name(k);
  }
}

TEST(MoveProgress, ADirectorMoveIsKindDirectorWithItsBackends) {
  MoveProgress p;
  p.src_home = "example.org/alice";
  p.director = DirectorProgress{"nfs1", "127.2.0.1", "127.2.0.2", std::nullopt, std::nullopt, std::nullopt, std::nullopt};
  auto j = nlohmann::json::parse(p.to_json());
  EXPECT_EQ(j["kind"], "director");
  EXPECT_EQ(j["storage_group"], "nfs1");
  EXPECT_FALSE(j.contains("director_moved")) << "not before the director_move step";
  EXPECT_EQ(parsed(p.to_json()), p);
  std::vector<std::string> ignored;
  EXPECT_FALSE(parsed(R"({"src_home":"x","kind":"copy"})", &ignored).director);
  EXPECT_THAT(ignored, ::testing::ElementsAre("kind"));
}

TEST(MoveProgress, AnEmptyRecordWritesOnlyWhatPreflightAlwaysSets) {
  EXPECT_EQ(MoveProgress{}.to_json(), R"({"empty_source":false,"src_home":""})");
  EXPECT_EQ(parsed(""), MoveProgress{});
  EXPECT_EQ(parsed("{}"), MoveProgress{});
  EXPECT_EQ(parsed(MoveProgress{}.to_json()), MoveProgress{});
}

// A done move and a move rolled back after its freeze, as the untyped bag
// wrote them (moves 28 and 29 of a lab run's journal, before this record).
constexpr std::string_view kDoneMove =
    R"json({"clock_skew_ms":-5,"doveadm_mailboxes_compared":12,"empty_source":false,"final_pass":{"adopted":0,")json"
    R"json(attrs_fixed":0,"audit":false,"audit_mismatches":0,"block_patches":9,"bytes_sent":11452,"deletes":0,")json"
    R"json(deltas":0,"dirs":50,"dirs_created":0,"dirs_removed":0,"entries":144,"files_copied":0,"hard_links":0,)json"
    R"json("kind":"frozen","metadata_checked":55,"metadata_sent":20,"renames":0,"seconds":0.004613123,"seconds_)json"
    R"json(per_phase":{"copy":5.44e-07,"diff":0.000129141,"links+delete":6.06e-07,"metadata":0.003904232,"metad)json"
    R"json(ata_parallel":0.003819632,"namespace":4.963e-06,"scan":0.00035978,"stat":7.49e-07,"sync":0.000212454)json"
    R"json(},"signature_bytes":0,"stat_calls":56,"symlinks":0,"tails":11,"temps_removed":0,"unstable":0,"vanish)json"
    R"json(ed":0,"whole":0},"freeze_requested":true,"precopy":[{"adopted":0,"attrs_fixed":0,"audit":false,"audi)json"
    R"json(t_mismatches":0,"block_patches":0,"bytes_sent":247666,"deletes":0,"deltas":0,"dirs":50,"dirs_created)json"
    R"json(":50,"dirs_removed":0,"entries":144,"files_copied":29,"hard_links":10,"kind":"warm","metadata_checke)json"
    R"json(d":55,"metadata_sent":55,"renames":0,"seconds":0.009038047,"seconds_per_phase":{"copy":0.003738753,")json"
    R"json(diff":8.8803e-05,"links+delete":0.000248696,"metadata":0.002904479,"metadata_parallel":4.1e-07,"name)json"
    R"json(space":0.001186081,"scan":0.000390786,"stat":0.000108317,"sync":0.000371577},"signature_bytes":0,"st)json"
    R"json(at_calls":105,"symlinks":1,"tails":0,"temps_removed":0,"unstable":0,"vanished":0,"whole":55},{"adopt)json"
    R"json(ed":0,"attrs_fixed":0,"audit":true,"audit_mismatches":0,"block_patches":0,"bytes_sent":0,"deletes":0)json"
    R"json(,"deltas":0,"dirs":50,"dirs_created":0,"dirs_removed":0,"entries":144,"files_copied":0,"hard_links":)json"
    R"json(0,"kind":"warm","metadata_checked":55,"metadata_sent":0,"renames":0,"seconds":0.001280868,"seconds_p)json"
    R"json(er_phase":{"audit":0.000509758,"copy":4.74e-07,"diff":0.000117619,"links+delete":2.69e-07,"metadata")json"
    R"json(:2.3253e-05,"metadata_parallel":0.000438409,"namespace":2.711e-06,"scan":0.000617984,"stat":5.02e-07)json"
    R"json(,"sync":5.837e-06},"signature_bytes":0,"stat_calls":95,"symlinks":0,"tails":0,"temps_removed":0,"uns)json"
    R"json(table":0,"vanished":0,"whole":0}],"renamed":true,"src_home":"example.org/user52495","swept":0,"verif)json"
    R"json(y":{"entries_compared":144,"files_hashed":32,"mismatches":[],"seconds":0.000775101,"uidlists_checked)json"
    R"json(":12}})json";
constexpr std::string_view kRolledBackAfterFreeze =
    R"json({"clock_skew_ms":-4,"empty_source":false,"freeze_requested":true,"precopy":[{"adopted":0,"attrs_fixe)json"
    R"json(d":0,"audit":false,"audit_mismatches":0,"block_patches":0,"bytes_sent":413855,"deletes":0,"deltas":0)json"
    R"json(,"dirs":50,"dirs_created":50,"dirs_removed":0,"entries":129,"files_copied":20,"hard_links":7,"kind":)json"
    R"json("warm","metadata_checked":52,"metadata_sent":52,"renames":0,"seconds":0.009795598,"seconds_per_phase)json"
    R"json(":{"copy":0.004202453,"diff":0.00012424,"links+delete":0.000442855,"metadata":0.0029041,"metadata_pa)json"
    R"json(rallel":3.76e-07,"namespace":0.001047277,"scan":0.000532056,"stat":0.000107816,"sync":0.000434024},")json"
    R"json(signature_bytes":0,"stat_calls":87,"symlinks":1,"tails":0,"temps_removed":0,"unstable":0,"vanished":)json"
    R"json(0,"whole":52},{"adopted":0,"attrs_fixed":0,"audit":true,"audit_mismatches":0,"block_patches":0,"byte)json"
    R"json(s_sent":0,"deletes":0,"deltas":0,"dirs":50,"dirs_created":0,"dirs_removed":0,"entries":129,"files_co)json"
    R"json(pied":0,"hard_links":0,"kind":"warm","metadata_checked":52,"metadata_sent":0,"renames":0,"seconds":0)json"
    R"json(.001809482,"seconds_per_phase":{"audit":0.000734296,"copy":9.87e-07,"diff":0.00015249,"links+delete")json"
    R"json(:3.37e-07,"metadata":2.9899e-05,"metadata_parallel":0.000473483,"namespace":3.034e-06,"scan":0.00087)json"
    R"json(5037,"stat":8.5e-07,"sync":9.538e-06},"signature_bytes":0,"stat_calls":80,"symlinks":0,"tails":0,"te)json"
    R"json(mps_removed":0,"unstable":0,"vanished":0,"whole":0}],"src_home":"example.org/user52496"})json";

TEST(MoveProgress, RecordsOfTheUntypedBagParseToTheSameValues) {
  std::vector<std::string> ignored;
  MoveProgress done = parsed(kDoneMove, &ignored);
  EXPECT_THAT(ignored, IsEmpty());
  EXPECT_EQ(done.src_home, "example.org/user52495");
  EXPECT_EQ(done.new_home, std::nullopt);
  EXPECT_FALSE(done.empty_source);
  EXPECT_EQ(done.clock_skew_ms, -5);
  ASSERT_EQ(done.precopy.size(), 2u);
  EXPECT_EQ(done.precopy[0].kind, PassKind::kWarm);
  EXPECT_FALSE(done.precopy[0].audit);
  EXPECT_EQ(done.precopy[0].bytes_sent, 247666);
  EXPECT_EQ(done.precopy[0].files_copied, 29);
  EXPECT_EQ(done.precopy[0].hard_links, 10);
  EXPECT_EQ(done.precopy[0].symlinks, 1);
  EXPECT_EQ(done.precopy[0].whole, 55);
  EXPECT_DOUBLE_EQ(done.precopy[0].seconds, 0.009038047);
  ASSERT_EQ(done.precopy[0].phases.size(), 9u);
  EXPECT_EQ(done.precopy[0].phases.front(), (std::pair<std::string, double>("copy", 0.003738753)));
  EXPECT_TRUE(done.precopy[1].audit);
  EXPECT_EQ(done.precopy[1].stat_calls, 95);
  EXPECT_TRUE(done.freeze_requested);
  ASSERT_TRUE(done.final_pass);
  EXPECT_EQ(done.final_pass->kind, PassKind::kFrozen);
  EXPECT_EQ(done.final_pass->block_patches, 9);
  EXPECT_EQ(done.final_pass->bytes_sent, 11452);
  EXPECT_EQ(done.final_pass->tails, 11);
  ASSERT_TRUE(done.verify);
  EXPECT_EQ(*done.verify, (VerifyReport{144, 32, 12, {}, 0.000775101, {}}));
  EXPECT_EQ(done.doveadm_mailboxes_compared, 12);
  EXPECT_TRUE(done.renamed);
  EXPECT_EQ(done.swept, 0);
  EXPECT_EQ(done.purge_swept, std::nullopt);
  // Written back as it was read: a resumed move keeps its record.
  EXPECT_EQ(done.to_json(), kDoneMove);

  MoveProgress rolled_back = parsed(kRolledBackAfterFreeze, &ignored);
  EXPECT_THAT(ignored, IsEmpty());
  EXPECT_EQ(rolled_back.src_home, "example.org/user52496");
  EXPECT_TRUE(rolled_back.freeze_requested);
  EXPECT_EQ(rolled_back.precopy.size(), 2u);
  EXPECT_FALSE(rolled_back.final_pass || rolled_back.verify || rolled_back.swept);
  EXPECT_FALSE(rolled_back.renamed);
  EXPECT_EQ(rolled_back.to_json(), kRolledBackAfterFreeze);
}

TEST(MoveProgress, KeysOnlyOtherPathsWroteParseToo) {
  // new_home (absolute homes) and purge_swept (purge), with a key an older
  // version wrote and this one ignores (late_at_flip) and a field written as
  // an unsigned size (doveadm_mailboxes_compared).
  nlohmann::json old = {{"src_home", "example.org/bob"},
                        {"new_home", "/srv/store2/example.org/bob"},
                        {"empty_source", true},
                        {"clock_skew_ms", 3},
                        {"late_at_flip", 4},
                        {"doveadm_mailboxes_compared", size_t{7}},
                        {"swept", 5},
                        {"purge_swept", 1}};
  std::vector<std::string> ignored;
  MoveProgress p = parsed(old.dump(), &ignored);
  EXPECT_THAT(ignored, IsEmpty());
  EXPECT_EQ(p.src_home, "example.org/bob");
  EXPECT_EQ(p.new_home, "/srv/store2/example.org/bob");
  EXPECT_TRUE(p.empty_source);
  EXPECT_EQ(p.clock_skew_ms, 3);
  EXPECT_EQ(p.doveadm_mailboxes_compared, 7);
  EXPECT_EQ(p.swept, 5);
  EXPECT_EQ(p.purge_swept, 1);
}

TEST(MoveProgress, TextThatIsNoJsonObjectIsCorrupt) {
  for (std::string_view bad : {"not json", "{\"src_home\":", "[1,2]", "\"x\"", "42", "null", "{}{}"}) {
    auto p = MoveProgress::parse(bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.error().code(), ErrorCode::kCorrupt) << bad;
  }
}

TEST(MoveProgress, AFieldOfTheWrongTypeIsLeftUnsetAndNamed) {
  struct Case {
    const char* json;
    std::vector<std::string> ignored;
  };
  const Case cases[] = {
      {R"({"src_home":5})", {"src_home"}},
      {R"({"src_home":null})", {"src_home"}},
      {R"({"new_home":["a"]})", {"new_home"}},
      {R"({"empty_source":"yes"})", {"empty_source"}},
      {R"({"empty_source":1})", {"empty_source"}},
      {R"({"clock_skew_ms":1.5})", {"clock_skew_ms"}},
      {R"({"clock_skew_ms":"-5"})", {"clock_skew_ms"}},
      {R"({"clock_skew_ms":18446744073709551615})", {"clock_skew_ms"}},
      {R"({"precopy":{}})", {"precopy"}},
      {R"({"precopy":[1,{"kind":"warm"}]})", {"precopy[0]"}},
      {R"({"precopy":[{"kind":"tepid","bytes_sent":"9","seconds":true}]})",
       {"precopy[0].kind", "precopy[0].bytes_sent", "precopy[0].seconds"}},
      {R"({"freeze_requested":"true"})", {"freeze_requested"}},
      {R"({"quota_recalc":"maybe"})", {"quota_recalc"}},
      {R"({"quota_recalc":true,"quota_limit_kib":"1G"})", {"quota_limit_kib", "quota_recalc"}},
      {R"({"final_pass":7})", {"final_pass"}},
      {R"({"final_pass":{"seconds_per_phase":[1]}})", {"final_pass.seconds_per_phase"}},
      {R"({"final_pass":{"seconds_per_phase":{"scan":"fast"}}})", {"final_pass.seconds_per_phase.scan"}},
      {R"({"verify":"ok"})", {"verify"}},
      {R"({"verify":{"mismatches":"none","files_hashed":-1.0}})", {"verify.files_hashed", "verify.mismatches"}},
      {R"({"verify":{"mismatches":["a",2]}})", {"verify.mismatches"}},
      {R"({"doveadm_mailboxes_compared":false})", {"doveadm_mailboxes_compared"}},
      {R"({"renamed":0})", {"renamed"}},
      {R"({"swept":"3"})", {"swept"}},
      {R"({"purge_swept":{}})", {"purge_swept"}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> ignored;
    auto p = MoveProgress::parse(c.json, &ignored);
    ASSERT_TRUE(p.ok()) << c.json;
    EXPECT_EQ(ignored, c.ignored) << c.json;
    // What was ignored is at its default; the record is still written.
    EXPECT_NO_THROW((void)p->to_json()) << c.json;
  }
}

TEST(MoveProgress, TheReadableFieldsOfAPartlyWrongRecordAreKept) {
  std::vector<std::string> ignored;
  MoveProgress p = parsed(
      R"({"src_home":"example.org/carol","freeze_requested":"yes","renamed":true,"swept":2,
          "precopy":[{"kind":"warm","bytes_sent":10},"x",{"kind":"warm","bytes_sent":-1.5}],
          "final_pass":{"kind":"frozen","bytes_sent":5,"deltas":"many"}})",
      &ignored);
  EXPECT_THAT(ignored, UnorderedElementsAre("freeze_requested", "precopy[1]", "precopy[2].bytes_sent",
                                            "final_pass.deltas"));
  EXPECT_EQ(p.src_home, "example.org/carol");
  EXPECT_FALSE(p.freeze_requested);
  EXPECT_TRUE(p.renamed);
  EXPECT_EQ(p.swept, 2);
  ASSERT_EQ(p.precopy.size(), 2u);
  EXPECT_EQ(p.precopy[0].bytes_sent, 10);
  EXPECT_EQ(p.precopy[1].bytes_sent, 0);
  ASSERT_TRUE(p.final_pass);
  EXPECT_EQ(p.final_pass->bytes_sent, 5);
  EXPECT_EQ(p.final_pass->deltas, 0);
}

TEST(MoveProgress, IgnoredIsOptional) {
  auto p = MoveProgress::parse(R"({"renamed":"no","src_home":"x"})");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->src_home, "x");
  EXPECT_FALSE(p->renamed);
}

}  // namespace
}  // namespace mailshard
