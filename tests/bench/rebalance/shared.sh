#!/bin/bash
# Shared-night benchmark: one controller vs two (and three) on one PostgreSQL
# journal, the same per-server slots, a 60-move night. Each controller is a
# shared_bench process: execute_plan in shared mode with the journal's real
# slot claims, move leases and fencing, and moves that take MOVE_MS of real
# time and do nothing else (the executor bench's kind of fake move, with a
# duration). A controller runs at most PARALLEL moves at once: its own bound
# (in production, the bytes one controller host carries, since the data passes
# through it); the servers' slots are the fleet's bound.
#
# Usage: tests/bench/rebalance/shared.sh [WORKDIR]
#   env: SHARED_BENCH=build/tests/bench/rebalance/shared_bench  LAB_PORT_BASE=22000
#        MOVES=60 SERVERS=6 SLOTS=2 PARALLEL=6 MOVE_MS=2000
# MOVE_MS 2000: about a lab move's time (tests/integration/rebalance_shared_test.cc: 20 moves of
# ~100 kB users over store1's 2 out slots take ~22 s, 2.2 s a move).
# Starts the lab (tests/lab/lab.sh, for its PostgreSQL) on LAB_PORT_BASE and stops it at the end.
# Needs root (the lab).
#
# The plan: MOVES users, user i from server i % SERVERS to (i + 1) % SERVERS, so each
# server is the source and the destination of MOVES/SERVERS moves. With the defaults the
# slots allow 12 moves at once fleet-wide, one controller 6: the slot bound of the night
# is (MOVES/SERVERS) * MOVE_MS / SLOTS = 10 s, one controller's bound MOVES/PARALLEL *
# MOVE_MS = 20 s.
#
# Checked per run: every user has exactly one done move in the journal, no move is left
# active, and never more than SLOTS moves out of (or into) a server at once over all
# controllers. Target: two controllers' wall time <= 0.6 x one controller's.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=${1:-/tmp/shared-bench}
SB=${SHARED_BENCH:-$REPO/build/tests/bench/rebalance/shared_bench}
BASE=${LAB_PORT_BASE:-22000}
MOVES=${MOVES:-60} SERVERS=${SERVERS:-6} SLOTS=${SLOTS:-2} PARALLEL=${PARALLEL:-6} MOVE_MS=${MOVE_MS:-2000}
PY=/usr/bin/python3
[ -x "$SB" ] || { echo "no shared_bench at $SB (cmake --build build --target shared_bench)" >&2; exit 2; }
LAB=$W/lab
mkdir -p "$W"
trap '"$REPO/tests/lab/lab.sh" stop "$LAB" >/dev/null 2>&1' EXIT
LAB_PORT_BASE=$BASE LAB_SLAPD_DEBUG=0 "$REPO/tests/lab/lab.sh" restart "$LAB" > "$W/lab.out" 2>&1 \
  || { echo "lab start failed: $W/lab.out" >&2; exit 2; }
# shellcheck disable=SC1091
. "$LAB/lab.env"
PW=$(cat "$PG_PASSWORD_FILE")
psql_do() { PGPASSWORD=$PW psql -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U mailshard -d "$1" -c "$2"; }

FAIL=0
# run N: N controllers at once on a fresh database; prints "wall_seconds" and checks the night.
run() {
  local n=$1 db=shared_bench_$1
  psql_do mailshard "DROP DATABASE IF EXISTS $db WITH (FORCE)" && psql_do mailshard "CREATE DATABASE $db" || exit 2
  # The schema and the plan first, so the controllers' clocks start together.
  "$SB" "postgresql://mailshard@127.0.0.1:$PG_PORT/$db" "$PG_PASSWORD_FILE" 1 2 1 1 0 > /dev/null 2>&1
  psql_do "$db" "DELETE FROM moves" > /dev/null
  local t0 t1 pids=() i
  t0=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    "$SB" "postgresql://mailshard@127.0.0.1:$PG_PORT/$db" "$PG_PASSWORD_FILE" "$MOVES" "$SERVERS" "$SLOTS" \
      "$PARALLEL" "$MOVE_MS" > "$W/run$n.$i.json" 2> "$W/run$n.$i.err" &
    pids+=($!)
  done
  local rc=0
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  t1=$(date +%s.%N)
  [ $rc = 0 ] || { echo "run $n: a controller failed: $(cat "$W"/run"$n".*.err)" >&2; FAIL=1; }
  local done_moves users active
  done_moves=$(psql_do "$db" "SELECT count(*) FROM moves WHERE state = 'done'")
  users=$(psql_do "$db" "SELECT count(DISTINCT \"user\") FROM moves WHERE state = 'done'")
  active=$(psql_do "$db" "SELECT count(*) FROM moves WHERE active = 1")
  [ "$done_moves" = "$MOVES" ] && [ "$users" = "$MOVES" ] && [ "$active" = 0 ] \
    || { echo "run $n: $done_moves done moves of $users users, $active active (want $MOVES, $MOVES, 0)" >&2; FAIL=1; }
  $PY - "$SLOTS" "$W"/run"$n".*.json <<'EOF' || FAIL=1
import json, sys
slots = int(sys.argv[1])
ev = {}
done = waits = 0
for f in sys.argv[2:]:
    r = json.load(open(f))
    done += r["done"]; waits += r["slot_waits"]
    for m in r["moves"]:
        for side in ("from", "to"):
            ev.setdefault((side, m[side]), []).extend([(m["start"], 1), (m["end"], -1)])
peak = 0
for k, e in ev.items():
    e.sort(); now = 0
    for _, d in e:
        now += d; peak = max(peak, now)
print(f"  moves done per controller: {[json.load(open(f))['done'] for f in sys.argv[2:]]}, "
      f"claims refused for full slots: {waits}, peak moves per server side: {peak} (slots {slots})")
sys.exit(0 if peak <= slots else 1)
EOF
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}' > "$W/wall$n"
}

echo "shared night: $MOVES moves, $SERVERS servers, slots $SLOTS out / $SLOTS in, a controller runs at most $PARALLEL, moves of $MOVE_MS ms"
for n in 1 2 3; do
  run "$n"
  echo "  $n controller(s): $(cat "$W/wall$n") s"
done
ONE=$(cat "$W/wall1") TWO=$(cat "$W/wall2") THREE=$(cat "$W/wall3")
RATIO=$(awk -v a="$TWO" -v b="$ONE" 'BEGIN { printf "%.3f", a / b }')
BOUND=$(awk -v m="$MOVES" -v s="$SERVERS" -v ms="$MOVE_MS" -v k="$SLOTS" 'BEGIN { printf "%.3f", m / s * ms / 1000 / k }')
echo "two / one = $RATIO (target <= 0.6); slot bound of the night $BOUND s; three controllers $THREE s (the slots bound it)"
awk -v r="$RATIO" 'BEGIN { exit !(r <= 0.6) }' && echo "PASS ratio" || { echo "FAIL ratio"; FAIL=1; }
exit $FAIL
