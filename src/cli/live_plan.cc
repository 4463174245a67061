#include "cli/live_plan.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "inventory/inventory.h"
#include "planners/planner.h"

namespace mailshard::cli {

Result<Snapshot> live_snapshot(Context& ctx) {
  const Config* cfg = MS_TRY(ctx.config());
  InventoryOptions io;
  Inventory inv = MS_TRY_CTX(take_inventory(*cfg, ctx.clock(), io), "inventory");
  for (const auto& s : inv.servers)
    if (s.failed) spdlog::warn("server {} is left out of the plan: {}", s.name, s.error);
  for (const auto& n : inv.notes) spdlog::info("inventory: {}", n);
  if (!inv.anomalies.empty())
    spdlog::warn("{} directory entries were skipped as untrustworthy (see 'mailshard inventory')", inv.anomalies.size());
  return std::move(inv.snapshot);
}

Constraints constraints_from_config(const Config& cfg) {
  Constraints c;
  c.band = cfg.plan.band;
  c.hard_cap = cfg.plan.hard_cap;
  c.min_free_bytes = cfg.plan.min_free_bytes;
  c.load_band = cfg.plan.load_band;
  c.max_bytes = cfg.plan.max_bytes;
  c.max_moves = cfg.plan.max_moves;
  c.max_moves_per_server = cfg.plan.max_moves_per_server;
  c.max_move_bytes = cfg.plan.max_move_bytes;
  c.nights = cfg.plan.nights;
  c.headroom_bytes = cfg.move.headroom_bytes;
  return c;
}

Result<int64_t> journal_plan(Journal& journal, const Plan& plan, const std::string& hash) {
  PlanRecord rec;
  rec.hash = hash;
  rec.strategy = plan.strategy;
  rec.plan_json = plan_to_json(plan);
  rec.status = plan.partial ? "partial" : "planned";
  return journal.store_plan(rec).context("journal");
}

}  // namespace mailshard::cli
