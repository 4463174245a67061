#!/bin/bash
# The data path benchmark (issue 14): the sync passes of one move of a
# 20k-message user, three ways, in the same run, RUNS times interleaved:
#   local    local -> local (the floor: no agent, no pipe)
#   via      agent -> agent through this process (reader on the source's
#            agent, writer on the destination's: every byte crosses twice)
#   direct   agent -> agent, the destination's agent pulling from the
#            source's (PULL; `sync --direct`)
# The passes, as a move runs them: the initial warm pass, a warm pass after
# a 1% day (gen_maildir.py mutate --pct 1), then the final pass with
# --verify (listings, uidlist headers, hashes of what it wrote).
# Figures: controller bytes = `controller_wire_bytes` of the three passes
# (every protocol byte on this process's pipes, both directions) against
# the mailbox's bytes; wall = the three passes' wall time, medians.
# Targets: direct bytes <= 3% of the mailbox; direct wall <= 1.1x local.
#
# Usage: tests/bench/sync/direct.sh [WORKDIR]
#   env: MAILSHARD=build/mailshard RUNS=3 MESSAGES=20000 GEN=/work/shared/bench/gen_maildir.py
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=${1:-/tmp/direct-bench}
MS=${MAILSHARD:-$REPO/build/mailshard}
RUNS=${RUNS:-3}
N=${MESSAGES:-20000}
GEN=${GEN:-/work/shared/bench/gen_maildir.py}
PY=/usr/bin/python3
[ -x "$MS" ] || { echo "no mailshard binary at $MS" >&2; exit 2; }
[ -f "$GEN" ] || { echo "needs gen_maildir.py (set GEN=...)" >&2; exit 2; }
rm -rf "$W"; mkdir -p "$W/base" "$W/src" "$W/dst"
$PY "$GEN" generate "$W/base/u" --messages "$N" --seed 7 > "$W/gen.json" || exit 1
MAILBOX=$(du -sb "$W/base/u" | cut -f1)
RES=$W/results.txt; : > "$RES"

# pass MODE NAME ARGS...: one sync, appends "MODE wall bytes" for it.
pass() {
  local mode=$1; shift
  local s=$W/src/u d=$W/dst/u extra=()
  case $mode in
    local) ;;
    via) s=agent:$s; d=agent:$d ;;
    direct) s=agent:$s; d=agent:$d; extra=(--direct) ;;
  esac
  local t0 t1
  t0=$(date +%s.%N)
  "$MS" --json sync "$s" "$d" --state "$W/state.$mode" "${extra[@]}" "$@" > "$W/out.json" 2> "$W/err.txt" \
    || { echo "FAILED: $mode $*" >&2; cat "$W/err.txt" >&2; exit 1; }
  t1=$(date +%s.%N)
  local bytes
  bytes=$($PY -c "import json; print(json.load(open('$W/out.json'))['controller_wire_bytes'])")
  echo "$mode $(echo "$t1 - $t0" | bc) $bytes" >> "$W/passes.txt"
}

for run in $(seq 1 "$RUNS"); do
  for mode in local via direct; do
    rm -rf "$W/src/u" "$W/dst/u" "$W/state.$mode"; : > "$W/passes.txt"
    cp -a "$W/base/u" "$W/src/u"; sync
    pass $mode
    $PY "$GEN" mutate "$W/src/u" --pct 1 --day 1 > /dev/null
    pass $mode
    pass $mode --final --verify
    diff -r "$W/src/u" "$W/dst/u" > /dev/null || { echo "FAILED: $mode: the trees differ" >&2; exit 1; }
    awk -v m=$mode '{w += $2; b += $3} END {printf "%s %.3f %d\n", m, w, b}' "$W/passes.txt" | tee -a "$RES"
  done
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { grep "^$1 " "$RES" | awk -v c=$2 '{print $c}' | median; }
lw=$(col local 2); vw=$(col via 2); dw=$(col direct 2)
vb=$(col via 3); db=$(col direct 3)
echo
echo "mailbox: $N messages, $MAILBOX bytes; medians of $RUNS runs (3 passes each)"
printf "%-34s %10s %14s %10s\n" "" "wall s" "ctrl bytes" "of mailbox"
printf "%-34s %10.3f %14s %10s\n" "local -> local" "$lw" "-" "-"
printf "%-34s %10.3f %14d %9.1f%%\n" "agent -> agent via controller" "$vw" "$vb" "$(echo "100 * $vb / $MAILBOX" | bc -l)"
printf "%-34s %10.3f %14d %9.1f%%\n" "agent -> agent direct" "$dw" "$db" "$(echo "100 * $db / $MAILBOX" | bc -l)"
echo "direct wall / local wall: $(echo "$dw / $lw" | bc -l | cut -c1-5) (target <= 1.1)"
echo "direct controller bytes: $(echo "100 * $db / $MAILBOX" | bc -l | cut -c1-5)% of the mailbox (target <= 3%)"
