#include "planners/ordering.h"

#include <algorithm>
#include <numeric>
#include <queue>
#include <utility>

namespace mailshard::planner {

double move_seconds(int64_t bytes, const ExecutionModel& m) {
  return static_cast<double>(bytes) / m.rate_bytes_per_s + m.overhead_s;
}

namespace {

using Event = std::pair<double, size_t>;  // (end time, move index), earliest first
using EventQueue = std::priority_queue<Event, std::vector<Event>, std::greater<>>;

// Execution order of one night's moves (see the header): `night` holds the
// indexes into `all` of its moves, in packing order; returns them in
// execution order. Also sets `makespan` to the simulated end of the night's
// last move.
std::vector<size_t> order_night(const std::vector<PlannedMove>& all, const std::vector<size_t>& night,
                                const ExecutionModel& model, size_t S, double& makespan) {
  const size_t K = night.size();
  makespan = K == 1 ? move_seconds(all[night[0]].bytes, model) : 0.0;
  if (K < 2) return night;
  auto moves = [&](size_t i) -> const PlannedMove& { return all[night[i]]; };
  std::vector<double> dur(K);
  std::vector<double> work(S, 0.0);
  // A server's pending moves, longest first, each with the server at its
  // other end.
  struct Pending {
    uint32_t move;
    int32_t other;
  };
  std::vector<std::vector<Pending>> pending(S);
  for (size_t i = 0; i < K; ++i) {
    const PlannedMove& m = moves(i);
    dur[i] = move_seconds(m.bytes, model);
    const auto a = static_cast<size_t>(m.from), b = static_cast<size_t>(m.to);
    work[a] += dur[i];
    work[b] += dur[i];
    pending[a].push_back({static_cast<uint32_t>(i), m.to});
    pending[b].push_back({static_cast<uint32_t>(i), m.from});
  }
  for (auto& p : pending)
    std::stable_sort(p.begin(), p.end(), [&](const Pending& a, const Pending& b) { return dur[a.move] > dur[b.move]; });
  std::vector<int> free_slots(S, model.slots_per_server);
  std::vector<uint8_t> started(K, 0);
  std::vector<size_t> out;
  out.reserve(K);
  EventQueue running;
  // Pending moves a server looks at per try. A move blocked by a busy partner
  // is started by that partner when it frees a slot, so a short look suffices.
  constexpr size_t kScanLimit = 64;
  double now = 0;
  double last_end = 0;

  // What a try looks at: the first kScanLimit pending moves of a server that
  // have not started. window[s] holds exactly the unstarted moves of
  // pending[s][0, front[s]), in order; a started move leaves the windows of
  // both its servers at once. Most tries find every partner busy, so they
  // read one short array instead of walking the list past started moves.
  std::vector<std::vector<Pending>> window(S);
  std::vector<size_t> front(S, 0);
  auto refill = [&](size_t s) {
    auto& w = window[s];
    const auto& p = pending[s];
    while (w.size() < kScanLimit && front[s] < p.size()) {
      const Pending& e = p[front[s]++];
      if (!started[e.move]) w.push_back(e);
    }
  };
  // Server s fills its free slots with its longest pending moves whose other
  // end has a free slot too.
  auto try_start = [&](size_t s) {
    if (free_slots[s] <= 0) return;
    refill(s);
    auto& w = window[s];
    // Most tries find every partner busy: walk past those without moving
    // anything; the window is compacted only from the first start on.
    size_t i = 0;
    while (i < w.size() && free_slots[static_cast<size_t>(w[i].other)] <= 0) ++i;
    if (i == w.size()) return;
    size_t keep = i;
    for (; i < w.size() && free_slots[s] > 0; ++i) {
      const Pending e = w[i];
      const auto o = static_cast<size_t>(e.other);
      if (free_slots[o] <= 0) {
        w[keep++] = e;
        continue;
      }
      const size_t m = e.move;
      started[m] = 1;
      --free_slots[s];
      --free_slots[o];
      work[s] -= dur[m];
      work[o] -= dur[m];
      out.push_back(m);
      running.emplace(now + dur[m], m);
      last_end = std::max(last_end, now + dur[m]);
      auto& wo = window[o];
      auto at = std::find_if(wo.begin(), wo.end(), [&](const Pending& x) { return x.move == m; });
      if (at != wo.end()) wo.erase(at);
    }
    if (keep < i) w.erase(w.begin() + static_cast<ptrdiff_t>(keep), w.begin() + static_cast<ptrdiff_t>(i));
  };
  // The servers with the most remaining work choose first.
  auto by_work = [&](std::vector<size_t>& v) {
    std::sort(v.begin(), v.end(), [&](size_t a, size_t b) { return work[a] != work[b] ? work[a] > work[b] : a < b; });
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  std::vector<size_t> touched(S);
  std::iota(touched.begin(), touched.end(), size_t{0});
  while (true) {
    by_work(touched);
    for (size_t s : touched) try_start(s);
    touched.clear();
    if (running.empty()) {
      if (out.size() == K) break;
      // Everything blocked by the scan limit: let every server look again.
      size_t before = out.size();
      for (size_t s = 0; s < S; ++s) touched.push_back(s);
      by_work(touched);
      for (size_t s : touched) try_start(s);
      touched.clear();
      if (out.size() == before) break;  // slots < 1: nothing can ever start
      continue;
    }
    now = running.top().first;
    while (!running.empty() && running.top().first <= now) {
      size_t m = running.top().second;
      running.pop();
      for (int32_t s : {moves(m).from, moves(m).to}) {
        ++free_slots[static_cast<size_t>(s)];
        touched.push_back(static_cast<size_t>(s));
      }
    }
    std::sort(touched.begin(), touched.end());
  }
  makespan = last_end;
  // Anything the loop could not start (slots < 1) keeps its given order.
  for (size_t i = 0; i < K; ++i)
    if (!started[i]) out.push_back(i);
  for (size_t& i : out) i = night[i];
  return out;
}

}  // namespace

Schedule schedule_moves(std::vector<PlannedMove> moves, const std::vector<int>& rank, const Constraints& c, size_t S) {
  const size_t K = moves.size();
  const ExecutionModel& model = c.execution;
  // How many moves touch each server over the whole plan: the busiest
  // servers decide the nights, so their moves are packed first.
  std::vector<int64_t> touching(S, 0);
  for (const auto& m : moves) {
    ++touching[static_cast<size_t>(m.from)];
    ++touching[static_cast<size_t>(m.to)];
  }
  // Packing order: urgency, then the busiest end, the largest, the lowest
  // user id. Sorted as compact keys rather than by reaching into the moves
  // at every comparison.
  struct Key {
    int rank;
    int64_t crit, bytes, user;
    size_t i;
  };
  std::vector<Key> keys(K);
  for (size_t i = 0; i < K; ++i) {
    const PlannedMove& m = moves[i];
    keys[i] = {rank[i], std::max(touching[static_cast<size_t>(m.from)], touching[static_cast<size_t>(m.to)]), m.bytes,
               m.user, i};
  }
  std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
    if (a.rank != b.rank) return a.rank < b.rank;
    if (a.crit != b.crit) return a.crit > b.crit;
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    return a.user < b.user;
  });
  std::vector<size_t> idx(K);
  for (size_t k = 0; k < K; ++k) idx[k] = keys[k].i;

  const bool multi = c.nights > 1;
  const double window = kWindowFill * model.night_hours * 3600.0 * model.slots_per_server;
  std::vector<int32_t> night_of(K, 0);
  std::vector<size_t> left = idx;
  for (int night = 1; night <= std::max(1, c.nights) && !left.empty(); ++night) {
    int64_t bytes = 0, count = 0;
    std::vector<int64_t> per_server(S, 0);
    std::vector<double> busy(S, 0.0);
    std::vector<size_t> next;
    for (size_t i : left) {
      const auto& m = moves[i];
      auto a = static_cast<size_t>(m.from), b = static_cast<size_t>(m.to);
      double d = move_seconds(m.bytes, model);
      bool fits = (c.max_bytes <= 0 || bytes + m.bytes <= c.max_bytes) && (c.max_moves <= 0 || count < c.max_moves) &&
                  (c.max_moves_per_server <= 0 ||
                   (per_server[a] < c.max_moves_per_server && per_server[b] < c.max_moves_per_server)) &&
                  (!multi || (busy[a] + d <= window && busy[b] + d <= window) || (busy[a] == 0 && busy[b] == 0));
      if (!fits) {
        next.push_back(i);
        continue;
      }
      night_of[i] = night;
      bytes += m.bytes;
      ++count;
      ++per_server[a];
      ++per_server[b];
      busy[a] += d;
      busy[b] += d;
    }
    if (next.size() == left.size()) break;  // nothing fits any more: the rest is dropped
    left = std::move(next);
  }

  // Nights and orders are worked out on indexes; each move is copied once,
  // into its final place (a plan's moves are 10^4-10^5 structs with a string).
  Schedule out;
  int32_t last = 0;
  for (size_t i = 0; i < K; ++i) last = std::max(last, night_of[i]);
  std::vector<std::vector<size_t>> by_night(static_cast<size_t>(last) + 1);
  // Keep the packing order inside a night as the tie order of the scheduler.
  for (size_t i : idx) {
    if (night_of[i] == 0) {
      out.dropped.push_back(std::move(moves[i]));
      continue;
    }
    moves[i].night = night_of[i];
    by_night[static_cast<size_t>(night_of[i])].push_back(i);
  }
  out.moves.reserve(K - out.dropped.size());
  for (size_t night = 1; night < by_night.size(); ++night) {
    double makespan = 0;
    for (size_t i : order_night(moves, by_night[night], model, S, makespan)) out.moves.push_back(std::move(moves[i]));
    out.night_makespan_s.push_back(makespan);
  }
  return out;
}

}  // namespace mailshard::planner
