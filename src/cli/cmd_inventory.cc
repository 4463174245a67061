// mailshard inventory: read LDAP, server metrics and mailbox sizes; print the
// fleet; optionally save a snapshot for `mailshard plan --snapshot DIR`.
//
// Exit codes: 0 everything was read; 1 some server or mailbox failed, or the
// journal could not record the run (the report is printed anyway); 2 config
// error; 130 interrupted.
#include <map>

#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "inventory/inventory.h"
#include "util/strings.h"

namespace mailshard::cli {
namespace {

// How many anomalies / errors the text report lists before "... and N more".
constexpr size_t kListLimit = 50;

struct InventoryArgs {
  bool users = false;
  bool no_sizes = false;
  std::string save_dir;
};

std::string pct(double v) { return fmt::format("{:.1f}%", 100.0 * v); }

using ojson = nlohmann::ordered_json;

ojson to_json(const Inventory& inv, const InventoryArgs& args, const std::string& saved) {
  ojson out;
  out["taken_at"] = format_time_ms(inv.taken_at_ms);
  out["taken_at_ms"] = inv.taken_at_ms;
  out["elapsed_ms"] = inv.elapsed_ms;
  out["size_source"] = inv.size_source;
  out["complete"] = inv.complete();
  std::map<std::string, double> class_mean;
  for (const auto& c : inv.classes) class_mean[c.name] = c.mean_utilisation;
  auto servers = ojson::array();
  for (const auto& s : inv.servers) {
    ojson j;
    j["name"] = s.name;
    j["class"] = s.server_class;
    j["draining"] = s.draining;
    j["failed"] = s.failed;
    if (s.failed) j["error"] = s.error;
    j["users"] = s.users;
    j["mail_bytes"] = s.mail_bytes;
    j["messages"] = s.messages;
    j["user_errors"] = s.user_errors;
    if (!s.failed) {
      j["capacity_bytes"] = s.capacity_bytes;
      j["capacity_overridden"] = s.capacity_overridden;
      j["used_bytes"] = s.used_bytes;
      j["free_bytes"] = s.free_bytes;
      j["other_used_bytes"] = s.other_used_bytes;
      j["utilisation"] = s.utilisation;
      j["deviation"] = s.utilisation - class_mean[s.server_class];
      j["load1"] = s.metrics.load1;
      j["load_capacity"] = s.load_capacity;
      ojson fs;
      fs["source"] = s.metrics.source;
      fs["mountpoint"] = s.metrics.mountpoint;
      fs["device"] = s.metrics.device;
      fs["fstype"] = s.metrics.fstype;
      fs["size_bytes"] = s.metrics.fs_size_bytes;
      fs["avail_bytes"] = s.metrics.fs_avail_bytes;
      fs["free_bytes"] = s.metrics.fs_free_bytes;
      fs["cpus"] = s.metrics.cpus;
      j["filesystem"] = std::move(fs);
    }
    servers.push_back(std::move(j));
  }
  out["servers"] = std::move(servers);
  auto classes = ojson::array();
  for (const auto& c : inv.classes)
    classes.push_back({{"name", c.name}, {"servers", c.servers}, {"mean_utilisation", c.mean_utilisation},
                       {"stddev_utilisation", c.stddev_utilisation}});
  out["classes"] = std::move(classes);
  out["user_count"] = inv.users.size();
  out["user_errors"] = inv.user_errors();
  if (args.users) {
    auto users = ojson::array();
    for (const auto& u : inv.users) {
      ojson j;
      j["user"] = u.user;
      j["server"] = inv.servers[static_cast<size_t>(u.server)].name;
      j["dn"] = u.dn;
      j["home"] = u.home_rel;
      j["size_bytes"] = u.size_bytes;
      j["messages"] = u.messages;
      j["exists"] = u.exists;
      j["activity"] = u.activity;
      j["status"] = u.status;
      if (!u.error.empty()) j["error"] = u.error;
      users.push_back(std::move(j));
    }
    out["users"] = std::move(users);
  } else {
    auto errors = ojson::array();
    for (const auto& u : inv.users)
      if (!u.error.empty()) errors.push_back({{"user", u.user}, {"error", u.error}});
    out["users_with_errors"] = std::move(errors);
  }
  auto anomalies = ojson::array();
  for (const auto& a : inv.anomalies) anomalies.push_back({{"dn", a.dn}, {"reason", a.reason}});
  out["anomalies"] = std::move(anomalies);
  out["notes"] = inv.notes;
  out["snapshot"] = saved.empty() ? ojson(nullptr) : ojson(saved);
  return out;
}

void print_text(const Inventory& inv, const InventoryArgs& args, const std::string& saved) {
  std::map<std::string, double> class_mean;
  for (const auto& c : inv.classes) class_mean[c.name] = c.mean_utilisation;
  size_t w = 6;
  for (const auto& s : inv.servers) w = std::max(w, s.name.size());
  fmt::print("{:<{}}  {:<5}  {:>10}  {:>10}  {:>10}  {:>6}  {:>8}  {:>5}  {:>7}  {:>10}\n", "server", w, "class",
             "capacity", "used", "free", "util", "dev", "load", "users", "mail");
  for (const auto& s : inv.servers) {
    if (s.failed) {
      fmt::print("{:<{}}  {:<5}  FAILED: {}\n", s.name, w, s.server_class, s.error);
      continue;
    }
    double dev = s.utilisation - class_mean[s.server_class];
    fmt::print("{:<{}}  {:<5}  {:>10}  {:>10}  {:>10}  {:>6}  {:>+7.1f}pp  {:>5.2f}  {:>7}  {:>10}{}{}\n", s.name, w,
               s.server_class, human_bytes(s.capacity_bytes), human_bytes(s.used_bytes), human_bytes(s.free_bytes),
               pct(s.utilisation), 100.0 * dev, s.metrics.load1, s.users, human_bytes(s.mail_bytes),
               s.draining ? "  draining" : "", s.capacity_overridden ? "  (capacity from config)" : "");
  }
  for (const auto& c : inv.classes)
    fmt::print("class {}: {} server{}, mean utilisation {}, std. deviation {:.1f} pp\n", c.name, c.servers,
               c.servers == 1 ? "" : "s", pct(c.mean_utilisation), 100.0 * c.stddev_utilisation);

  if (args.users) {
    size_t uw = 4;
    for (const auto& u : inv.users) uw = std::max(uw, std::min<size_t>(u.user.size(), 60));
    fmt::print("\n{:<{}}  {:<{}}  {:>10}  {:>8}  {:>8}  {}\n", "user", uw, "server", w, "size", "messages", "activity",
               "status");
    for (const auto& u : inv.users) {
      const auto& s = inv.servers[static_cast<size_t>(u.server)];
      std::string size = !u.error.empty() ? "ERROR" : s.failed ? "-" : human_bytes(u.size_bytes);
      fmt::print("{:<{}}  {:<{}}  {:>10}  {:>8}  {:>8.2f}  {}{}\n", u.user, uw, s.name, w, size,
                 u.messages >= 0 ? std::to_string(u.messages) : "-", u.activity, u.status.empty() ? "-" : u.status,
                 u.error.empty() ? "" : "  " + u.error);
    }
  }

  auto list = [](const std::string& title, const std::vector<std::string>& lines) {
    if (lines.empty()) return;
    fmt::print("\n{} ({}):\n", title, lines.size());
    for (size_t i = 0; i < lines.size() && i < kListLimit; ++i) fmt::print("  {}\n", lines[i]);
    if (lines.size() > kListLimit) fmt::print("  ... and {} more (see --json)\n", lines.size() - kListLimit);
  };
  std::vector<std::string> lines;
  for (const auto& a : inv.anomalies) lines.push_back(fmt::format("{}: {}", a.dn, a.reason));
  list("directory entries skipped", lines);
  lines.clear();
  if (!args.users)
    for (const auto& u : inv.users)
      if (!u.error.empty()) lines.push_back(fmt::format("{}: {}", u.user, u.error));
  list("mailboxes not sized", lines);
  list("notes", inv.notes);

  int64_t mail = 0;
  for (const auto& s : inv.servers) mail += s.mail_bytes;
  fmt::print("\n{} users, {} of mail, on {} servers ({} failed); {} anomalies, {} mailboxes not sized; "
             "{:.1f} s, sizes from {}{}\n",
             inv.users.size(), human_bytes(mail), inv.servers.size(), inv.failed_servers(), inv.anomalies.size(),
             inv.user_errors(), static_cast<double>(inv.elapsed_ms) / 1000.0, inv.size_source,
             saved.empty() ? "" : fmt::format("; snapshot saved to {}", saved));
}

std::string summary_json(const Inventory& inv, const std::string& saved) {
  ojson j;
  j["servers"] = inv.servers.size();
  j["failed_servers"] = inv.failed_servers();
  j["users"] = inv.users.size();
  j["user_errors"] = inv.user_errors();
  j["anomalies"] = inv.anomalies.size();
  j["size_source"] = inv.size_source;
  j["elapsed_ms"] = inv.elapsed_ms;
  if (!saved.empty()) j["snapshot"] = saved;
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace

Command register_inventory(CLI::App& root, Context& ctx) {
  auto args = std::make_shared<InventoryArgs>();
  CLI::App* app = root.add_subcommand("inventory", "Read LDAP, server metrics and mailbox sizes; print the fleet");
  app->add_flag("--users", args->users, "also list every user (server, size, messages, activity, status)");
  app->add_option("--save", args->save_dir,
                  "write a snapshot (servers.csv, users.csv, meta.json) into DIR for 'mailshard plan --snapshot DIR'")
      ->type_name("DIR");
  app->add_flag("--no-sizes", args->no_sizes, "skip mailbox sizing (directory and server metrics only)");
  app->footer(
      "Exit codes: 0 ok, 1 some server or mailbox could not be read (the report is still printed),\n"
      "2 config error, 130 interrupted. Failed servers are left out of a saved snapshot.");

  return {app, [&ctx, args]() -> Result<int> {
            const Config* config = MS_TRY(ctx.config());
            int rc = kExitOk;

            Journal* journal = nullptr;
            int64_t run_id = 0;
            if (auto j = ctx.journal(); j.ok()) {
              journal = *j;
              ojson a;
              a["users"] = args->users;
              a["save"] = args->save_dir;
              a["no_sizes"] = args->no_sizes;
              if (auto r = journal->begin_run("inventory", a.dump()); r.ok()) run_id = *r;
              else spdlog::warn("journal: {}", r.error().message());
            } else {
              spdlog::warn("journal: {}; this inventory is not recorded", j.error().message());
              rc = kExitFailure;
            }

            InventoryOptions opts;
            opts.size_mailboxes = !args->no_sizes;
            auto inv = take_inventory(*config, ctx.clock(), opts);
            if (!inv.ok()) {
              if (journal && run_id)
                (void)journal->finish_run(run_id,
                                          inv.error().code() == ErrorCode::kInterrupted ? "interrupted" : "failed",
                                          ojson({{"error", inv.error().message()}}).dump(-1, ' ', false, ojson::error_handler_t::replace));
              return std::move(inv).error().context("inventory");
            }

            std::string saved;
            Status save_status;
            if (!args->save_dir.empty()) {
              save_status = write_snapshot(inv->snapshot, args->save_dir, snapshot_meta_json(*inv, *config),
                                           config->security.private_files());
              if (save_status.ok()) saved = args->save_dir;
            }
            if (journal) {
              if (auto r = journal->record_snapshot(run_id, inv->taken_at_ms, saved, summary_json(*inv, saved)); !r.ok()) {
                spdlog::warn("journal: {}", r.error().message());
                rc = kExitFailure;
              }
              if (run_id)
                (void)journal->finish_run(run_id, inv->complete() ? "ok" : "partial", summary_json(*inv, saved));
            }

            if (ctx.global.json)
              fmt::print("{}\n", to_json(*inv, *args, saved).dump(2, ' ', false, ojson::error_handler_t::replace));
            else
              print_text(*inv, *args, saved);
            if (!save_status.ok()) return std::move(save_status).error().context("inventory --save");
            if (!inv->complete()) rc = kExitFailure;
            return rc;
          }};
}

}  // namespace mailshard::cli
