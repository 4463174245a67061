#!/bin/bash
# Many moves in flight in one controller (issue 14): MOVES real moves at once
# (MoveRunner with the real SQLite journal and local transports on small
# generated Maildirs; the directory and the freeze are in-memory fakes, and
# each journaled step waits STEP_MS as if for a remote server), run by
# execute_plan with [rebalance] threads = THREADS, and the same moves with a
# thread per move in flight (threads = 0, the executor before stretches) as
# the baseline, in the same run.
#
# Usage: tests/bench/rebalance/inflight.sh [WORKDIR]
#   env: INFLIGHT_BENCH=build/tests/bench/rebalance/inflight_bench
#        MOVES=200 THREADS=16 SERVERS=100 STEP_MS=5 MESSAGES=20 RUNS=3
# Targets: with THREADS, MOVES moves in flight at once, peak RSS <= 300 MiB,
# peak threads <= 64. Prints each run's figures and the medians.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=${1:-/dev/shm/inflight-bench}  # tmpfs: the journal's fsyncs are not what is measured
IB=${INFLIGHT_BENCH:-$REPO/build/tests/bench/rebalance/inflight_bench}
MOVES=${MOVES:-200} THREADS=${THREADS:-16} SERVERS=${SERVERS:-100} STEP_MS=${STEP_MS:-5}
MESSAGES=${MESSAGES:-20} RUNS=${RUNS:-3}
[ -x "$IB" ] || { echo "no inflight_bench at $IB (cmake --build build --target inflight_bench)" >&2; exit 2; }
mkdir -p "$W"
rc=0
for mode in "$THREADS" 0; do
  for r in $(seq 1 "$RUNS"); do
    line=$("$IB" "$W/run" "$MOVES" "$mode" "$SERVERS" "$STEP_MS" "$MESSAGES") || rc=1
    echo "$line"
    echo "$line" >> "$W/results.$mode"
  done
done
/usr/bin/python3 - "$W" "$THREADS" "$MOVES" <<'PY'
import statistics, sys
w, threads, moves = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(mode):
    out = []
    for line in open(f"{w}/results.{mode}"):
        f = line.split()
        out.append({f[i]: float(f[i + 1]) for i in range(0, len(f) - 1, 2)})
    return out
print(f"{'threads':>8} {'in flight':>10} {'threads seen':>13} {'peak RSS MiB':>13} {'wall s':>7}  (medians)")
for mode in (threads, "0"):
    rs = rows(mode)
    med = lambda k: statistics.median(r[k] for r in rs)
    print(f"{mode:>8} {med('peak_in_flight'):>10.0f} {med('peak_threads'):>13.0f} {med('peak_rss_mib'):>13.1f} {med('wall_s'):>7.2f}")
rs = rows(threads)
ok = all(r["peak_in_flight"] >= moves and r["peak_rss_mib"] <= 300 and r["peak_threads"] <= 64 and r["done"] == moves for r in rs)
print(f"target ({moves} in flight, RSS <= 300 MiB, threads <= 64) with threads = {threads}: {'met' if ok else 'NOT met'}")
PY
rm -f "$W"/results.*
exit $rc
