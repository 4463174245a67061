// mailshard rebalance: the nightly job. Executes exactly a reviewed plan
// (--plan FILE or a plan hash from the journal) or plans the live fleet now
// with the configured [plan] settings, then runs the plan's first night of
// moves with the full move lifecycle, a bounded number at a time per server,
// starting no move after the deadline.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "cli/live_plan.h"
#include "cli/move_wiring.h"
#include "movers/plan_executor.h"
#include "util/duration.h"
#include "util/fs.h"
#include "util/interrupt.h"
#include "util/strings.h"

namespace mailshard::cli {
namespace {

struct Args {
  std::string plan;
  std::string strategy = "balance";
  int night = 1;
  std::string deadline;
  int max_parallel = 4;
  bool dry_run = false;
};

bool looks_like_hash(const std::string& s) {
  if (s.size() < 8 || s.size() > 32) return false;
  for (char ch : s)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  return true;
}

// The plan to execute and its journal id.
Result<std::pair<Plan, int64_t>> load_plan(Context& ctx, const Args& a) {
  Journal* j = MS_TRY(ctx.journal());
  if (a.plan.empty()) {
    LivePlan lp = MS_TRY(plan_live_fleet(ctx, a.strategy));
    return std::pair{std::move(lp.plan), lp.plan_id};
  }
  if (looks_like_hash(a.plan) && ::access(a.plan.c_str(), F_OK) != 0) {
    PlanRecord rec = MS_TRY(j->find_plan(a.plan));
    Plan p = MS_TRY_CTX(plan_from_json(rec.plan_json), fmt::format("plan {}", rec.hash));
    // The journal's copy must still be the plan that was reviewed under that hash.
    if (std::string h = plan_hash(p); h != rec.hash)
      return Error::corrupt(fmt::format("plan {}: the journal's copy hashes to {}: it changed since it was stored",
                                        rec.hash, h));
    return std::pair{std::move(p), rec.id};
  }
  std::string text = MS_TRY_CTX(read_file(a.plan), "--plan");
  // "Execute exactly what was reviewed": the file carries its hash, and all of
  // it is checked before anything (the dry-run listing, the journal) uses it.
  Plan p = MS_TRY_CTX(plan_from_file_json(text), fmt::format("--plan {}", a.plan));
  std::string hash = plan_hash(p);
  int64_t id = MS_TRY(journal_plan(*j, p, hash));
  return std::pair{std::move(p), id};
}

}  // namespace

Command register_rebalance(CLI::App& root, Context& ctx) {
  auto a = std::make_shared<Args>();
  CLI::App* cmd = root.add_subcommand("rebalance", "The nightly job: plan and execute moves within budgets and a deadline");
  cmd->add_option("--plan", a->plan,
                  "execute exactly this plan: a --output file of 'mailshard plan', or a plan hash from the journal "
                  "(default: plan the live fleet now with the [plan] settings)");
  cmd->add_option("--strategy", a->strategy, "strategy when planning now: balance, drain or fill (default balance)");
  cmd->add_option("--night", a->night, "which night of a multi-night plan to run (default 1; 0 = all)");
  cmd->add_option("--deadline", a->deadline, "start no move after this long from now (e.g. 5h); running moves finish");
  cmd->add_option("--max-parallel", a->max_parallel, "moves at once, fleet-wide (default 4); per server: max_concurrent_moves");
  cmd->add_flag("--dry-run", a->dry_run, "show the moves that would run; change nothing");
  cmd->footer(
      "Cron: 0 1 * * * mailshard --log-level warn rebalance --deadline 5h   (see examples/).\n"
      "Exit: 0 every move done, 1 a move failed or was skipped, 2 bad input, 130 interrupted.");
  return {cmd, [&ctx, a]() -> Result<int> {
            const Config* cfg = MS_TRY(ctx.config());
            int64_t deadline = 0;
            if (!a->deadline.empty())
              deadline = ctx.clock().now_ms() + MS_TRY_CTX(parse_duration_ms(a->deadline), "--deadline");
            if (a->max_parallel < 1) return Error::invalid("--max-parallel must be at least 1");
            auto [plan, plan_id] = MS_TRY(load_plan(ctx, *a));
            std::string hash = plan_hash(plan);
            Journal* j = MS_TRY(ctx.journal());
            if (a->dry_run) {
              int n = 0;
              for (const auto& m : plan.moves)
                if (a->night == 0 || m.night == a->night) {
                  ++n;
                  fmt::print("would move {} {} -> {} ({}, {})\n", m.user_name.empty() ? std::to_string(m.user) : m.user_name,
                             plan.servers[m.from].name, plan.servers[m.to].name, human_bytes(m.bytes), move_reason_name(m.reason));
                }
              fmt::print("dry run: plan {} night {}: {} moves; nothing was changed\n", hash, a->night, n);
              return kExitOk;
            }
            int64_t run = MS_TRY(j->begin_run("rebalance", nlohmann::json{{"plan", hash}, {"night", a->night}}.dump()));
            MS_CHECK(j->set_plan_status(plan_id, "executing"));
            ExecutionOptions eo;
            eo.night = a->night;
            eo.deadline_ms = deadline;
            eo.max_parallel = a->max_parallel;
            eo.plan_id = plan_id;
            for (const auto& s : cfg->servers) eo.slots[s.name] = {s.max_concurrent_moves, s.max_concurrent_moves};
            // One move setup (journal, LDAP, transports) per worker thread.
            std::string config_path = cfg->path;
            GlobalOptions global = ctx.global;
            std::vector<std::unique_ptr<Context>> contexts;
            std::mutex contexts_mu;
            MoveFnFactory factory = [&]() -> Result<MoveFn> {
              auto wctx = std::make_unique<Context>();
              wctx->global = global;
              wctx->global.config_path = config_path;
              auto setup = make_move_setup(*wctx, {});
              if (!setup.ok()) return std::move(setup).error();
              std::shared_ptr<MoveSetup> s(std::move(*setup));
              std::lock_guard lock(contexts_mu);
              contexts.push_back(std::move(wctx));
              return MoveFn([s](const std::string& user, const std::string& to, const MoveOptions& o) {
                return s->runner->move(user, to, o);
              });
            };
            auto rep = execute_plan(plan, eo, factory, ctx.clock());
            if (!rep.ok()) {
              (void)j->finish_run(run, "failed", nlohmann::json{{"error", rep.error().message()}}.dump());
              return std::move(rep).error().context(fmt::format("rebalance plan {}", hash));
            }
            nlohmann::json summary = {{"plan", hash},
                                      {"night", rep->night},
                                      {"moves", rep->moves.size()},
                                      {"done", rep->done},
                                      {"failed", rep->failed},
                                      {"skipped", rep->skipped},
                                      {"bytes_transferred", rep->bytes_transferred},
                                      {"lockout_p50_ms", rep->lockout_p50_ms},
                                      {"lockout_p95_ms", rep->lockout_p95_ms},
                                      {"lockout_max_ms", rep->lockout_max_ms},
                                      {"seconds", (rep->finished_at_ms - rep->started_at_ms) / 1000.0},
                                      {"deadline_reached", rep->deadline_reached},
                                      {"hard_stopped", rep->hard_stopped}};
            bool all_done = rep->done == static_cast<int64_t>(rep->moves.size());
            (void)j->set_plan_status(plan_id, all_done ? "done" : "partial");
            (void)j->finish_run(run, rep->hard_stopped ? "interrupted" : all_done ? "ok" : "failed", summary.dump());
            if (ctx.global.json) {
              summary["results"] = nlohmann::json::array();
              for (const auto& o : rep->moves)
                summary["results"].push_back({{"user", o.user}, {"from", o.from}, {"to", o.to}, {"move_id", o.move_id},
                                              {"state", o.state}, {"bytes_transferred", o.bytes_transferred},
                                              {"lockout_ms", o.lockout_ms}, {"error", o.reason}});
              fmt::print("{}\n", summary.dump(2));
            } else {
              for (const auto& o : rep->moves)
                fmt::print("{:<28} {:<8} -> {:<8} {:<12} {:>10} {:>8}  {}\n", printable(o.user, 28), o.from, o.to,
                           o.state.empty() ? "not started" : o.state, human_bytes(o.bytes_transferred),
                           o.lockout_ms >= 0 ? format_duration_ms(o.lockout_ms) : "-", o.reason);
              fmt::print("rebalance plan {} night {}: {} done, {} failed, {} not started; {} copied; lockout median {} "
                         "p95 {} max {}{}\n",
                         hash, rep->night, rep->done, rep->failed, rep->skipped, human_bytes(rep->bytes_transferred),
                         rep->lockout_p50_ms >= 0 ? format_duration_ms(rep->lockout_p50_ms) : "-",
                         rep->lockout_p95_ms >= 0 ? format_duration_ms(rep->lockout_p95_ms) : "-",
                         rep->lockout_max_ms >= 0 ? format_duration_ms(rep->lockout_max_ms) : "-",
                         rep->deadline_reached ? "; " + rep->stop_reason : "");
            }
            if (interrupted()) return kExitInterrupted;
            return all_done ? kExitOk : kExitFailure;
          }};
}

}  // namespace mailshard::cli
