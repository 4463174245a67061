// mailshard rebalance: the nightly job.
//
// Which plan: --plan latest (the newest approved plan in the journal, or the
// newest plan when [rebalance] require_approval is off), --plan FILE (a
// --output file of `mailshard plan`, hash checked), --plan HASH, or no --plan:
// plan the live fleet now with the [plan] settings (full automation). A plan
// whose snapshot is older than [rebalance] max_plan_age, or not approved when
// approval is required, is refused (exit 1).
//
// Then the plan's night runs through the executor: per-server slots, back-off
// on load, servers that keep failing skipped, each move re-checked against the
// plan when it starts. One run at a time (a lease in the journal), or with
// --shared several controllers on one journal run one plan's night together:
// each claims the next move whose servers have free slots, counted in the
// journal over every controller, and finishes the moves of a controller that
// died (the shared side of the same lease: a shared night and a plain
// rebalance exclude each other).
// The deadline (a duration or a clock time), SIGTERM/SIGINT and `rebalance
// --stop` stop moves from starting; the hard deadline or a second signal rolls
// back the moves that have not flipped. At the end: the run summary (text or
// --json), the report page (--report), the Prometheus textfile (--metrics-file,
// also written during the run), the run's record in the journal.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "cli/live_plan.h"
#include "cli/load_sampler.h"
#include "cli/move_wiring.h"
#include "core/snapshot.h"
#include "directory/ldap_directory.h"
#include "inventory/metrics_sources.h"
#include "movers/plan_executor.h"
#include "movers/run_metrics.h"
#include "movers/run_report.h"
#include "planners/planner.h"
#include "util/duration.h"
#include "util/fs.h"
#include "util/interrupt.h"
#include "util/progress.h"
#include "util/strings.h"

namespace mailshard::cli {
namespace {

struct Args {
  std::string plan;
  std::string snapshot;
  std::string strategy = "balance";
  int night = 1;
  std::string deadline, hard_deadline;
  int max_parallel = 0;
  bool dry_run = false;
  bool stop = false;
  bool shared = false;
  std::string report, metrics_file;
};

bool looks_like_hash(const std::string& s) {
  if (s.size() < 8 || s.size() > 32) return false;
  for (char ch : s)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  return true;
}

struct LoadedPlan {
  Plan plan;
  std::string hash;
  int64_t id = 0;             // journal id; 0 when not stored (dry run)
  int64_t approved_at_ms = 0;
  std::string source;         // for messages: "plan 3f2a... (latest approved)"
};

Result<Plan> plan_from_record(const PlanRecord& rec) {
  Plan p = MS_TRY_CTX(plan_from_json(rec.plan_json), fmt::format("plan {}", rec.hash));
  // The journal's copy must still be the plan that was reviewed under that hash.
  if (std::string h = plan_hash(p); h != rec.hash)
    return Error::corrupt(fmt::format("plan {}: the journal's copy hashes to {}: it changed since it was stored", rec.hash, h));
  return p;
}

// The plan to execute. Nothing is written on a dry run.
Result<LoadedPlan> load_plan(Context& ctx, const Args& a) {
  const Config* cfg = MS_TRY(ctx.config());
  LoadedPlan out;
  if (a.plan == "latest") {
    Journal* j = MS_TRY(ctx.journal());
    const bool approved = cfg->rebalance.require_approval;
    auto rec = MS_TRY_CTX(j->latest_plan(approved), "journal");
    if (!rec)
      return Error::conflict(approved ? "no approved plan in the journal: review one ('mailshard plan --report') and "
                                        "approve it ('mailshard plan approve HASH')"
                                      : "no plan in the journal: make one with 'mailshard plan'");
    out.plan = MS_TRY(plan_from_record(*rec));
    out.hash = rec->hash;
    out.id = rec->id;
    out.approved_at_ms = rec->approved_at_ms;
    out.source = fmt::format("plan {} (the latest{})", rec->hash, approved ? " approved" : "");
    return out;
  }
  if (a.plan.empty()) {
    // Plan now, as `mailshard plan` would (from a saved snapshot with --snapshot).
    Snapshot snap = a.snapshot.empty() ? MS_TRY(live_snapshot(ctx)) : MS_TRY_CTX(read_snapshot(a.snapshot), a.snapshot);
    Constraints c = constraints_from_config(*cfg);
    c.strategy = a.strategy;
    out.plan = MS_TRY(planner::plan(snap, c));
    out.hash = plan_hash(out.plan);
    out.source = fmt::format("plan {} (made now)", out.hash);
    if (!a.dry_run) {
      Journal* j = MS_TRY(ctx.journal());
      out.id = MS_TRY(journal_plan(*j, out.plan, out.hash));
    }
    return out;
  }
  if (looks_like_hash(a.plan) && ::access(a.plan.c_str(), F_OK) != 0) {
    Journal* j = MS_TRY(ctx.journal());
    PlanRecord rec = MS_TRY(j->find_plan(a.plan));
    out.plan = MS_TRY(plan_from_record(rec));
    out.hash = rec.hash;
    out.id = rec.id;
    out.approved_at_ms = rec.approved_at_ms;
    out.source = fmt::format("plan {}", rec.hash);
    return out;
  }
  std::string text = MS_TRY_CTX(read_file(a.plan), "--plan");
  // "Execute exactly what was reviewed": the file carries its hash, and all of
  // it is checked before anything (the dry-run listing, the journal) uses it.
  out.plan = MS_TRY_CTX(plan_from_file_json(text), fmt::format("--plan {}", a.plan));
  out.hash = plan_hash(out.plan);
  out.source = fmt::format("plan {} ({})", out.hash, a.plan);
  if (!a.dry_run) {
    Journal* j = MS_TRY(ctx.journal());
    out.id = MS_TRY(journal_plan(*j, out.plan, out.hash));
    auto rec = MS_TRY(j->find_plan(out.hash));
    out.approved_at_ms = rec.approved_at_ms;
  }
  return out;
}

// The checks a plan passes before any move of it runs.
Status check_plan(const Config& cfg, const LoadedPlan& lp, const Args& a, int64_t now_ms) {
  for (const auto& s : lp.plan.servers)
    if (!s.name.empty() && !cfg.find_server(s.name))
      return Error::invalid(fmt::format("{}: server '{}' is not in the config", lp.source, printable(s.name)));
  if (cfg.rebalance.require_approval && !a.plan.empty() && lp.approved_at_ms == 0 && !a.dry_run)
    return Error::conflict(fmt::format("{} is not approved and [rebalance] require_approval is on: review it and run "
                                       "'mailshard plan approve {}'",
                                       lp.source, lp.hash));
  if (lp.plan.snapshot_taken_at_ms > 0 && cfg.rebalance.max_plan_age_ms > 0) {
    int64_t age = now_ms - lp.plan.snapshot_taken_at_ms;
    if (age > cfg.rebalance.max_plan_age_ms)
      return Error::conflict(fmt::format("{} is stale: its fleet snapshot is {} old (taken {}), more than "
                                         "[rebalance] max_plan_age {}; make a new plan",
                                         lp.source, format_duration_ms(age), format_time_ms(lp.plan.snapshot_taken_at_ms),
                                         format_duration_ms(cfg.rebalance.max_plan_age_ms)));
  }
  return {};
}

// `rebalance --stop`: asks the running night to start no more moves.
Result<int> request_stop(Context& ctx) {
  Journal* j = MS_TRY(ctx.journal());
  // A run that holds the lease is running; without a holder, "running" rows
  // are crashed runs.
  auto lease = j->lease_run("rebalance");
  if (lease.ok()) {
    fmt::print(stderr, "mailshard: no rebalance is running\n");
    return kExitFailure;
  }
  if (lease.error().code() != ErrorCode::kConflict) return std::move(lease).error();
  // Every running run: the controllers of a shared night all stop. (A
  // "running" row of a crashed run takes the request harmlessly.)
  auto runs = MS_TRY(j->running_runs("rebalance"));
  for (const auto& r : runs) {
    MS_CHECK(j->request_stop(r.id));
    fmt::print("asked rebalance run {} to start no more moves ({}); running moves finish\n", r.id,
               lease.error().message());
  }
  if (!runs.empty()) return kExitOk;
  return Error::conflict(fmt::format("{}, but its run is not in the journal", lease.error().message()));
}

int dry_run(const LoadedPlan& lp, const Args& a, bool json) {
  nlohmann::json moves = nlohmann::json::array();
  int n = 0;
  for (const auto& m : lp.plan.moves) {
    if (a.night != 0 && m.night != a.night) continue;
    ++n;
    std::string user = m.user_name.empty() ? std::to_string(m.user) : m.user_name;
    const std::string& from = lp.plan.servers[m.from].name;
    const std::string& to = lp.plan.servers[m.to].name;
    if (json)
      moves.push_back({{"user", user}, {"from", from}, {"to", to}, {"bytes", m.bytes}, {"reason", move_reason_name(m.reason)}});
    else
      fmt::print("would move {} {} -> {} ({}, {})\n", printable(user), from, to, human_bytes(m.bytes), move_reason_name(m.reason));
  }
  if (json)
    fmt::print("{}\n", nlohmann::json{{"plan", lp.hash}, {"night", a.night}, {"dry_run", true}, {"moves", moves}}.dump(2));
  else
    fmt::print("dry run: {} night {}: {} moves; nothing was changed\n", lp.source, a.night, n);
  return kExitOk;
}

Status write_report(const std::string& path, const Plan& plan, const std::string& hash, const ExecutionReport& rep) {
  std::string page = ends_with(path, ".md") ? render_run_markdown(plan, hash, rep) : render_run_html(plan, hash, rep);
  MS_CHECK_CTX(write_file_atomic(path, page, 0644, FileSync::kNoSync), "--report");
  spdlog::info("wrote the run report to {}", path);
  return {};
}

Result<int> run_rebalance(Context& ctx, const Args& a) {
  const Config* cfg = MS_TRY(ctx.config());
  if (a.stop) return request_stop(ctx);
  if (a.max_parallel < 0) return Error::invalid("--max-parallel must be at least 1");
  if (!a.report.empty() && !ends_with(a.report, ".md") && !ends_with(a.report, ".html") && !ends_with(a.report, ".htm"))
    return Error::invalid(fmt::format("--report {}: the file name must end in .md or .html", a.report));
  if (!a.snapshot.empty() && !a.plan.empty()) return Error::invalid("--snapshot plans now: it cannot go with --plan");
  if (a.shared && a.plan.empty())
    return Error::invalid("--shared runs one stored plan on every controller: give --plan (latest, a hash or a file)");
  const int64_t now = ctx.clock().now_ms();
  int64_t deadline = 0, hard_deadline = 0;
  if (!a.deadline.empty()) deadline = MS_TRY_CTX(parse_deadline_ms(a.deadline, now), "--deadline");
  if (!a.hard_deadline.empty()) hard_deadline = MS_TRY_CTX(parse_deadline_ms(a.hard_deadline, now), "--hard-deadline");
  if (hard_deadline > 0 && deadline > 0 && hard_deadline < deadline)
    return Error::invalid(fmt::format("--hard-deadline {} is before --deadline {}", format_time_ms(hard_deadline),
                                      format_time_ms(deadline)));
  const std::string metrics_file = a.metrics_file.empty() ? cfg->rebalance.metrics_file : a.metrics_file;
  if (!metrics_file.empty() && !a.dry_run) {
    // An unwritable metrics directory is found now, not after the night.
    std::string dir = metrics_file.substr(0, metrics_file.rfind('/') == std::string::npos ? 0 : metrics_file.rfind('/'));
    if (::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0)
      return Error::from_errno(errno, fmt::format("--metrics-file {}: cannot write in '{}'", metrics_file, dir));
  }

  // A dry run writes nothing: no lease, no journal (unless --plan latest or
  // a hash has to be read from it).
  if (a.dry_run) {
    LoadedPlan lp = MS_TRY(load_plan(ctx, a));
    MS_CHECK(check_plan(*cfg, lp, a, now));
    return dry_run(lp, a, ctx.global.json);
  }
  Journal* j = MS_TRY(ctx.journal());
  // A shared night's controllers hold the lease's shared side together; a
  // plain rebalance holds it alone.
  std::unique_ptr<RunLease> lease =
      a.shared ? MS_TRY_CTX(j->lease_run_shared("rebalance"), "--shared") : MS_TRY(j->lease_run("rebalance"));
  LoadedPlan lp = MS_TRY(load_plan(ctx, a));
  MS_CHECK(check_plan(*cfg, lp, a, now));

  int64_t run = MS_TRY(
      j->begin_run("rebalance", nlohmann::json{{"plan", lp.hash}, {"night", a.night}, {"shared", a.shared}}.dump()));
  MS_CHECK(j->set_plan_status(lp.id, "executing"));
  spdlog::info("rebalance run {}: {} night {}{}", run, lp.source, a.night,
               deadline ? ", deadline " + format_time_ms(deadline) : "");

  ExecutionOptions eo;
  eo.night = a.night;
  eo.deadline_ms = deadline;
  eo.hard_deadline_ms = hard_deadline;
  eo.max_parallel = a.max_parallel;
  eo.plan_id = lp.id;
  eo.shared = a.shared;
  if (a.shared) {
    // Moves ending in the other controllers wake this one's waiting moves
    // (PostgreSQL); without it they wait for the retry interval.
    auto watcher = j->watch_move_ends();
    if (watcher.ok())
      eo.move_ends = std::move(*watcher);
    else if (watcher.error().code() != ErrorCode::kUnsupported)
      spdlog::warn("rebalance --shared: {}; waiting moves are tried again every {} ms", watcher.error().message(),
                   eo.shared_retry_ms);
  }
  for (const auto& s : cfg->servers) eo.slots[s.name] = {s.max_moves_out, s.max_moves_in};
  eo.move.refuse_frozen = true;
  eo.move.max_size_drift = cfg->rebalance.max_size_drift;
  eo.move.max_dest_util = cfg->plan.hard_cap;
  eo.sample_interval_ms = cfg->rebalance.sample_interval_ms;
  eo.max_load_per_cpu = cfg->rebalance.max_load_per_cpu;
  eo.max_disk_busy = cfg->rebalance.max_disk_busy;
  eo.max_server_failures = cfg->rebalance.max_server_failures;
  eo.threads = cfg->rebalance.threads;
  ServerMetricsSource metrics(cfg->inventory.metrics_timeout_ms, 0, ctx.clock());
  FleetLoadSampler sampler(*cfg, metrics, ctx.clock());
  eo.sampler = [&](const std::string& server) { return sampler.sample(server); };
  // After a failed move: is LDAP still there? (A fresh connection: this runs
  // on any worker thread.) If not, the night stops instead of blaming servers.
  eo.health = [cfg]() -> Status {
    auto d = LdapDirectory::connect(*cfg);
    if (!d.ok()) return std::move(d).error();
    return {};
  };

  // Stops: signals (first soft, second hard), `rebalance --stop` (the
  // journal, looked at every 2 s), the hard deadline (as a second signal).
  set_two_stage_interrupts(true);
  int64_t next_stop_poll = 0;
  bool stop_asked = false, signalled = false, hard_deadline_passed = false;
  eo.stop = [&]() {
    if (interrupted() && !hard_deadline_passed) {
      signalled = true;
      return StopRequest{StopLevel::kHard, "a second SIGTERM or SIGINT"};
    }
    if (soft_stop_requested() && !hard_deadline_passed) {
      signalled = true;
      return StopRequest{StopLevel::kSoft, "SIGTERM or SIGINT"};
    }
    if (!stop_asked && ctx.clock().monotonic_ms() >= next_stop_poll) {
      next_stop_poll = ctx.clock().monotonic_ms() + 2000;
      auto s = j->stop_requested(run);
      stop_asked = s.ok() && *s;
      if (stop_asked) spdlog::info("rebalance run {}: 'rebalance --stop' asked it to start no more moves", run);
    }
    if (stop_asked) return StopRequest{StopLevel::kSoft, "'mailshard rebalance --stop'"};
    return StopRequest{};
  };
  // The hard deadline interrupts the moves as a second signal would (moves
  // that have not flipped roll back); it is not a signal for the exit code.
  eo.on_hard_stop = [&] {
    if (!signalled) hard_deadline_passed = true;
    request_interrupt();
  };
  // Progress: a line on a terminal (silent under cron) every second, the
  // metrics file every 15 s.
  int64_t night_moves = 0;
  for (const auto& m : lp.plan.moves) night_moves += a.night == 0 || m.night == a.night;
  Progress progress("rebalance", night_moves);
  int64_t shown = 0, next_metrics = 0;
  eo.progress_interval_ms = 1000;
  eo.on_progress = [&](const ExecutionReport& r) {
    const int64_t ended = r.done + r.failed + r.skipped;
    progress.add(ended - shown);
    shown = ended;
    progress.set_detail(fmt::format("{} running, {} done, {} failed, {} skipped, {} copied", r.running, r.done, r.failed,
                                    r.skipped, human_bytes(r.bytes_transferred)));
    if (metrics_file.empty() || ctx.clock().monotonic_ms() < next_metrics) return;
    next_metrics = ctx.clock().monotonic_ms() + 15'000;
    // The moves in flight as the journal has them (their step and bytes so far).
    std::vector<MoveRecord> in_flight;
    MoveFilter active;
    active.active_only = true;
    if (auto moves = j->list_moves(active); moves.ok()) {
      for (auto& m : *moves)
        if (m.plan_id == lp.id) in_flight.push_back(std::move(m));
    } else {
      spdlog::warn("metrics: the moves in flight: {}", moves.error().message());
    }
    auto st = write_metrics_file(metrics_file,
                                 render_run_metrics(r, lp.plan, RunStatus::kRunning, ctx.clock().now_ms(), in_flight));
    if (!st.ok()) spdlog::warn("{}", st.error().message());
  };

  // One move setup (journal, LDAP, transports) per worker thread, shared by
  // the moves that thread carries ([rebalance] threads).
  std::string config_path = cfg->path;
  GlobalOptions global = ctx.global;
  std::vector<std::unique_ptr<Context>> contexts;
  std::mutex contexts_mu;
  MoveWorkerFactory factory = [&]() -> Result<MoveWorker> {
    auto wctx = std::make_unique<Context>();
    wctx->global = global;
    wctx->global.config_path = config_path;
    auto setup = make_move_setup(*wctx, {});
    if (!setup.ok()) return std::move(setup).error();
    Journal* wj = MS_TRY(wctx->journal());
    std::shared_ptr<MoveSetup> s(std::move(*setup));
    std::lock_guard lock(contexts_mu);
    contexts.push_back(std::move(wctx));
    MoveWorker w;
    w.move = [s](const std::string& user, const std::string& to, const MoveOptions& o) { return s->move(user, to, o); };
    if (!s->director_move)  // a director move runs whole (it is short: no copy)
      w.start = [s](const std::string& user, const std::string& to, const MoveOptions& o) {
        return s->runner->start(user, to, o);
      };
    // Shared nights: another controller's move whose user this plan moves.
    // Its lease first (kConflict while that controller lives), and under it
    // the record: a move that ended meanwhile was not recovered here. Only
    // then resume, which takes the lease again: a holder that let it go had
    // finished it (seen above) or died, and does not come back.
    w.resume = [s, wj](int64_t move_id) -> Result<TakeOver> {
      MoveRecord m = MS_TRY(wj->get_move(move_id));
      if (is_terminal(m.state)) return TakeOver{m, false};
      {
        auto lease = MS_TRY(wj->lease_move(move_id));
        m = MS_TRY(wj->get_move(move_id));
        if (is_terminal(m.state)) return TakeOver{m, false};
      }
      MoveRecord r = MS_TRY(s->resume(m));
      return TakeOver{r, true};
    };
    w.list_moves = [wj](const MoveFilter& f) { return wj->list_moves(f); };
    return w;
  };
  auto rep = execute_plan(lp.plan, eo, factory, ctx.clock());
  set_two_stage_interrupts(false);
  progress.finish();
  if (!rep.ok()) {
    (void)j->finish_run(run, "failed", nlohmann::json{{"error", rep.error().message()}}.dump());
    if (!metrics_file.empty()) {
      ExecutionReport empty;
      empty.started_at_ms = now;
      empty.finished_at_ms = ctx.clock().now_ms();
      (void)write_metrics_file(metrics_file, render_run_metrics(empty, lp.plan, RunStatus::kFailed, ctx.clock().now_ms()));
    }
    return std::move(rep).error().context(fmt::format("rebalance {}", lp.source));
  }

  // Moves another controller of a shared night did are done too.
  const bool all_done = rep->done + rep->elsewhere_done == static_cast<int64_t>(rep->moves.size());
  const RunStatus status = signalled ? RunStatus::kInterrupted : all_done ? RunStatus::kOk : RunStatus::kFailed;
  auto summary = run_report_json(lp.plan, lp.hash, *rep);
  (void)j->set_plan_status(lp.id, all_done ? "done" : "partial");
  (void)j->finish_run(run, std::string(run_status_name(status)), summary.dump());
  if (!metrics_file.empty()) {
    auto st = write_metrics_file(metrics_file, render_run_metrics(*rep, lp.plan, status, ctx.clock().now_ms()));
    if (!st.ok()) spdlog::error("{}", st.error().message());
  }
  // The page for the morning: --report, else one per run in [rebalance] report_dir.
  const std::string report =
      !a.report.empty() ? a.report
      : cfg->rebalance.report_dir.empty() ? ""
                                          : fmt::format("{}/rebalance-run-{}.html", cfg->rebalance.report_dir, run);
  if (!report.empty()) {
    auto st = write_report(report, lp.plan, lp.hash, *rep);
    if (!st.ok()) spdlog::error("{}", st.error().message());
  }
  // Quiet on success under cron (--log-level warn or quieter: nothing at
  // all); on failure the summary goes to stderr, which cron mails.
  const std::string& level = ctx.global.log_level;
  const bool quiet = all_done && !ctx.global.json && (level == "warn" || level == "error" || level == "off");
  if (!quiet) {
    std::string text = ctx.global.json ? summary.dump(2) + "\n" : render_run_text(lp.plan, lp.hash, *rep);
    if (!metrics_file.empty() && !ctx.global.json) text += fmt::format("metrics: {}\n", metrics_file);
    if (!report.empty() && !ctx.global.json) text += fmt::format("report: {}\n", report);
    // --json is for a program: always on stdout (the exit code says how it went).
    fmt::print(all_done || ctx.global.json ? stdout : stderr, "{}", text);
  }
  if (signalled) return kExitInterrupted;
  return all_done ? kExitOk : kExitFailure;
}

}  // namespace

Command register_rebalance(CLI::App& root, Context& ctx) {
  auto a = std::make_shared<Args>();
  CLI::App* cmd = root.add_subcommand("rebalance", "The nightly job: run a reviewed plan's moves within slots, load and a deadline");
  cmd->add_option("--plan", a->plan,
                  "the plan to run: 'latest' (the newest approved plan in the journal), a plan hash, or a --output "
                  "file of 'mailshard plan' (default: plan the live fleet now with the [plan] settings)");
  cmd->add_option("--snapshot", a->snapshot, "without --plan: plan from this saved inventory (inventory --save DIR)");
  cmd->add_option("--strategy", a->strategy, "strategy when planning now: balance, drain or fill (default balance)");
  cmd->add_option("--night", a->night, "which night of a multi-night plan to run (default 1; 0 = all)");
  cmd->add_option("--deadline", a->deadline,
                  "start no move after this: a duration from now (5h) or a local clock time (05:30, the next one); "
                  "running moves finish");
  cmd->add_option("--hard-deadline", a->hard_deadline,
                  "after this (duration or clock time), moves that have not flipped roll back; flipped ones finish");
  cmd->add_option("--max-parallel", a->max_parallel,
                  "moves at once, fleet-wide (default: what the servers' max_moves_out/max_moves_in slots allow)");
  cmd->add_option("--report", a->report, "write the run report for the morning: FILE.md or FILE.html");
  cmd->add_option("--metrics-file", a->metrics_file,
                  "keep a Prometheus textfile here during and after the run (default [rebalance] metrics_file)");
  cmd->add_flag("--stop", a->stop, "ask the running rebalance (same journal) to start no more moves, then exit");
  cmd->add_flag("--dry-run", a->dry_run, "show the moves that would run; change nothing");
  cmd->add_flag("--shared", a->shared,
                "run the plan's night together with other controllers on this journal (each also with --shared and "
                "the same --plan): moves are claimed within the servers' slots counted over all of them, and the "
                "moves of a controller that died are finished or rolled back and run again");
  cmd->footer(
      "The reviewed-plan workflow: in the afternoon 'mailshard plan --report plan.html', a person reads it and runs\n"
      "'mailshard plan approve HASH'; at night: mailshard --log-level warn rebalance --plan latest --deadline 05:30\n"
      "  --metrics-file /var/lib/node_exporter/textfile/mailshard.prom --report /var/lib/mailshard/night.html\n"
      "SIGTERM or Ctrl-C: no more moves start, running ones finish; a second signal rolls back the ones that have not\n"
      "flipped. Exit: 0 every move done, 1 a move failed, was skipped or did not start (the summary is on stderr), or\n"
      "the plan was refused (stale, not approved, another run holds the lease), 2 bad input, 130 stopped by a signal.");
  return {cmd, [&ctx, a]() -> Result<int> { return run_rebalance(ctx, *a); }};
}

}  // namespace mailshard::cli
