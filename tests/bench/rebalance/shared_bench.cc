// One controller of a shared night, for tests/bench/rebalance/shared.sh: runs
// the night of a generated plan through execute_plan in shared mode on a
// PostgreSQL journal (real slot claims, move leases and fencing), with moves
// that take MOVE_MS of real time each and do nothing else. Several of these
// processes on one database are several controllers.
//
//   shared_bench URL PASSWORD_FILE MOVES SERVERS SLOTS MAX_PARALLEL MOVE_MS
//
// The plan: MOVES users, user i from server (i % SERVERS) to ((i + 1) % SERVERS),
// SLOTS out and SLOTS in per server. MAX_PARALLEL is the controller's own bound
// (what one controller can carry at once; 0 = only the slots). The plan is
// stored under a hash made of its shape, so every controller gets its id.
//
// A move "is on its destination" once the journal has a done move of it in
// this plan: that is the re-check a real move makes in LDAP before it claims.
// Prints one JSON line: seconds, done here, done by others, taken over, slot
// waits, and for the slot check each move's span inside the time it held its
// slots in the journal (from after its claim to before its end was written).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "journal/pg_journal.h"
#include "movers/plan_executor.h"

int main(int argc, char** argv) {
  using namespace mailshard;
  if (argc != 8) {
    std::fprintf(stderr, "usage: shared_bench URL PASSWORD_FILE MOVES SERVERS SLOTS MAX_PARALLEL MOVE_MS\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  PgJournalOptions po;
  po.url = argv[1];
  {
    std::ifstream in(argv[2]);
    std::stringstream s;
    s << in.rdbuf();
    po.password = s.str();
    while (!po.password.empty() && (po.password.back() == '\n' || po.password.back() == '\r')) po.password.pop_back();
  }
  const int moves = std::atoi(argv[3]), servers = std::atoi(argv[4]), slots = std::atoi(argv[5]);
  const int max_parallel = std::atoi(argv[6]), move_ms = std::atoi(argv[7]);
  if (moves < 1 || servers < 2 || slots < 1 || max_parallel < 0 || move_ms < 0) {
    std::fprintf(stderr, "shared_bench: bad arguments\n");
    return 2;
  }
  SystemClock clock;
  int64_t plan_id = 0;
  {
    auto j = PgJournal::open(po, clock);
    if (!j.ok()) {
      std::fprintf(stderr, "shared_bench: %s\n", j.error().message().c_str());
      return 1;
    }
    PlanRecord p;
    p.hash = "shared-bench-" + std::to_string(moves) + "-" + std::to_string(servers);
    p.plan_json = "{\"moves\":[]}";
    auto id = (*j)->store_plan(p);
    if (!id.ok()) {
      std::fprintf(stderr, "shared_bench: %s\n", id.error().message().c_str());
      return 1;
    }
    plan_id = *id;
  }
  Plan plan;
  for (int s = 0; s < servers; ++s) {
    ServerOutcome so;
    so.id = s;
    so.name = "store" + std::to_string(s);
    plan.servers.push_back(so);
  }
  for (int i = 0; i < moves; ++i) {
    PlannedMove m;
    m.user = i;
    m.user_name = "user" + std::to_string(i);
    m.from = i % servers;
    m.to = (i + 1) % servers;
    m.bytes = 1000;
    plan.moves.push_back(m);
  }
  std::mutex held_mu;
  nlohmann::json held = nlohmann::json::array();  // what each move of this controller held, when
  MoveWorkerFactory workers = [&]() -> Result<MoveWorker> {
    std::shared_ptr<Journal> j(MS_TRY(PgJournal::open(po, clock)).release());
    MoveWorker w;
    w.move = [j, move_ms, plan_id, &held_mu, &held](const std::string& user, const std::string& to,
                                   const MoveOptions& o) -> Result<MoveRecord> {
      MoveFilter f;
      f.user = user;
      for (const auto& m : MS_TRY(j->list_moves(f)))
        if (m.plan_id == plan_id && m.state == MoveState::kDone)
          return Error::conflict("user " + user + " is on " + m.to_server + " now, not on " + o.expected_from);
      MoveRecord rec;
      rec.user = user;
      rec.from_server = o.expected_from;
      rec.to_server = to;
      rec.plan_id = o.plan_id;
      rec.state = MoveState::kPrecopy;
      rec.id = MS_TRY(o.claim ? o.claim(*j, rec) : j->claim_move(rec));
      auto lease = MS_TRY(j->lease_move(rec.id));
      MS_CHECK(check_claim_still_ours(*j, rec.id));
      // The time this move surely holds its slots in the journal: after its
      // claim committed, before its end is written.
      const int64_t start = SystemClock().now_ms();
      std::this_thread::sleep_for(std::chrono::milliseconds(move_ms));
      {
        std::lock_guard lock(held_mu);
        held.push_back({{"from", rec.from_server}, {"to", rec.to_server}, {"start", start},
                        {"end", SystemClock().now_ms()}});
      }
      rec.state = MoveState::kDone;
      rec.lockout_ms = 0;
      MS_CHECK(j->update_move(rec));
      return rec;
    };
    w.resume = [j](int64_t id) -> Result<TakeOver> {
      // As the CLI does: a move that ended needs no lease.
      MoveRecord m = MS_TRY(j->get_move(id));
      if (is_terminal(m.state)) return TakeOver{m, false};
      auto lease = MS_TRY(j->lease_move(id));
      m = MS_TRY(j->get_move(id));
      if (is_terminal(m.state)) return TakeOver{m, false};
      m.state = MoveState::kRolledBack;  // a bench move has no flip: it rolls back
      MS_CHECK(j->update_move(m));
      return TakeOver{m, true};
    };
    w.list_moves = [j](const MoveFilter& f) { return j->list_moves(f); };
    return w;
  };
  ExecutionOptions o;
  o.shared = true;
  o.plan_id = plan_id;
  o.max_parallel = max_parallel;
  o.shared_retry_ms = 200;
  // Moves ending in the other controllers wake this one's waiting moves, as
  // in `rebalance --shared` (NO_WATCH=1: the retry interval alone, as before).
  if (!std::getenv("NO_WATCH")) {
    auto j = PgJournal::open(po, clock);
    auto w = j.ok() ? (*j)->watch_move_ends() : Result<std::unique_ptr<MoveEndWatcher>>(std::move(j).error());
    if (!w.ok()) {
      std::fprintf(stderr, "shared_bench: %s\n", w.error().message().c_str());
      return 1;
    }
    o.move_ends = std::move(*w);
  }
  for (const auto& s : plan.servers) o.slots[s.name] = {slots, slots};
  auto t0 = std::chrono::steady_clock::now();
  auto r = execute_plan(plan, o, workers, clock);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "shared_bench: %s\n", r.error().message().c_str());
    return 1;
  }
  nlohmann::json out = {{"seconds", secs},           {"done", r->done},
                        {"elsewhere_done", r->elsewhere_done}, {"failed", r->failed},
                        {"not_started", r->not_started},       {"taken_over", r->taken_over}};
  int waits = 0;
  nlohmann::json others = nlohmann::json::array();  // moves neither done here nor done elsewhere
  for (const auto& m : r->moves) {
    waits += m.slot_waits;
    if (m.result != MoveResult::kDone && !(m.elsewhere && m.state == "done"))
      others.push_back(m.user + ": " + std::string(move_result_name(m.result)) + ": " + m.reason);
  }
  out["others"] = others;
  out["slot_waits"] = waits;
  out["moves"] = held;
  std::printf("%s\n", out.dump().c_str());
  return r->done + r->elsewhere_done == moves ? 0 : 1;
}
