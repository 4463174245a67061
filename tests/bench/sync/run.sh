#!/bin/bash
# Sync engine benchmark: `mailshard sync` against cp -a and rsync on the same
# generated trees, in the same run, warm page cache, medians of RUNS runs,
# tools interleaved run by run (the machine is shared; interleaving spreads
# the noise evenly). Prints a table with PASS/FAIL per target of issue 5.
#
# Usage: tests/bench/sync/run.sh [WORKDIR]
#   env: MAILSHARD=build/mailshard  RUNS=3  SIZES="20000 100000"
#        GEN=/work/shared/bench/gen_maildir.py  MBOX_MB=1024  SKIP_MBOX=0
# Needs: gen_maildir.py (generate/mutate), rsync, rdiff, /usr/bin/time, python3.
# WORKDIR (default /tmp/sync-bench) needs ~12 GB free at the 100k size.
#
# What is measured (everything local to local on one filesystem):
#   initial   cp -a SRC DST | rsync -a SRC/ DST/ | mailshard sync SRC DST
#             (ours includes making every file durable: syncfs per batch and
#             the fsync of every directory; cp and rsync do not sync)
#   incr      after `gen_maildir.py mutate --pct 1`: each tool on a fresh
#             `cp -al` of the pre-mutation copy; the whole process of ours
#             (start, state file, pass, durable) also against rsync followed
#             by `sync` (rsync does not sync). Bytes: ours = bodies, tails,
#             block diffs and deltas sent; rsync = --stats "Total bytes sent";
#             reference = new mail bytes + rdiff (librsync defaults) deltas of
#             every changed non-message file.
#   frozen    mutate --new 50 --flag-changes 50 --deletions 0 after the
#             incremental pass; ours = `sync --final` (engine seconds of the
#             pass, and the process wall incl. loading/saving the state file)
#   agent     initial 20k into agent:DST (this binary as agent through a pipe)
#   mbox      1 GiB mbox copied, then 1 MiB appended, then 1 MiB changed in
#             the middle; bytes vs rsync --no-whole-file --stats
#   rss       peak RSS of the initial 100k pass
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=${1:-/tmp/sync-bench}
MS=${MAILSHARD:-$REPO/build/mailshard}
RUNS=${RUNS:-3}
SIZES=${SIZES:-"20000 100000"}
GEN=${GEN:-/work/shared/bench/gen_maildir.py}
PY=/usr/bin/python3
MBOX_MB=${MBOX_MB:-1024}
[ -x "$MS" ] || { echo "no mailshard binary at $MS (build first or set MAILSHARD)" >&2; exit 2; }
[ -f "$GEN" ] || { echo "needs gen_maildir.py (set GEN=...)" >&2; exit 2; }
for t in rsync rdiff /usr/bin/time; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 2; }; done
mkdir -p "$W"
LOG=$W/bench.log
: > "$LOG"
RES=$W/results.txt
: > "$RES"

note() { echo "$*" | tee -a "$LOG" >&2; }
# T NAME CMD...: runs CMD, appends "NAME wall_s maxrss_kb" to $RES.
T() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/.t" "$@" > "$W/.out" 2> "$W/.err"
  local rc=$?
  if [ $rc -ne 0 ]; then note "FAILED ($rc): $*"; cat "$W/.err" >&2; fi
  echo "$name $(cat "$W/.t")" | tee -a "$LOG" >> "$RES"
  return $rc
}
json() { $PY -c "import json,sys; d=json.load(open('$1')); print(eval(sys.argv[1]))" "$2"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
med_of() { grep "^$1 " "$RES" | awk '{print $2}' | median; }
max_rss() { grep "^$1 " "$RES" | awk '{print $3}' | sort -g | tail -1; }
warm() { tar cf /dev/null "$1" 2>/dev/null; }
# Old copies go to a trash directory emptied after the table: deleting 100k
# files takes minutes here (the disk is mounted with discard), and doing it
# between timed runs would load the disk under the next run.
TRASH=$W/trash
mkdir -p "$TRASH"
fresh() { [ -e "$1" ] && mv "$1" "$TRASH/$(basename "$1").$RANDOM$RANDOM"; sync; }
rsync_bytes() { grep "Total bytes sent" "$1" | tr -d ',' | awk '{print $4}'; }

ROWS=()
row() { ROWS+=("$(printf '%-46s %-30s %-22s %s' "$1" "$2" "$3" "$4")"); }
verdict() { $PY -c "import sys; print('PASS' if float(sys.argv[1]) <= float(sys.argv[2]) else 'FAIL')" "$1" "$2"; }
ratio() { $PY -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.3f}' if b else 'nan')" "$1" "$2"; }

note "# mailshard sync benchmark $(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
note "# binary $MS ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)) runs=$RUNS sizes=$SIZES"

for N in $SIZES; do
  B=$W/n$N
  fresh "$B"; mkdir -p "$B"
  note "## generate $N"
  $PY "$GEN" generate "$B/src" --messages "$N" > "$B/gen.json"
  sync
  # --- initial copy -------------------------------------------------------
  for r in $(seq "$RUNS"); do
    fresh "$B/cp"; warm "$B/src"; T "init_cp_$N" cp -a "$B/src" "$B/cp"; T "init_cp_sync_$N" sync; fresh "$B/cp"
    fresh "$B/rs"; warm "$B/src"; T "init_rsync_$N" rsync -a --delete "$B/src/" "$B/rs/"; fresh "$B/rs"
    fresh "$B/ms"; rm -f "$B/ms.state"; warm "$B/src"
    T "init_ours_$N" "$MS" --json sync "$B/src" "$B/ms" --state "$B/ms.state"
    cp "$W/.out" "$B/init_ours_$r.json"
    if [ "$N" = 20000 ]; then
      fresh "$B/ag"; warm "$B/src"
      T "init_agent_$N" "$MS" --json sync "$B/src" "agent:$B/ag" ; fresh "$B/ag"
    fi
    [ "$r" -lt "$RUNS" ] && fresh "$B/ms"
  done
  # The last initial copy (with its state) is the base of the incremental runs.
  "$MS" sync "$B/src" "$B/ms" --state "$B/ms.state" --verify-full > "$B/verify_init.txt" 2>&1 \
    || note "initial copy did not verify: $(cat "$B/verify_init.txt")"
  mv "$B/ms" "$B/base"; cp "$B/ms.state" "$B/base.state"
  sync

  # --- incremental after a 1% day ------------------------------------------
  $PY "$GEN" mutate "$B/src" --pct 1 --day 1 > "$B/mutate1.json"
  delivered=$(json "$B/mutate1.json" "d['delivered_bytes']")
  # Reference metadata deltas: rdiff (librsync defaults) of every changed non-message file.
  ref_meta=0
  while IFS= read -r rel; do
    a="$B/base/$rel"; b="$B/src/$rel"
    if [ -f "$a" ] && ! cmp -s "$a" "$b"; then
      rdiff -f signature "$a" "$W/.sig" && rdiff -f delta "$W/.sig" "$b" "$W/.delta"
      ref_meta=$((ref_meta + $(stat -c %s "$W/.delta")))
    elif [ ! -f "$a" ]; then
      ref_meta=$((ref_meta + $(stat -c %s "$b")))
    fi
  done < <(cd "$B/src" && find . -type f -not -path '*/cur/*' -not -path '*/new/*' -not -path '*/tmp/*' | sed 's|^\./||')
  sync
  for r in $(seq "$RUNS"); do
    fresh "$B/run"; cp -al "$B/base" "$B/run"; cp "$B/base.state" "$B/run.state"; sync; warm "$B/src"; warm "$B/run"
    T "incr_ours_wall_$N" "$MS" --json sync "$B/src" "$B/run" --state "$B/run.state"
    echo "incr_ours_$N $(json "$W/.out" "d['pass']['seconds']") 0" >> "$RES"
    echo "incr_ours_state_$N $(json "$W/.out" "sum(d.get('state_seconds', {}).values())") 0" >> "$RES"
    cp "$W/.out" "$B/incr_ours_$r.json"
    [ "$r" -lt "$RUNS" ] || { mv "$B/run" "$B/base2"; cp "$B/run.state" "$B/base2.state"; }
    fresh "$B/run"; cp -al "$B/base" "$B/run"; sync; warm "$B/src"; warm "$B/run"
    T "incr_rsync_$N" rsync -a --delete --stats "$B/src/" "$B/run/"
    cp "$W/.out" "$B/incr_rsync_$r.txt"
    # rsync leaves its writes to the kernel; ours is durable when it returns.
    T "incr_rsync_sync_$N" sync
  done
  fresh "$B/run"; cp -al "$B/base" "$B/run"; sync
  rsync -a --delete --no-whole-file --stats "$B/src/" "$B/run/" > "$B/incr_rsync_nowhole.txt"
  ours_bytes=$(json "$B/incr_ours_1.json" "d['pass']['bytes_sent']")
  rs_bytes=$(rsync_bytes "$B/incr_rsync_1.txt")
  rs_nw_bytes=$(rsync_bytes "$B/incr_rsync_nowhole.txt")
  note "incr $N: delivered=$delivered ref_meta=$ref_meta ours_bytes=$ours_bytes rsync_bytes=$rs_bytes rsync_nowhole_bytes=$rs_nw_bytes"
  echo "incr_bytes_$N $ours_bytes $delivered $ref_meta $rs_bytes $rs_nw_bytes" >> "$RES"

  # --- frozen pass: 50 new + 50 flag changes since the last pass ------------
  if [ "$N" = 100000 ]; then
    fresh "$B/run"
    $PY "$GEN" mutate "$B/src" --new 50 --flag-changes 50 --deletions 0 --day 2 > "$B/mutate2.json"
    sync
    for r in $(seq "$RUNS"); do
      fresh "$B/run"; cp -al "$B/base2" "$B/run"; cp "$B/base2.state" "$B/run.state"; sync; warm "$B/src"; warm "$B/run"
      T "frozen_ours_wall_$N" "$MS" --json sync "$B/src" "$B/run" --state "$B/run.state" --final
      echo "frozen_ours_pass_$N $(json "$W/.out" "d['pass']['seconds']") 0" >> "$RES"
      cp "$W/.out" "$B/frozen_ours_$r.json"
      fresh "$B/run"; cp -al "$B/base2" "$B/run"; sync; warm "$B/src"; warm "$B/run"
      T "frozen_rsync_$N" rsync -a --delete --stats "$B/src/" "$B/run/"
    done
    # The frozen pass must leave an exact copy: verify it (not timed).
    fresh "$B/run"; cp -a "$B/base2" "$B/run"; cp "$B/base2.state" "$B/run.state"
    "$MS" sync "$B/src" "$B/run" --state "$B/run.state" --final --verify > "$B/frozen_verify.txt" 2>&1 \
      && note "frozen pass verified: $(tail -1 "$B/frozen_verify.txt")" || note "frozen pass FAILED to verify: $(cat "$B/frozen_verify.txt")"
    fresh "$B/run"
  fi
  fresh "$B/base"; fresh "$B/base2"; fresh "$B/run"
  [ "$N" = 20000 ] || fresh "$B/src"
done

# --- mbox: 1 GiB, 1 MiB appended, then 1 MiB changed in the middle ----------
if [ "${SKIP_MBOX:-0}" != 1 ]; then
  M=$W/mbox
  fresh "$M"; mkdir -p "$M/src/mail"
  note "## mbox ${MBOX_MB} MiB"
  head -c $((MBOX_MB << 20)) /dev/urandom > "$M/src/mail/INBOX"
  "$MS" --json sync "$M/src" "$M/ours" --state "$M/ours.state" > "$M/init.json"
  cp -a "$M/ours" "$M/rs"
  sleep 1.1  # a new mtime second: rsync's quick check compares whole seconds
  head -c $((1 << 20)) /dev/urandom >> "$M/src/mail/INBOX"
  T mbox_append_ours "$MS" --json sync "$M/src" "$M/ours" --state "$M/ours.state"
  cp "$W/.out" "$M/append.json"
  T mbox_append_rsync rsync -a --no-whole-file --stats "$M/src/" "$M/rs/"
  cp "$W/.out" "$M/append_rsync.txt"
  sleep 1.1
  dd if=/dev/urandom of="$M/src/mail/INBOX" bs=1M count=1 seek=$((MBOX_MB / 2)) conv=notrunc status=none
  T mbox_mid_ours "$MS" --json sync "$M/src" "$M/ours" --state "$M/ours.state" --verify
  cp "$W/.out" "$M/mid.json"
  T mbox_mid_rsync rsync -a --no-whole-file --stats "$M/src/" "$M/rs/"
  cp "$W/.out" "$M/mid_rsync.txt"
  ma=$(json "$M/append.json" "d['pass']['bytes_sent']"); mm=$(json "$M/mid.json" "d['pass']['bytes_sent']")
  sa=$(json "$M/append.json" "d['pass']['signature_bytes']"); sm=$(json "$M/mid.json" "d['pass']['signature_bytes']")
  ra=$(rsync_bytes "$M/append_rsync.txt"); rm_=$(rsync_bytes "$M/mid_rsync.txt")
  note "mbox: ours append=$ma mid=$mm (signatures back: $sa + $sm); rsync append=$ra mid=$rm_"
  echo "mbox_bytes $ma $mm $ra $rm_ $sa $sm" >> "$RES"
  fresh "$M"
fi

# --- table -------------------------------------------------------------------
note ""
row "case (medians of $RUNS, wall s)" "mailshard" "baseline" "ratio / goal / verdict"
for N in $SIZES; do
  o=$(med_of "init_ours_$N"); c=$(med_of "init_cp_$N"); r=$(med_of "init_rsync_$N")
  row "initial $N vs cp -a" "$o" "$c" "$(ratio "$o" "$c") <= 1.0 $(verdict "$(ratio "$o" "$c")" 1.0)"
  row "initial $N vs rsync -a" "$o" "$r" "$(ratio "$o" "$r") <= 0.8 $(verdict "$(ratio "$o" "$r")" 0.8)"
  cs=$($PY -c "print(round($c + $(med_of "init_cp_sync_$N"), 2))")
  row "  (vs cp -a + sync: ours is durable, info)" "$o" "$cs" "$(ratio "$o" "$cs")"
  read -r _ ob dl rm_meta rb rnw < <(grep "^incr_bytes_$N " "$RES")
  ref=$((dl + rm_meta))
  row "incr $N bytes vs new mail+meta deltas" "$ob" "$ref ($dl+$rm_meta)" "$(ratio "$ob" "$ref") <= 1.2 $(verdict "$(ratio "$ob" "$ref")" 1.2)"
  row "incr $N bytes vs rsync -a --delete" "$ob" "$rb" "$(ratio "$ob" "$rb") <= 0.15 $(verdict "$(ratio "$ob" "$rb")" 0.15)"
  row "  (rsync --no-whole-file bytes, info)" "$ob" "$rnw" "$(ratio "$ob" "$rnw")"
  o=$(med_of "incr_ours_$N"); r=$(med_of "incr_rsync_$N"); ow=$(med_of "incr_ours_wall_$N")
  row "incr $N pass (engine) vs rsync -a --delete" "$o" "$r" "$(ratio "$o" "$r") <= 0.5 $(verdict "$(ratio "$o" "$r")" 0.5)"
  row "  (incr process wall incl. state file)" "$ow" "$r" "$(ratio "$ow" "$r")"
  row "  (incr state file load + save, s, info)" "$(med_of "incr_ours_state_$N")" "-" "-"
  # The same run's rsync and its sync, summed per run before the median.
  rs=$(paste -d' ' <(grep "^incr_rsync_$N " "$RES" | awk '{print $2}') <(grep "^incr_rsync_sync_$N " "$RES" | awk '{print $2}') \
    | awk '{print $1 + $2}' | median)
  row "incr $N process wall vs rsync -a --delete + sync" "$ow" "$rs" "$(ratio "$ow" "$rs") <= 0.5 $(verdict "$(ratio "$ow" "$rs")" 0.5)"
  if [ "$N" = 100000 ]; then
    p=$(med_of "frozen_ours_pass_$N"); wl=$(med_of "frozen_ours_wall_$N"); r=$(med_of "frozen_rsync_$N")
    row "frozen 100k pass (engine) <= 0.3 s" "$p" "-" "$(verdict "$p" 0.3)"
    row "frozen 100k pass vs rsync pass" "$p" "$r" "$(ratio "$p" "$r") <= 0.3 $(verdict "$(ratio "$p" "$r")" 0.3)"
    row "  (frozen process wall incl. state file)" "$wl" "$r" "$(ratio "$wl" "$r")"
    rss=$(max_rss "init_ours_$N")
    row "peak RSS moving 100k (MiB)" "$((rss / 1024))" "256" "$(verdict "$((rss / 1024))" 256)"
  fi
  if [ "$N" = 20000 ]; then
    a=$(med_of "init_agent_$N"); o=$(med_of "init_ours_$N")
    row "agent (pipe) vs local, initial 20k" "$a" "$o" "$(ratio "$a" "$o") <= 1.3 $(verdict "$(ratio "$a" "$o")" 1.3)"
  fi
done
if grep -q "^mbox_bytes" "$RES"; then
  read -r _ ma mm ra rm_ sa sm < <(grep "^mbox_bytes" "$RES")
  row "mbox ${MBOX_MB}MiB +1MiB append +1MiB mid, bytes" "$((ma + mm))" "$((ra + rm_)) (rsync)" "$(ratio $((ma + mm)) $((ra + rm_))) <= 1.05 $(verdict "$(ratio $((ma + mm)) $((ra + rm_)))" 1.05)"
fi
printf '%s\n' "${ROWS[@]}" | tee -a "$LOG"
note "# load at end: $(cut -d' ' -f1-3 /proc/loadavg); raw: $RES, log: $LOG"
rm -rf "$TRASH"
