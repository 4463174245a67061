#!/usr/bin/env bash
# Planner benchmark (issue 4): our `mailshard plan` against the reference
# baseline_planner.py on the scenarios of planner-notes §4.3, in ONE run.
#
#   tests/bench/planner/run.sh [--work DIR] [--bin PATH] [--ref DIR] [--skip-f] [SCENARIO...]
#
#   --work DIR  fleets and results (default $MAILSHARD_BENCH_WORK or
#               /tmp/mailshard-planner-bench). Generated fleets are cached
#               there: ~50 MB per million users; F (10 M users) takes a few
#               minutes to generate the first time.
#   --bin PATH  the mailshard binary (default build/mailshard)
#   --ref DIR   the reference scripts gen_fleet.py, metrics.py,
#               baseline_planner.py (default ../shared/bench = /work/shared/bench)
#   --skip-f    leave out the 10 M x 500 scale point (F)
#   SCENARIO    any of A B C D E F G (default: all)
#
# For every scenario it
#   1. generates the fleet with gen_fleet.py (fixed seeds; cached),
#   2. runs `mailshard plan --snapshot FLEET --csv` (G: and --output) under
#      /usr/bin/time -v (whole process: CSV read, plan, JSON hash, CSV and
#      JSON write; wall time, CPU time and peak RSS; 3 runs, 9 for the
#      small A and G, 1 for F), then once more with --replan-check
#      (same plan hash, CSV and JSON bytes = determinism; planning the
#      applied plan again = hysteresis),
#   3. runs baseline_planner.py on the same fleet as many times, each run
#      right after one of ours (a change of load hits both alike); the
#      speed target is the ratio of the median wall times,
#   4. scores both plans with metrics.py (the judge),
#   5. for B, D and E applies our CSV to the fleet with apply_plan.py and plans
#      the result again with the binary (an external re-plan check),
# and finally prints the ours-vs-baseline table and the issue's target table
# with PASS/FAIL (summarize.py). Exit status 1 if a target fails.
#
# Scenarios (planner-notes §4.3): A 100k x 50 seed 1; B 1M x 200 seed 2;
# C = B with band 1 pp; D 1M x 200 seed 3 with 4 draining; E = B with 20 TiB
# and 150 moves per server per night, no mailbox above 10 GiB, up to 14
# nights; F 10M x 500 seed 4; G 300k x 120 seed 7 with 2 draining, --band
# 0.05 --hard-cap 0.85, --csv and --output (issue 14: a fleet shape other
# than the notes' where the whole process was 4.8x the baseline). Band 5 pp
# and hard cap 0.85 unless stated. The speed target is >= 10x the baseline
# on every scenario.
# Python is /usr/bin/python3 (the python3 on PATH is a slow shim here).
set -euo pipefail

ARGS="$*"
unset MAILSHARD_CONFIG  # --snapshot needs no config; an inherited one must not change the plan
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
WORK="${MAILSHARD_BENCH_WORK:-/tmp/mailshard-planner-bench}"
BIN="$ROOT/build/mailshard"
REF="$(cd "$ROOT/.." && pwd)/shared/bench"
[ -d "$REF" ] || REF=/work/shared/bench
PY=/usr/bin/python3
SKIP_F=0
SCENARIOS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --work) WORK="$2"; shift 2;;
    --bin) BIN="$2"; shift 2;;
    --ref) REF="$2"; shift 2;;
    --skip-f) SKIP_F=1; shift;;
    -h|--help) sed -n '2,40p' "$0"; exit 0;;
    A|B|C|D|E|F|G) SCENARIOS+=("$1"); shift;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2;;
  esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(A B C D E F G)
if [ "$SKIP_F" = 1 ]; then
  keep=(); for s in "${SCENARIOS[@]}"; do [ "$s" = F ] || keep+=("$s"); done; SCENARIOS=("${keep[@]}")
fi
for f in gen_fleet.py metrics.py baseline_planner.py; do
  [ -f "$REF/$f" ] || { echo "run.sh: $REF/$f not found (give --ref DIR)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "run.sh: $BIN not found: build first (cmake -S . -B build && make -C build -j2)" >&2; exit 2; }
PHASES="$(dirname "$BIN")/planner_phase_times"
RES="$WORK/results"
mkdir -p "$WORK" "$RES"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# timed NAME RUNS OUT CMD...: runs CMD (stdout to OUT) RUNS more times under
# /usr/bin/time -v (measure.py --append): wall and CPU times (user + system,
# microsecond rusage), their best and median, and the peak RSS. Several runs,
# for ours and the baseline alike, because the machine is shared.
timed() {
  local name="$1" runs="$2" out="$3"; shift 3
  "$PY" "$HERE/measure.py" --append "$RES/$name" "$runs" "$out" -- "$@"
}

# gen NAME USERS SERVERS SEED DRAIN: the fleet, unless cached with the same arguments.
gen() {
  local dir="$WORK/$1"
  if [ -f "$dir/meta.json" ] && "$PY" - "$dir/meta.json" "$2" "$3" "$4" "$5" <<'PYEOF'
import json, sys
a = json.load(open(sys.argv[1]))["args"]
sys.exit(0 if [a["users"], a["servers"], a["seed"], a["drain"]] == [int(x) for x in sys.argv[2:]] else 1)
PYEOF
  then return; fi
  log "generating $1 ($2 users x $3 servers, seed $4, drain $5)"
  "$PY" "$REF/gen_fleet.py" --users "$2" --servers "$3" --seed "$4" --drain "$5" --out "$dir" > "$RES/gen_$1.json"
}

# scenario SC: sets FLEET, OURS (mailshard plan options), METRICS and BASE
# options, and JSON_OUT=1 when the run also writes the plan JSON (--output).
scenario() {
  JSON_OUT=0
  case "$1" in
    A) FLEET=f100k;   OURS=(--band 0.05); METRICS=(--band 0.05); BASE=(--band 0.05);;
    B) FLEET=f1m;     OURS=(--band 0.05); METRICS=(--band 0.05); BASE=(--band 0.05);;
    C) FLEET=f1m;     OURS=(--band 0.01); METRICS=(--band 0.01); BASE=(--band 0.01);;
    D) FLEET=f1m_drain; OURS=(--band 0.05); METRICS=(--band 0.05); BASE=(--band 0.05);;
    E) FLEET=f1m
       OURS=(--band 0.05 --max-bytes 20TiB --max-moves-per-server 150 --max-move-size 10GiB --nights 14)
       METRICS=(--band 0.05 --max-bytes-tib 20 --max-moves-per-server 150 --max-move-gib 10)
       BASE=(--band 0.05 --max-bytes-tib 20 --max-moves-per-server 150 --max-move-gib 10 --nights 14);;
    F) FLEET=f10m;    OURS=(--band 0.05); METRICS=(--band 0.05); BASE=(--band 0.05);;
    G) FLEET=f300k_drain; JSON_OUT=1
       OURS=(--band 0.05 --hard-cap 0.85); METRICS=(--band 0.05 --hard-cap 0.85); BASE=(--band 0.05 --hard-cap 0.85);;
  esac
}

need() { for s in "${SCENARIOS[@]}"; do case " $* " in *" $s "*) return 0;; esac; done; return 1; }
need A && gen f100k 100000 50 1 0
need B C E && gen f1m 1000000 200 2 0
need D && gen f1m_drain 1000000 200 3 4
need F && gen f10m 10000000 500 4 0
need G && gen f300k_drain 300000 120 7 2

ours() {  # run our planner with env that has no config: --snapshot needs none
  env -u MAILSHARD_CONFIG "$BIN" --log-level warn --json plan --snapshot "$WORK/$FLEET" "${OURS[@]}" "$@"
}

for sc in "${SCENARIOS[@]}"; do
  scenario "$sc"
  runs=3; { [ "$sc" = A ] || [ "$sc" = G ]; } && runs=9; [ "$sc" = F ] && runs=1
  out1=(); out2=()
  [ "$JSON_OUT" = 1 ] && out1=(--output "$RES/$sc.ours.json") && out2=(--output "$RES/$sc.ours2.json")
  log "$sc: mailshard plan (${OURS[*]} ${out1[*]}) and baseline_planner.py (${BASE[*]}), $runs runs each, alternating"
  rm -f "$RES/$sc.ours.measure.json" "$RES/$sc.base.measure.json" "$RES/$sc.ours.time" "$RES/$sc.base.time"
  for ((i = 0; i < runs; i++)); do
    timed "$sc.ours" 1 "$RES/$sc.ours.summary.json" "$BIN" --log-level warn --json plan \
        --snapshot "$WORK/$FLEET" "${OURS[@]}" --csv "$RES/$sc.ours.csv" "${out1[@]}"
    timed "$sc.base" 1 "$RES/$sc.base.json" "$PY" "$REF/baseline_planner.py" --fleet "$WORK/$FLEET" \
        --out "$RES/$sc.base.csv" "${BASE[@]}"
  done
  ours --csv "$RES/$sc.ours2.csv" "${out2[@]}" --replan-check > "$RES/$sc.ours2.summary.json"
  same=same
  cmp -s "$RES/$sc.ours.csv" "$RES/$sc.ours2.csv" || same=differ
  [ "$JSON_OUT" = 1 ] && { cmp -s "$RES/$sc.ours.json" "$RES/$sc.ours2.json" || same=differ; }
  echo "$same" > "$RES/$sc.determinism"
  if [ -x "$PHASES" ] && [ "${OURS[*]}" = "--band 0.05" ] && { [ "$sc" = B ] || [ "$sc" = F ]; }; then
    "$PHASES" "$WORK/$FLEET" 0.05 > "$RES/$sc.phases.json"
  fi
  log "$sc: metrics.py on both plans"
  echo "== $sc ours:     $("$PY" "$REF/metrics.py" --fleet "$WORK/$FLEET" --plan "$RES/$sc.ours.csv" \
      --json "$RES/$sc.ours.metrics.json" "${METRICS[@]}")"
  echo "== $sc baseline: $("$PY" "$REF/metrics.py" --fleet "$WORK/$FLEET" --plan "$RES/$sc.base.csv" \
      --json "$RES/$sc.base.metrics.json" "${METRICS[@]}")"
  case "$sc" in
    B|D|E)
      log "$sc: external re-plan (apply_plan.py, then plan again)"
      "$PY" "$HERE/apply_plan.py" "$WORK/$FLEET" "$RES/$sc.ours.csv" "$WORK/$sc.applied" > /dev/null
      env -u MAILSHARD_CONFIG "$BIN" --log-level warn --json plan --snapshot "$WORK/$sc.applied" "${OURS[@]}" \
          > "$RES/$sc.external_replan.json";;
  esac
done

echo
echo "command: $0 $ARGS   (work dir $WORK, binary $BIN, reference $REF)"
"$PY" "$HERE/summarize.py" "$RES" "${SCENARIOS[@]}"
