// mailshard plan: compute a rebalancing plan (a dry run: nothing moves).
//
// Input: a snapshot folder (--snapshot DIR, the gen_fleet.py format) or the
// live fleet (the inventory). Output: the plan JSON (--output), the CSV that
// ../shared/bench/metrics.py scores (--csv), a report for a person (--report
// FILE.md|FILE.html), a summary on stdout (--json for a machine). The plan is
// stored in the journal under its hash, so a later run executes exactly it.
//
// --snapshot works without a config file: then the [plan] defaults apply and
// nothing is journaled.
//
// mailshard plan approve HASH: marks a journaled plan as reviewed, so the
// nightly rebalance ([rebalance] require_approval) may run it.
// mailshard plan list: the journaled plans, newest first, with their approval.
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "cli/live_plan.h"
#include "core/clock.h"
#include "core/plan.h"
#include "core/snapshot.h"
#include "planners/planner.h"
#include "planners/report.h"
#include "util/fs.h"
#include "util/strings.h"

namespace mailshard::cli {
namespace {

struct PlanOptions {
  std::string snapshot_dir;
  std::string strategy = "balance";
  std::optional<double> band, hard_cap, load_band;
  std::string min_free, max_bytes, max_move_size;
  std::optional<int64_t> max_moves, max_moves_per_server;
  std::optional<int> nights;
  std::vector<std::string> drain;
  // Execution model (estimates and night packing).
  int slots = 4;
  std::string rate = "50MiB";
  double overhead_s = 30;
  double night_hours = 6;
  std::string output, csv, report;
  bool no_journal = false;
  bool replan_check = false;
};

// The config is optional with --snapshot: an explicit -c / $MAILSHARD_CONFIG
// must load, the default path only if it exists.
Result<const Config*> optional_config(Context& ctx, bool required) {
  std::string path = resolve_config_path(ctx.global.config_path, ctx.env);
  bool explicit_path = !ctx.global.config_path.empty() || ctx.env("MAILSHARD_CONFIG").has_value();
  if (!required && !explicit_path && ::access(path.c_str(), F_OK) != 0) return static_cast<const Config*>(nullptr);
  return ctx.config();
}

Result<int64_t> bytes_option(const std::string& text, const char* flag) {
  auto r = parse_bytes(text);
  if (!r.ok()) return Error::invalid(fmt::format("{}: {}", flag, r.error().message()));
  if (*r < 0) return Error::invalid(fmt::format("{}: must not be negative", flag));
  return *r;
}

Result<Constraints> build_constraints(const PlanOptions& o, const Config* cfg, const Snapshot& snap) {
  Constraints c = cfg ? constraints_from_config(*cfg) : Constraints{};
  c.strategy = o.strategy;
  if (o.band) c.band = *o.band;
  if (o.hard_cap) c.hard_cap = *o.hard_cap;
  if (o.load_band) c.load_band = *o.load_band;
  if (!o.min_free.empty()) c.min_free_bytes = MS_TRY(bytes_option(o.min_free, "--min-free"));
  if (!o.max_bytes.empty()) c.max_bytes = MS_TRY(bytes_option(o.max_bytes, "--max-bytes"));
  if (!o.max_move_size.empty()) c.max_move_bytes = MS_TRY(bytes_option(o.max_move_size, "--max-move-size"));
  if (o.max_moves) c.max_moves = *o.max_moves;
  if (o.max_moves_per_server) c.max_moves_per_server = *o.max_moves_per_server;
  if (o.nights) c.nights = *o.nights;
  c.execution.slots_per_server = o.slots;
  c.execution.rate_bytes_per_s = static_cast<double>(MS_TRY(bytes_option(o.rate, "--rate")));
  c.execution.overhead_s = o.overhead_s;
  c.execution.night_hours = o.night_hours;
  for (const auto& name : o.drain) {
    int32_t id = MS_TRY_CTX(planner::find_server(snap, name), "--drain");
    if (std::find(c.drain.begin(), c.drain.end(), id) == c.drain.end()) c.drain.push_back(id);
  }
  return c;
}

// Output files are written atomically (a reader never sees half a plan) but
// not fsynced: they are reports, the durable copy of a plan is the journal's,
// and an fsync can cost more than planning a 100k-user fleet.
Status write_output(const std::string& path, const std::string& text, const char* what, FileAccess access) {
  MS_CHECK_CTX(write_file_atomic(path, text, access, FileSync::kNoSync), what);
  spdlog::info("wrote {} to {}", what, path);
  return {};
}

void print_human(const Plan& p, const std::string& hash) {
  fmt::print("plan {} (strategy {}): {} moves, {}", hash, p.strategy, p.estimate.moves, human_bytes(p.estimate.bytes));
  if (p.bounds.lb_bytes > 0)
    fmt::print(", {:.3f} x LB bytes", static_cast<double>(p.estimate.bytes) / static_cast<double>(p.bounds.lb_bytes));
  if (p.bounds.lb_moves > 0)
    fmt::print(", {:.2f} x LB moves", static_cast<double>(p.estimate.moves) / static_cast<double>(p.bounds.lb_moves));
  fmt::print("\n");
  fmt::print("estimated {:.1f} h in plan order ({} night{}; lower bound {:.1f} h)\n", p.estimate.makespan_s / 3600,
             p.estimate.nights, p.estimate.nights == 1 ? "" : "s", p.bounds.t_lb_s / 3600);
  for (const auto& c : p.classes)
    fmt::print("class {}: {} servers out of band {} -> {}, max-mean {:.2f} -> {:.2f} pp, load max/mean {:.2f} -> {:.2f}\n",
               c.name, c.servers, c.out_of_band_before, c.out_of_band_after, 100 * c.max_minus_mean_before,
               100 * c.max_minus_mean_after, c.load_max_over_mean_before, c.load_max_over_mean_after);
  if (p.partial) {
    fmt::print("PARTIAL plan:\n");
    for (const auto& r : p.partial_reasons) fmt::print("  - {}\n", r);
  }
  for (const auto& w : p.warnings) fmt::print("warning: {}\n", w);
}

// A plan run allocates and frees arrays of megabytes phase after phase
// (index, selection, moves, then the output texts). By default glibc hands
// each freed one back to the kernel, and the next phase faults in fresh
// zeroed pages again (on our VMs a few microseconds per 4 KiB page; a
// seventh of the page faults of a 300k-user run). Keep freed memory for
// reuse instead: the process ends right after the plan.
void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: bigger blocks are still mapped apart
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

Result<int> run_plan(Context& ctx, const PlanOptions& o) {
  keep_freed_memory();
  if (!o.report.empty() && !ends_with(o.report, ".md") && !ends_with(o.report, ".html") && !ends_with(o.report, ".htm"))
    return Error::invalid(fmt::format("--report {}: the file name must end in .md or .html", o.report));
  // Any source of a Snapshot will do; the rest of the command does not care.
  const bool from_snapshot = !o.snapshot_dir.empty();
  Snapshot snap = from_snapshot ? MS_TRY_CTX(read_snapshot(o.snapshot_dir), o.snapshot_dir) : MS_TRY(live_snapshot(ctx));
  const Config* cfg = MS_TRY(optional_config(ctx, !from_snapshot));
  Constraints c = MS_TRY(build_constraints(o, cfg, snap));
  Plan p = MS_TRY(planner::plan(snap, c));
  PlanTexts texts = plan_texts(p, o.output.empty() ? PrettyJson::kNo : PrettyJson::kYes);
  const std::string& hash = texts.hash;
  const FileAccess access = cfg != nullptr ? cfg->security.private_files() : FileAccess();

  if (!o.output.empty()) {
    MS_CHECK(write_output(o.output, texts.pretty_json, "plan JSON", access));
    texts.pretty_json = std::string();  // its memory serves the texts below
  }
  if (!o.csv.empty()) MS_CHECK(write_output(o.csv, planner::render_csv(p), "plan CSV", access));
  if (!o.report.empty())
    MS_CHECK(write_output(o.report, ends_with(o.report, ".md") ? planner::render_markdown(p, hash) : planner::render_html(p, hash),
                          "report", access));

  if (o.no_journal) {
    spdlog::info("plan {} not stored in the journal (--no-journal)", hash);
  } else if (!cfg) {
    spdlog::info("plan {} not stored in the journal: no config file (give one with -c to journal plans)", hash);
  } else {
    Journal* j = MS_TRY(ctx.journal());
    int64_t id = MS_TRY(journal_plan(*j, p, hash));
    spdlog::info("plan {} stored in the journal as plan {}", hash, id);
  }

  std::string summary = planner::render_summary(p, hash);
  if (o.replan_check) {
    // Hysteresis check: plan again on the fleet as this plan leaves it.
    Plan again = MS_TRY(planner::plan(planner::apply_plan(snap, p), c));
    auto j = nlohmann::ordered_json::parse(summary);
    j["replan_moves"] = again.estimate.moves;
    j["replan_bytes"] = again.estimate.bytes;
    summary = j.dump(2) + "\n";
    if (!ctx.global.json)
      fmt::print("re-plan after applying this plan: {} moves, {}\n", again.estimate.moves, human_bytes(again.estimate.bytes));
  }
  if (ctx.global.json)
    fmt::print("{}", summary);
  else
    print_human(p, hash);
  return kExitOk;
}

// Who approves: the person behind sudo, else the login, else the uid.
std::string approver(const Context& ctx) {
  for (const char* var : {"SUDO_USER", "USER"})
    if (auto v = ctx.env(var); v && !v->empty()) return *v;
  return fmt::format("uid {}", ::getuid());
}

std::string approval_text(const PlanRecord& p) {
  if (p.approved_at_ms == 0) return "no";
  return fmt::format("{} by {}", format_time_ms(p.approved_at_ms), printable(p.approved_by, 64));
}

nlohmann::ordered_json plan_record_json(const PlanRecord& p) {
  auto time_or_null = [](int64_t ms) { return ms ? nlohmann::ordered_json(format_time_ms(ms)) : nlohmann::ordered_json(); };
  return {{"hash", p.hash},
          {"created_at", time_or_null(p.created_at_ms)},
          {"strategy", p.strategy},
          {"moves", p.moves},
          {"status", p.status},
          {"approved_at", time_or_null(p.approved_at_ms)},
          {"approved_by", p.approved_at_ms ? nlohmann::ordered_json(p.approved_by) : nlohmann::ordered_json()}};
}

Result<int> run_approve(Context& ctx, std::string hash) {
  for (char& ch : hash) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  // Hex only: the journal matches a prefix with LIKE, where '%' and '_' are wildcards.
  if (hash.size() < 8 || hash.find_first_not_of("0123456789abcdef") != std::string::npos)
    return Error::invalid(
        fmt::format("plan approve: '{}' is not a plan hash (give it, or a unique prefix of at least 8 hex digits)",
                    printable(hash, 80)));
  Journal* j = MS_TRY(ctx.journal());
  auto found = j->find_plan(hash);
  // An unknown hash is bad input (exit 2), like an unknown user.
  if (!found.ok() && found.error().code() == ErrorCode::kNotFound)
    return Error::invalid(fmt::format("plan approve: {}", found.error().message()));
  PlanRecord before = MS_TRY_CTX(std::move(found), "plan approve");
  MS_CHECK_CTX(j->approve_plan(before.id, approver(ctx)), "plan approve");
  PlanRecord p = MS_TRY_CTX(j->find_plan(before.hash), "plan approve");
  if (ctx.global.json) {
    auto out = plan_record_json(p);
    out["already_approved"] = before.approved_at_ms != 0;
    fmt::print("{}\n", out.dump(2));
  } else if (before.approved_at_ms != 0) {
    fmt::print("plan {} was already approved: {} ({} moves, created {})\n", p.hash, approval_text(p), p.moves,
               format_time_ms(p.created_at_ms));
  } else {
    fmt::print("approved plan {} ({} moves, created {})\n", p.hash, p.moves, format_time_ms(p.created_at_ms));
  }
  return kExitOk;
}

Result<int> run_list(Context& ctx, int limit) {
  if (limit < 0) return Error::invalid(fmt::format("plan list: --limit must not be negative, got {}", limit));
  Journal* j = MS_TRY(ctx.journal());
  std::vector<PlanRecord> plans = MS_TRY_CTX(j->list_plans(limit), "plan list");
  if (ctx.global.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& p : plans) out.push_back(plan_record_json(p));
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  if (plans.empty()) {
    fmt::print("no plans in the journal\n");
    return kExitOk;
  }
  fmt::print("{:<32}  {:<24}  {:<8} {:>6}  {:<9}  {}\n", "HASH", "CREATED", "STRATEGY", "MOVES", "STATUS", "APPROVED");
  for (const auto& p : plans)
    fmt::print("{:<32}  {:<24}  {:<8} {:>6}  {:<9}  {}\n", p.hash, format_time_ms(p.created_at_ms),
               printable(p.strategy, 8), p.moves, printable(p.status, 9), approval_text(p));
  return kExitOk;
}

// Options of `plan` itself given with `plan approve` or `plan list` would be
// ignored: refuse them instead. (CLI11 lets a child's unknown option fall
// through to its parent.)
Status no_plan_options(const CLI::App& plan, const CLI::App& sub) {
  for (const CLI::Option* opt : plan.get_options())
    if (opt->count() > 0 && opt != plan.get_help_ptr())
      return Error::invalid(fmt::format("plan {}: {} is an option of 'mailshard plan', not of 'plan {}'", sub.get_name(),
                                        opt->get_name(), sub.get_name()));
  return {};
}

}  // namespace

Command register_plan(CLI::App& root, Context& ctx) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = root.add_subcommand("plan", "Compute a rebalancing plan (dry run): which users move where, and why");
  std::string names;
  for (const auto& s : planner::strategies()) names += fmt::format("\n  {:<8} {}", s.name, s.summary);
  cmd->add_option("--snapshot", o->snapshot_dir, "plan from a snapshot folder (servers.csv, users.csv) instead of the live fleet");
  cmd->add_option("--strategy", o->strategy, "strategy (default balance):" + names);
  cmd->add_option("--band", o->band, "servers end within class mean +- FRACTION (default [plan] band, else 0.05)");
  cmd->add_option("--hard-cap", o->hard_cap, "no server above this utilisation, ever (default [plan] hard_cap, else 0.85)");
  cmd->add_option("--load-band", o->load_band, "load stays within mean x (1 + FRACTION) (default 0.20)");
  cmd->add_option("--min-free", o->min_free, "bytes always kept free on every server, e.g. 100GiB");
  cmd->add_option("--drain", o->drain, "empty this server (name or id); repeatable")->take_all();
  cmd->add_option("--max-bytes", o->max_bytes, "budget: bytes moved per night, e.g. 20TiB");
  cmd->add_option("--max-moves", o->max_moves, "budget: moves per night");
  cmd->add_option("--max-moves-per-server", o->max_moves_per_server, "budget: moves touching one server per night");
  cmd->add_option("--max-move-size", o->max_move_size, "never move a mailbox larger than this, e.g. 10GiB");
  cmd->add_option("--nights", o->nights, "spread the plan over at most N nights (budgets apply per night; default 1)");
  cmd->add_option("--slots", o->slots, "execution model: concurrent moves per server (default 4)");
  cmd->add_option("--rate", o->rate, "execution model: bytes per second per move (default 50MiB)");
  cmd->add_option("--overhead", o->overhead_s, "execution model: fixed seconds per move (default 30)");
  cmd->add_option("--night-hours", o->night_hours, "execution model: hours in a night's window (default 6)");
  cmd->add_option("--output", o->output, "write the full plan JSON here");
  cmd->add_option("--csv", o->csv, "write user_id,from_server,to_server,size_bytes[,night] here, in execution order");
  cmd->add_option("--report", o->report, "write a report for a person: FILE.md or FILE.html");
  cmd->add_flag("--no-journal", o->no_journal, "do not store the plan in the journal");
  cmd->add_flag("--replan-check", o->replan_check,
                "also plan again on the fleet as the plan leaves it and report what that would move (should be 0)");
  cmd->footer(
      "Nothing moves: this is the dry run. The plan is stored in the journal under its hash (unless --no-journal or\n"
      "there is no config); 'mailshard rebalance' can execute exactly that plan. A partial plan (the goals cannot be\n"
      "reached within the constraints) still exits 0; its reasons are printed and in the JSON ('partial').\n"
      "Exit codes: 0 planned, 1 failure, 2 usage, config or snapshot error.");

  // Subcommands. The dispatcher runs this Command when `plan` was parsed,
  // which it also is when a subcommand was: pick the one that ran here.
  auto approve_hash = std::make_shared<std::string>();
  CLI::App* approve = cmd->add_subcommand("approve", "Approve a journaled plan for the nightly rebalance");
  approve->add_option("HASH", *approve_hash, "the plan's hash, or a unique prefix of at least 8 hex digits")->required();
  approve->footer(
      "Records who approved (sudo's user, else $USER) and when. With [rebalance] require_approval = true the nightly\n"
      "rebalance runs the newest approved plan only. Approving again keeps the first approval.\n"
      "Exit codes: 0 approved, 1 failure, 2 unknown or ambiguous hash, or a config error.");
  auto list_limit = std::make_shared<int>(20);
  CLI::App* list = cmd->add_subcommand("list", "List the journaled plans, newest first, with their approval");
  list->add_option("--limit", *list_limit, "at most this many plans (default 20; 0 = all)");
  return {cmd, [&ctx, o, cmd, approve, approve_hash, list, list_limit]() -> Result<int> {
            if (approve->parsed()) {
              MS_CHECK(no_plan_options(*cmd, *approve));
              return run_approve(ctx, *approve_hash);
            }
            if (list->parsed()) {
              MS_CHECK(no_plan_options(*cmd, *list));
              return run_list(ctx, *list_limit);
            }
            return run_plan(ctx, *o);
          }};
}

}  // namespace mailshard::cli
