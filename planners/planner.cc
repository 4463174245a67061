#include "planners/planner.h"

#include <charconv>
#include <iterator>
#include <map>

#include <fmt/format.h>

#include "util/strings.h"

namespace mailshard::planner {

const std::vector<Strategy>& strategies() {
  static const std::vector<Strategy> table = {
      {"balance", "disk into the band around each class mean, load as the second goal; drains too", plan_balance},
      {"drain", "only empty the draining servers, onto the emptiest servers of their class", plan_drain},
      {"fill", "only fill servers below the band (new, empty servers) from the fullest ones", plan_fill},
  };
  return table;
}

Snapshot apply_plan(const Snapshot& snap, const Plan& plan) {
  Snapshot out = snap;
  for (const auto& m : plan.moves) out.user_server[static_cast<size_t>(m.user)] = m.to;
  return out;
}

Result<int32_t> find_server(const Snapshot& snap, std::string_view name) {
  for (size_t s = 0; s < snap.servers.size(); ++s)
    if (snap.servers[s].name == name) return static_cast<int32_t>(s);
  int64_t id = -1;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec == std::errc() && p == name.data() + name.size() && id >= 0 &&
      id < static_cast<int64_t>(snap.servers.size()))
    return static_cast<int32_t>(id);
  return Error::invalid(fmt::format("no server '{}' in the snapshot (it has {} servers, ids 0..{})", printable(name, 80),
                                    snap.servers.size(), snap.servers.size() - 1));
}

Status check_storage_groups(const Snapshot& snap) {
  // class -> (storage group -> its first server), in id order.
  std::map<std::string, std::map<std::string, int32_t>> seen;
  for (size_t s = 0; s < snap.servers.size(); ++s) {
    auto& groups = seen[snap.servers[s].server_class];
    groups.emplace(snap.servers[s].storage_group, static_cast<int32_t>(s));
    if (groups.size() < 2) continue;
    auto describe = [&](const std::string& g, int32_t id) {
      return g.empty() ? fmt::format("{} (storage of its own)", snap.server_label(id))
                       : fmt::format("{} (storage group '{}')", snap.server_label(id), printable(g, 40));
    };
    auto a = groups.begin(), b = std::next(a);
    return Error::invalid(fmt::format(
        "class '{}' mixes {} and {}: a storage group behind a director must be a class of its own (its users move "
        "between its servers without a copy, never out of it)",
        printable(snap.servers[s].server_class, 40), describe(a->first, a->second), describe(b->first, b->second)));
  }
  return {};
}

Result<Plan> plan(const Snapshot& snap, const Constraints& c) {
  if (snap.servers.empty()) return Error::invalid("the snapshot has no servers");
  if (!(c.band > 0 && c.band < 1)) return Error::invalid(fmt::format("band {} must be between 0 and 1", c.band));
  if (!(c.hard_cap > 0 && c.hard_cap <= 1))
    return Error::invalid(fmt::format("hard cap {} must be above 0 and at most 1", c.hard_cap));
  if (!(c.load_band > 0)) return Error::invalid(fmt::format("load band {} must be above 0", c.load_band));
  if (c.min_free_bytes < 0 || c.headroom_bytes < 0 || c.max_bytes < 0 || c.max_moves < 0 ||
      c.max_moves_per_server < 0 || c.max_move_bytes < 0)
    return Error::invalid("sizes and budgets must not be negative");
  if (c.nights < 1) return Error::invalid(fmt::format("nights {} must be at least 1", c.nights));
  const ExecutionModel& e = c.execution;
  if (e.slots_per_server < 1 || !(e.rate_bytes_per_s > 0) || !(e.overhead_s >= 0) || !(e.night_hours > 0))
    return Error::invalid("the execution model needs slots >= 1, a positive rate and night, a non-negative overhead");
  for (int32_t s : c.drain)
    if (s < 0 || static_cast<size_t>(s) >= snap.servers.size())
      return Error::invalid(fmt::format("drain: no server {} (the snapshot has ids 0..{})", s, snap.servers.size() - 1));
  if (snap.user_count() > static_cast<size_t>(INT32_MAX))
    return Error::invalid(fmt::format("{} users: the planner handles at most {}", snap.user_count(), INT32_MAX));
  MS_CHECK(check_storage_groups(snap));
  std::vector<std::string> names;
  for (const auto& st : strategies()) {
    if (st.name == c.strategy) return st.run(snap, c);
    names.emplace_back(st.name);
  }
  std::string hint = closest_match(c.strategy, names);
  return Error::invalid(fmt::format("unknown strategy '{}'{} (known: {})", printable(c.strategy, 40),
                                    hint.empty() ? "" : fmt::format(", did you mean '{}'?", hint), join(names, ", ")));
}

}  // namespace mailshard::planner
