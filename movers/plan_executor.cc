#include "movers/plan_executor.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/strings.h"

namespace mailshard {
namespace {

int64_t percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// A move of a worker that only has MoveWorker::move: one stretch, the whole move.
class OneStretch final : public MoveTask {
 public:
  OneStretch(const MoveFn& fn, std::string user, std::string to, MoveOptions options)
      : fn_(fn), user_(std::move(user)), to_(std::move(to)), options_(std::move(options)) {}
  bool advance() override {
    if (!end_) end_ = fn_(user_, to_, options_);
    return true;
  }
  Result<MoveRecord> result() override {
    if (!end_) return Error::internal("the move has not ended");
    return *end_;
  }

 private:
  const MoveFn& fn_;
  std::string user_, to_;
  MoveOptions options_;
  std::optional<Result<MoveRecord>> end_;
};

std::unique_ptr<MoveTask> one_stretch(const MoveFn& fn, const std::string& user, const std::string& to,
                                      const MoveOptions& options) {
  return std::make_unique<OneStretch>(fn, user, to, options);
}

std::string deadline_reason(int64_t deadline_ms) {
  return fmt::format("the deadline {} passed", format_time_ms(deadline_ms));
}

// The shared state of one run. Every field is guarded by mu.
class Run {
 public:
  explicit Run(const ExecutionOptions& o) : o_(o) {}

  ExecutionReport rep;
  std::mutex mu;
  std::condition_variable cv;
  std::list<size_t> pending;  // indexes into rep.moves, plan order
  // Shared nights: a pending move is not taken before its retry time (epoch
  // ms), and a move whose user another process's move holds watches that move.
  std::map<size_t, int64_t> retry_at;
  std::map<size_t, int64_t> watching;
  // Watched moves a worker is looking at now: they hold no slot of this run
  // (the journal counts the watched move, whoever runs it).
  std::set<size_t> probing;
  // Shared nights: a server whose out (or in) slots the journal found full
  // takes no claim of this run as a source (destination) before then: one
  // refused claim stands for every pending move through that server.
  std::map<std::string, int64_t> out_full_until, in_full_until;
  bool full(const std::map<std::string, int64_t>& until, const std::string& server, int64_t now) const {
    auto it = until.find(server);
    return it != until.end() && it->second > now;
  }
  bool stopping = false;      // no move starts any more
  std::vector<std::string> worker_errors;

  ServerRun& server(const std::string& name) { return rep.servers.at(name); }

  // Takes the first pending move whose servers both have a free slot. Moves
  // of a skipped server are taken out of the queue on the way. Returns false
  // when none can start now.
  bool take(size_t& out, int64_t now) {
    for (auto it = pending.begin(); it != pending.end();) {
      MoveOutcome& m = rep.moves[*it];
      if (auto r = retry_at.find(*it); r != retry_at.end() && r->second > now) {
        ++it;
        continue;
      }
      ServerRun& from = server(m.from);
      ServerRun& to = server(m.to);
      if (from.skipped || to.skipped) {
        const ServerRun& bad = from.skipped ? from : to;
        m.result = MoveResult::kSkipped;
        m.reason = fmt::format("server {} failed {} moves in this run", bad.name, bad.failures);
        it = pending.erase(it);
        continue;
      }
      if (watching.count(*it)) {
        out = *it;
        retry_at.erase(*it);
        pending.erase(it);
        probing.insert(out);
        ++rep.running;
        return true;
      }
      if (from.busy_out < from.slots.out && to.busy_in < to.slots.in && !full(out_full_until, m.from, now) &&
          !full(in_full_until, m.to, now)) {
        out = *it;
        retry_at.erase(*it);
        pending.erase(it);
        ++from.busy_out;
        ++to.busy_in;
        ++rep.running;
        rep.peak_running = std::max(rep.peak_running, rep.running);
        return true;
      }
      ++it;
    }
    return false;
  }

  // True when a pending move could start now (a worker is about to take it).
  bool startable(int64_t now) {
    for (size_t i : pending) {
      if (auto r = retry_at.find(i); r != retry_at.end() && r->second > now) continue;
      const ServerRun& from = server(rep.moves[i].from);
      const ServerRun& to = server(rep.moves[i].to);
      if (from.skipped || to.skipped || watching.count(i) ||
          (from.busy_out < from.slots.out && to.busy_in < to.slots.in && !full(out_full_until, rep.moves[i].from, now) &&
           !full(in_full_until, rep.moves[i].to, now)))
        return true;
    }
    return false;
  }

  // A failed move, as record() will count it (the health check runs before).
  static bool failed(const Result<MoveRecord>& r) {
    if (!r.ok()) return r.error().code() != ErrorCode::kConflict && r.error().code() != ErrorCode::kInvalidInput;
    return r->state != MoveState::kDone;
  }

  // Gives a taken move's slots back (it did not run or ran elsewhere).
  void release(size_t i) {
    MoveOutcome& m = rep.moves[i];
    --rep.running;
    if (probing.erase(i)) return;
    --server(m.from).busy_out;
    --server(m.to).busy_in;
  }

  // Shared nights: a taken move goes back to the queue, in plan order, to be
  // taken again at `when`.
  void requeue(size_t i, int64_t when) {
    release(i);
    if (stopping) {
      rep.moves[i].result = MoveResult::kNotStarted;
      rep.moves[i].reason = "not started: " + rep.stop_reason;
      return;
    }
    auto it = pending.begin();
    while (it != pending.end() && *it < i) ++it;
    pending.insert(it, i);
    retry_at[i] = when;
  }

  // Shared nights: moves that ended (here or in another process) freed their
  // slots, and may be moves that waiting moves watch: what waits for them is
  // tried now instead of at its retry time. True when anything became due.
  bool moves_ended(const std::vector<EndedMove>& ended, int64_t now) {
    bool due = false;
    for (const auto& e : ended) {
      due |= out_full_until.erase(e.from_server) > 0;
      due |= in_full_until.erase(e.to_server) > 0;
    }
    for (size_t i : pending) {
      auto r = retry_at.find(i);
      if (r == retry_at.end() || r->second <= now) continue;
      const MoveOutcome& m = rep.moves[i];
      auto w = watching.find(i);
      for (const auto& e : ended) {
        if (w != watching.end() ? e.id == w->second : e.from_server == m.from || e.to_server == m.to) {
          r->second = now;
          due = true;
          break;
        }
      }
    }
    return due;
  }

  // Shared nights: the move ran elsewhere (another controller's move `rec`).
  void record_elsewhere(size_t i, const MoveRecord& rec) {
    record_elsewhere(i, rec.id, rec.state, rec.error);
  }
  void record_elsewhere(size_t i, int64_t id, MoveState state, const std::string& error) {
    release(i);
    MoveOutcome& m = rep.moves[i];
    m.result = MoveResult::kSkipped;
    m.elsewhere = true;
    m.move_id = id;
    m.state = std::string(move_state_name(state));
    m.reason = fmt::format("run by another controller: move {}, {}{}", id, m.state,
                           error.empty() || state == MoveState::kDone ? "" : ": " + error);
    spdlog::info("rebalance: {} {} -> {}: {}", printable(m.user), m.from, m.to, m.reason);
  }

  void record(size_t i, const Result<MoveRecord>& r, int64_t started, int64_t finished, const Status& health) {
    MoveOutcome& m = rep.moves[i];
    ServerRun& from = server(m.from);
    ServerRun& to = server(m.to);
    release(i);
    m.started_at_ms = started;
    m.finished_at_ms = finished;
    from.out_ms += finished - started;
    to.in_ms += finished - started;
    if (!r.ok()) {
      // The move never started: a re-check against the plan said no
      // (conflict, invalid) or a server could not be reached (failed).
      m.reason = r.error().message();
      bool skip = r.error().code() == ErrorCode::kConflict || r.error().code() == ErrorCode::kInvalidInput;
      m.result = skip ? MoveResult::kSkipped : MoveResult::kFailed;
    } else {
      m.move_id = r->id;
      m.state = std::string(move_state_name(r->state));
      m.bytes_transferred = r->bytes_transferred;
      m.lockout_ms = r->lockout_ms;
      m.result = r->state == MoveState::kDone ? MoveResult::kDone : MoveResult::kFailed;
      m.reason = m.result == MoveResult::kDone ? "" : r->error.empty() ? "ended in state " + m.state : r->error;
    }
    if (m.result == MoveResult::kDone) {
      ++from.done;
      ++to.done;
      from.bytes_out += m.bytes_transferred;
      to.bytes_in += m.bytes_transferred;
    }
    // A move the hard stop rolled back says nothing about its servers, nor
    // does one that failed because the directory went away.
    if (!health.ok()) {
      rep.deadline_reached = true;
      stop(health.error().message());
    } else if (m.result == MoveResult::kFailed && !rep.hard_stopped) {
      count_failure(from, to);
    }
    spdlog::info("rebalance: {} {} -> {}: {}{}", printable(m.user), m.from, m.to, move_result_name(m.result),
                 m.reason.empty() ? "" : " (" + m.reason + ")");
  }

  // A failure counts against both servers; a server that reaches the limit
  // is skipped. Failures whose other end is already skipped do not count: a
  // dead server must not take its healthy partners down with it.
  void count_failure(ServerRun& a, ServerRun& b) {
    if (o_.max_server_failures <= 0) return;
    if (!b.skipped) ++a.failures;
    if (!a.skipped) ++b.failures;
    bool skip_a = !a.skipped && a.failures >= o_.max_server_failures;
    bool skip_b = !b.skipped && b.failures >= o_.max_server_failures;
    if (skip_a && skip_b) {
      // Both reached the limit on this move: so far they failed only with
      // each other. The one that has done moves with other servers is the
      // healthy one; with no way to tell, both are skipped.
      if (a.done > b.done) skip_a = false;
      else if (b.done > a.done) skip_b = false;
    }
    for (ServerRun* s : {&a, &b}) {
      if (!(s == &a ? skip_a : skip_b)) continue;
      s->skipped = true;
      spdlog::warn("rebalance: server {} failed {} moves; skipping its remaining moves this run", s->name, s->failures);
    }
  }

  // Stops starting moves: every pending move is reported as not started.
  void stop(const std::string& why) {
    if (!stopping) spdlog::info("rebalance: {}: no more moves start; running moves finish", why);
    stopping = true;
    if (rep.stop_reason.empty()) rep.stop_reason = why;
    for (size_t i : pending) {
      rep.moves[i].result = MoveResult::kNotStarted;
      rep.moves[i].reason = "not started: " + why;
      if (auto w = watching.find(i); w != watching.end())
        rep.moves[i].reason += fmt::format(" (its user is in move {}, held by another process)", w->second);
    }
    pending.clear();
    cv.notify_all();
  }

  // AIMD on one server's slots after a sample.
  void adjust(ServerRun& s, const Result<LoadSample>& sample) {
    ++s.samples;
    if (!sample.ok()) {
      ++s.sample_errors;
      spdlog::warn("rebalance: cannot read the load of {}: {}; its slots stay at {} out, {} in", s.name,
                   sample.error().message(), s.slots.out, s.slots.in);
      return;
    }
    s.last = *sample;
    std::string over;
    if (o_.max_load_per_cpu > 0 && sample->load_per_cpu > o_.max_load_per_cpu)
      over = fmt::format("load {:.2f} per CPU > {:.2f}", sample->load_per_cpu, o_.max_load_per_cpu);
    else if (o_.max_disk_busy > 0 && sample->disk_busy > o_.max_disk_busy)
      over = fmt::format("disk busy {:.0f}% > {:.0f}%", 100 * sample->disk_busy, 100 * o_.max_disk_busy);
    ServerSlots before = s.slots;
    if (!over.empty()) {
      s.slots.out /= 2;
      s.slots.in /= 2;
      if (before.out == s.slots.out && before.in == s.slots.in) return;  // paused already
      ++s.backoff_events;
      ++rep.backoff_events;
      spdlog::info("rebalance: {}: {}: slots {}/{} -> {}/{} (out/in){}", s.name, over, before.out, before.in,
                   s.slots.out, s.slots.in, s.slots.out + s.slots.in == 0 ? "; paused" : "");
    } else {
      s.slots.out = std::min(s.max.out, s.slots.out + 1);
      s.slots.in = std::min(s.max.in, s.slots.in + 1);
      if (before.out == s.slots.out && before.in == s.slots.in) return;
      spdlog::info("rebalance: {}: load back under the limits: slots {}/{} -> {}/{} (out/in)", s.name, before.out,
                   before.in, s.slots.out, s.slots.in);
    }
  }

  void summarize() {
    rep.done = rep.failed = rep.skipped = rep.not_started = rep.elsewhere = rep.elsewhere_done = 0;
    rep.bytes_transferred = 0;
    std::vector<int64_t> lockouts;
    for (const auto& m : rep.moves) {
      switch (m.result) {
        case MoveResult::kDone: ++rep.done; break;
        case MoveResult::kFailed: ++rep.failed; break;
        case MoveResult::kSkipped:
          ++rep.skipped;
          rep.elsewhere += m.elsewhere;
          rep.elsewhere_done += m.elsewhere && m.state == "done";
          break;
        case MoveResult::kNotStarted: ++rep.not_started; break;
      }
      rep.bytes_transferred += m.bytes_transferred;
      if (m.result == MoveResult::kDone && m.lockout_ms >= 0) lockouts.push_back(m.lockout_ms);
    }
    // Moves running or still queued are counted as not started until they end.
    rep.not_started -= rep.running;
    rep.lockout_p50_ms = percentile(lockouts, 0.5);
    rep.lockout_p95_ms = percentile(lockouts, 0.95);
    rep.lockout_max_ms = lockouts.empty() ? -1 : *std::max_element(lockouts.begin(), lockouts.end());
  }

 private:
  const ExecutionOptions& o_;
};

}  // namespace

std::string_view move_result_name(MoveResult r) {
  switch (r) {
    case MoveResult::kDone: return "done";
    case MoveResult::kFailed: return "failed";
    case MoveResult::kSkipped: return "skipped";
    case MoveResult::kNotStarted: return "not_started";
  }
  return "?";
}

Result<ExecutionReport> execute_plan(const Plan& plan, const ExecutionOptions& options, const MoveFnFactory& factory,
                                     Clock& clock) {
  MoveWorkerFactory workers = [&factory]() -> Result<MoveWorker> {
    MoveWorker w;
    w.move = MS_TRY(factory());
    return w;
  };
  return execute_plan(plan, options, workers, clock);
}

Result<ExecutionReport> execute_plan(const Plan& plan, const ExecutionOptions& options, const MoveWorkerFactory& factory,
                                     Clock& clock) {
  if (options.shared && options.plan_id <= 0)
    return Error::invalid("a shared night needs the plan's journal id (its controllers share its moves)");
  Run run(options);
  ExecutionReport& rep = run.rep;
  rep.night = options.night;
  rep.started_at_ms = clock.now_ms();
  auto server_name = [&](int32_t id) -> std::string {
    return id >= 0 && static_cast<size_t>(id) < plan.servers.size() && !plan.servers[id].name.empty()
               ? plan.servers[id].name
               : std::to_string(id);
  };
  auto add_server = [&](const std::string& name) {
    if (rep.servers.count(name)) return;
    ServerRun s;
    s.name = name;
    auto it = options.slots.find(name);
    if (it != options.slots.end()) s.max = it->second;
    s.max.out = std::max(0, s.max.out);
    s.max.in = std::max(0, s.max.in);
    s.slots = s.max;
    rep.servers.emplace(name, s);
  };
  for (const auto& m : plan.moves) {
    if (options.night != 0 && m.night != options.night) continue;
    if (m.user_name.empty())
      return Error::invalid(
          "the plan has no user names (it was made from a generated fleet); only plans of the live fleet can be executed");
    MoveOutcome o;
    o.user = m.user_name;
    o.from = server_name(m.from);
    o.to = server_name(m.to);
    o.bytes_planned = m.bytes;
    add_server(o.from);
    add_server(o.to);
    rep.moves.push_back(std::move(o));
  }
  for (size_t i = 0; i < rep.moves.size(); ++i) run.pending.push_back(i);

  // As many workers as moves could ever run at once.
  int64_t out_total = 0, in_total = 0;
  for (const auto& [name, s] : rep.servers) {
    out_total += s.max.out;
    in_total += s.max.in;
  }
  int64_t nworkers = std::min({out_total, in_total, static_cast<int64_t>(rep.moves.size())});
  if (options.max_parallel > 0) nworkers = std::min<int64_t>(nworkers, options.max_parallel);
  if (nworkers <= 0 && !rep.moves.empty()) {
    for (size_t i : run.pending) rep.moves[i].reason = "not started: no server has a free slot (max_moves_out/in are 0)";
    run.pending.clear();
  }

  const int64_t retry_ms = std::max<int64_t>(options.shared_retry_ms, 1);
  // options.threads = 0: a worker thread per move that may run at once, each
  // carrying one move. N: at most N threads, each carrying its share of the
  // moves that may run at once, a stretch at a time (MoveTask).
  const int64_t nthreads = options.threads > 0 ? std::min<int64_t>(nworkers, options.threads) : nworkers;
  const int64_t per_thread = nthreads > 0 ? (nworkers + nthreads - 1) / nthreads : 0;
  // A move a worker carries: its task, and what its claim hook learned.
  struct Carried {
    size_t i = 0;
    std::string user, to;
    std::optional<SlotClaim> claim;
    std::optional<Error> claim_error;
    std::unique_ptr<MoveTask> task;
    int64_t started = 0;
  };
  auto worker = [&]() {
    auto fn = factory();
    std::unique_lock lock(run.mu);
    if (fn.ok() && options.shared && (!fn->resume || !fn->list_moves))
      fn = Error::internal("a shared night's workers must be able to resume another controller's moves");
    if (!fn.ok()) {
      run.worker_errors.push_back(fn.error().message());
      run.cv.notify_all();
      return;
    }
    std::deque<std::unique_ptr<Carried>> carried;
    while (true) {
      // Take moves while this worker has room for them.
      while (static_cast<int64_t>(carried.size()) < per_thread && !run.pending.empty()) {
        // The deadline holds between two moves of one worker too (the
        // caller's thread only looks at the clock every poll interval).
        if (options.deadline_ms > 0 && clock.now_ms() >= options.deadline_ms) {
          rep.deadline_reached = true;
          run.stop(deadline_reason(options.deadline_ms));
          break;
        }
        size_t i;
        if (!run.take(i, clock.now_ms())) break;
        if (auto w = run.watching.find(i); w != run.watching.end()) {
          MoveOutcome& m = rep.moves[i];
          // Shared: the user is in another process's move; recover it if
          // nobody holds it any more.
          const int64_t other = w->second;
          lock.unlock();
          int64_t started = clock.now_ms();
          auto t = fn->resume(other);
          int64_t finished = clock.now_ms();
          lock.lock();
          if (!t.ok() && t.error().code() == ErrorCode::kConflict) {
            run.requeue(i, clock.now_ms() + retry_ms);  // a live process runs it: look again later
          } else if (!t.ok()) {
            run.record(i, std::move(t).error().context(fmt::format("resume move {} of another controller", other)),
                       started, finished, {});
          } else {
            if (t->resumed) {
              ++rep.taken_over;
              spdlog::info("rebalance: {}: resumed move {} (no process held it): {}", printable(m.user), other,
                           move_state_name(t->move.state));
            }
            if (t->resumed && t->move.plan_id == options.plan_id && t->move.state == MoveState::kDone) {
              run.watching.erase(i);
              run.record(i, t->move, started, finished, {});
            } else if (t->resumed || t->move.plan_id != options.plan_id) {
              // Rolled back here, or a move of something else: the user is free
              // now (or in yet another move): claim it for this plan again.
              run.watching.erase(i);
              run.requeue(i, clock.now_ms());
            } else if (!is_terminal(t->move.state)) {
              run.requeue(i, clock.now_ms() + retry_ms);
            } else {
              run.watching.erase(i);
              run.record_elsewhere(i, t->move);
            }
          }
          run.cv.notify_all();
          continue;
        }
        MoveOutcome& m = rep.moves[i];
        auto c = std::make_unique<Carried>();
        c->i = i;
        c->user = m.user;
        c->to = m.to;
        MoveOptions mo = options.move;
        mo.plan_id = options.plan_id;
        mo.bytes_planned = m.bytes_planned;
        mo.expected_from = m.from;
        // Shared: the journal claims within the slots of every controller,
        // this run's slots (after back-off) as the limits.
        if (options.shared) {
          const SlotLimits limits{run.server(m.from).slots.out, run.server(m.to).slots.in};
          Carried* cp = c.get();
          mo.claim = [cp, limits](Journal& j, const MoveRecord& rec) -> Result<int64_t> {
            auto got = j.claim_move_in_slots(rec, limits);
            if (!got.ok()) {
              cp->claim_error = got.error();
              return std::move(got).error();
            }
            cp->claim = *got;
            if (got->outcome == ClaimOutcome::kClaimed) return got->move_id;
            return Error::conflict(got->message);
          };
        }
        c->task = fn->start ? fn->start(c->user, c->to, mo) : one_stretch(fn->move, c->user, c->to, mo);
        c->started = clock.now_ms();
        carried.push_back(std::move(c));
      }
      if (carried.empty()) {
        if (run.pending.empty()) return;
        run.cv.wait(lock);
        continue;
      }
      // The next stretch of the move that waited longest, of those due (a
      // move in its sweep's settle pause is not).
      const int64_t now = clock.now_ms();
      auto due = std::find_if(carried.begin(), carried.end(),
                              [now](const auto& x) { return x->task->not_before_ms() <= now; });
      if (due == carried.end()) {
        int64_t wake = INT64_MAX;
        for (const auto& x : carried) wake = std::min(wake, x->task->not_before_ms());
        lock.unlock();
        clock.sleep_ms(std::clamp<int64_t>(wake - now, 1, std::max<int64_t>(options.poll_interval_ms, 1)));
        lock.lock();
        continue;
      }
      std::unique_ptr<Carried> c = std::move(*due);
      carried.erase(due);
      lock.unlock();
      if (!c->task->advance()) {
        lock.lock();
        carried.push_back(std::move(c));
        continue;
      }
      const size_t i = c->i;
      const std::string& user = c->user;
      const std::string& to = c->to;
      auto r = c->task->result();
      c->task.reset();
      int64_t finished = clock.now_ms();
      Status health;
      if (options.health && Run::failed(r)) health = options.health();
      std::optional<MoveRecord> done_elsewhere, active_elsewhere;
      if (options.shared && !c->claim && !c->claim_error && !r.ok() && r.error().code() == ErrorCode::kConflict) {
        MoveFilter f;
        f.user = user;
        if (auto ms = fn->list_moves(f); ms.ok()) {
          for (const auto& x : *ms) {  // newest first
            if (!is_terminal(x.state)) {
              active_elsewhere = x;
              break;
            }
            if (x.plan_id == options.plan_id && x.state == MoveState::kDone && x.to_server == to) {
              done_elsewhere = x;
              break;
            }
          }
        } else {
          spdlog::warn("rebalance: {}: the journal's moves of the user: {}", printable(user), ms.error().message());
        }
      }
      lock.lock();
      MoveOutcome& m = rep.moves[i];
      if (active_elsewhere) {
        run.watching[i] = active_elsewhere->id;
        run.requeue(i, clock.now_ms());
      } else if (done_elsewhere) {
        run.record_elsewhere(i, *done_elsewhere);
      } else if (c->claim_error) {
        // Without the journal no controller can claim anything: the night
        // stops here (running moves finish or roll back as they can).
        run.release(i);
        m.result = MoveResult::kNotStarted;
        m.reason = "not started: the journal cannot claim moves: " + c->claim_error->message();
        rep.deadline_reached = true;
        run.stop("the journal cannot claim moves: " + c->claim_error->message());
      } else if (c->claim && c->claim->outcome == ClaimOutcome::kClaimed && !r.ok() &&
                 r.error().code() == ErrorCode::kConflict &&
                 r.error().message().find("by another process") != std::string::npos && m.lost_claims < 3) {
        // Another controller took the fresh claim over before this run's
        // lease (it saw a move nobody held): claim the user again; it is
        // then in that controller's hands or free. (Bounded: a claim that
        // keeps being lost is reported like any refusal.)
        ++m.lost_claims;
        run.requeue(i, clock.now_ms());
      } else if (c->claim && c->claim->outcome == ClaimOutcome::kSlotsFull) {
        ++m.slot_waits;
        const int64_t until = clock.now_ms() + retry_ms;
        (c->claim->source_full ? run.out_full_until[m.from] : run.in_full_until[m.to]) = until;
        run.requeue(i, until);
      } else if (c->claim && c->claim->outcome == ClaimOutcome::kDoneAlready) {
        run.record_elsewhere(i, c->claim->move_id, MoveState::kDone, "");
      } else if (c->claim && c->claim->outcome == ClaimOutcome::kUserBusy) {
        // First look after a retry interval: a move claimed a moment ago is
        // usually one whose controller is about to take its lease.
        run.watching[i] = c->claim->move_id;
        run.requeue(i, clock.now_ms() + retry_ms);
      } else {
        run.record(i, r, c->started, finished, health);
        // Its slots in the journal are free: moves of this run waiting for
        // them need not wait for their retry time.
        if (options.shared && r.ok() && is_terminal(r->state))
          run.moves_ended({EndedMove{r->id, m.from, m.to}}, clock.now_ms());
      }
      run.cv.notify_all();
    }
  };

  // spdlog builds its registry on first use, inside libspdlog, whose static
  // guard ThreadSanitizer cannot see: build it here, before the workers and
  // the listener log, so that thread creation orders it before their use.
  (void)spdlog::default_logger_raw();

  // Shared nights: moves ending in other processes (their slots, watched
  // moves), as the journal announces them.
  std::atomic<bool> listening{options.shared && options.move_ends != nullptr};
  std::thread listener;
  if (listening) {
    listener = std::thread([&] {
      while (listening) {
        auto ended = options.move_ends->wait(retry_ms);
        if (!ended.ok()) {
          spdlog::warn("rebalance: {}; waiting moves are tried again every {} ms", ended.error().message(), retry_ms);
          return;
        }
        if (ended->empty()) continue;
        std::lock_guard lock(run.mu);
        if (run.moves_ended(*ended, clock.now_ms())) run.cv.notify_all();
      }
    });
  }

  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(std::max<int64_t>(nthreads, 0)));
  for (int64_t t = 0; t < nthreads; ++t) threads.emplace_back(worker);

  // The caller's thread: clock, stops, load samples, progress.
  const int64_t interval = std::max<int64_t>(options.sample_interval_ms, 1);
  int64_t next_sample = options.sampler ? rep.started_at_ms + interval : INT64_MAX;
  int64_t next_progress = 0;
  bool hard_done = false;
  {
    std::unique_lock lock(run.mu);
    while (true) {
      const int64_t now = clock.now_ms();
      StopLevel level = StopLevel::kNone;
      std::string why;
      if (options.stop) {
        lock.unlock();
        StopRequest req = options.stop();
        lock.lock();
        level = req.level;
        if (level != StopLevel::kNone) why = req.why.empty() ? "a stop was requested" : req.why;
      }
      if (options.hard_deadline_ms > 0 && now >= options.hard_deadline_ms) {
        level = StopLevel::kHard;
        why = fmt::format("the hard deadline {} passed", format_time_ms(options.hard_deadline_ms));
      } else if (level == StopLevel::kNone && options.deadline_ms > 0 && now >= options.deadline_ms) {
        level = StopLevel::kSoft;
        why = deadline_reason(options.deadline_ms);
      }
      if (level != StopLevel::kNone) {
        rep.deadline_reached = true;
        run.stop(why);
      }
      if (level == StopLevel::kHard && !hard_done) {
        hard_done = true;
        rep.hard_stopped = true;
        if (rep.running > 0)
          spdlog::warn("rebalance: {}: {} running moves roll back unless they have flipped", why, rep.running);
        if (options.on_hard_stop) {
          lock.unlock();
          options.on_hard_stop();
          lock.lock();
        }
      }
      // Workers leave once the queue is empty; the run ends when they have.
      if (run.pending.empty() && rep.running == 0) break;
      if (!run.worker_errors.empty() && static_cast<int64_t>(run.worker_errors.size()) >= nthreads) {
        run.stop("no worker could start: " + run.worker_errors.front());
        break;
      }

      if (options.sampler && now >= next_sample) {
        // Every server with a running or queued move.
        std::set<std::string> names;
        for (const auto& [name, s] : rep.servers)
          if (!s.skipped && s.busy_out + s.busy_in > 0) names.insert(name);
        for (size_t i : run.pending) {
          if (!run.server(rep.moves[i].from).skipped) names.insert(rep.moves[i].from);
          if (!run.server(rep.moves[i].to).skipped) names.insert(rep.moves[i].to);
        }
        lock.unlock();
        std::vector<std::pair<std::string, Result<LoadSample>>> samples;
        for (const auto& n : names) samples.emplace_back(n, options.sampler(n));
        lock.lock();
        for (auto& [n, r] : samples) run.adjust(run.server(n), r);
        next_sample = now + interval;
        run.cv.notify_all();
      }
      if (options.on_progress && now >= next_progress) {
        run.summarize();
        ExecutionReport copy = rep;
        lock.unlock();
        options.on_progress(copy);
        lock.lock();
        next_progress = now + std::max<int64_t>(options.progress_interval_ms, 1);
      }

      int64_t next_event = std::min(next_sample, options.on_progress ? next_progress : INT64_MAX);
      // Shared: the next retry of a waiting move (workers wait on the
      // condition variable; this thread wakes them when it is due).
      bool retry_due = false;
      for (size_t i : run.pending)
        if (auto r = run.retry_at.find(i); r != run.retry_at.end()) {
          if (r->second > now) next_event = std::min(next_event, r->second);
          else retry_due = true;
        }
      for (auto* until : {&run.out_full_until, &run.in_full_until})
        for (auto it = until->begin(); it != until->end();) {
          if (it->second > now) {
            next_event = std::min(next_event, it->second);
            ++it;
          } else {
            it = until->erase(it);  // a server's slots may be free again: look
            retry_due = true;
          }
        }
      if (retry_due) run.cv.notify_all();
      if (!run.stopping) {
        if (options.deadline_ms > 0) next_event = std::min(next_event, options.deadline_ms);
      }
      if (options.hard_deadline_ms > 0 && !hard_done) next_event = std::min(next_event, options.hard_deadline_ms);
      int64_t wait = std::clamp<int64_t>(next_event - clock.now_ms(), 0, std::max<int64_t>(options.poll_interval_ms, 1));
      if (rep.running == 0 && !run.startable(clock.now_ms())) {
        // Nothing runs and nothing could start (the workers would have taken
        // it): only time (a sample, a deadline) can change that. A fake
        // clock advances here.
        lock.unlock();
        clock.sleep_ms(std::max<int64_t>(wait, 1));
        lock.lock();
      } else {
        run.cv.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(wait, 1)));
      }
    }
    run.cv.notify_all();
  }
  for (auto& t : threads) t.join();
  if (listener.joinable()) {
    listening = false;
    options.move_ends->wake();
    listener.join();
  }

  if (!run.worker_errors.empty() &&
      std::all_of(rep.moves.begin(), rep.moves.end(), [](const MoveOutcome& o) { return o.started_at_ms == 0; }))
    return Error::unavailable(run.worker_errors.front());
  for (const auto& e : run.worker_errors) spdlog::warn("rebalance: a worker could not start: {}", e);
  for (auto& m : rep.moves)
    if (m.result == MoveResult::kNotStarted && m.reason.empty()) m.reason = "not started";
  run.summarize();
  rep.finished = true;
  rep.finished_at_ms = clock.now_ms();
  return std::move(rep);
}

double schedule_bound_ms(const ExecutionReport& report) {
  double bound = 0;
  for (const auto& [name, s] : report.servers) {
    if (s.max.out > 0) bound = std::max(bound, static_cast<double>(s.out_ms) / s.max.out);
    if (s.max.in > 0) bound = std::max(bound, static_cast<double>(s.in_ms) / s.max.in);
  }
  for (const auto& m : report.moves)
    if (m.started_at_ms > 0) bound = std::max(bound, static_cast<double>(m.finished_at_ms - m.started_at_ms));
  return bound;
}

}  // namespace mailshard
