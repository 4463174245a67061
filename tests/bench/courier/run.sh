#!/usr/bin/env bash
# Courier -> Dovecot move benchmark on the real lab (issue 11's first target), every figure from
# the same moves:
#   1. lockout (freeze -> thaw) of a 20k-message Courier mailbox moved to the Dovecot store2, with
#      50 new messages + 50 flag changes made after the last warm pass: median and p95 over RUNS
#      moves (target: median <= 1.0 s);
#   2. the whole move of each of those mailboxes against `rsync -a` of the same tree (+ sync) plus
#      the conversion (the journal's `convert` step of that same move), warm cache
#      (target: <= 1.5 x (rsync + convert)); rsync runs before and after each move and the
#      faster of the two is the baseline;
#   3. as a second reference, one move of the same tree to the Courier store courier2 (no
#      conversion) with the same changes.
# The mailbox: ../shared/bench/gen_maildir.py generate (20k messages, ~400 MB, 10 folders), made
# Courier's by courier_prep.py courierize (Dovecot's files removed; Courier's own imapd opens
# every folder, which writes courierimapuiddb, and sets keywords and subscriptions), owned by
# dovecot (the lab's mail user), copied once per run. The changes between the last warm pass
# and the freeze go through Courier's side: 50 Maildir deliveries (maildir_deliver.py, routed by
# LDAP) and STORE +FLAGS (\Flagged $Bench) on 50 INBOX messages through Courier's imapd.
#
# The machine's I/O stall time (/proc/pressure/io "full") during each move is printed with it: the
# lab shares its disk with whatever else runs, and fsync-bound steps follow it.
# "Whole move" is the move's wall time minus the time the changes take (the MAILSHARD_TEST_AT
# hook runs between the journal's precopy.end and freeze.begin; it is the user's activity, not
# the mover's); the wall time with it is printed too. The move includes the sweep's settle pause
# (the settle round's sweep runs [move] sweep_settle, 2 s by default, after the flip; the quota
# recount runs in the pause), which is measured in the journal and printed apart.
#
# Usage: tests/bench/courier/run.sh [BUILD_DIR]   env: RUNS (default 5), LAB_PORT_BASE (default 19000),
#        BENCH_DIR (default /tmp/mailshard-bench-courier), SHARED (default ../shared next to the repo),
#        MESSAGES (default 20000), UNSETTLED=1 (the mailbox is left as Courier leaves it right after
#        the keywords were set: the flag-change session before the freeze then renames every keyword
#        update file, ~1,100, and the frozen pass carries those renames), LOG_LEVEL (default warn; each
#        move's log is BENCH_DIR/move-<run>.err: "debug" shows where the convert step's time goes)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
MS=$BUILD/mailshard
RUNS=${RUNS:-5}
MESSAGES=${MESSAGES:-20000}
export LAB_PORT_BASE=${LAB_PORT_BASE:-19000}
export MAILSHARD_BIN=${MAILSHARD_BIN:-$MS}  # the lab's auth_http responder
export LAB_QUOTA=${LAB_QUOTA:-100G}
W=${BENCH_DIR:-/tmp/mailshard-bench-courier}
SHARED=${SHARED:-$ROOT/../shared}
PY=/usr/bin/python3
PREP="$PY $ROOT/tests/bench/courier/courier_prep.py"
[[ -f $SHARED/bench/gen_maildir.py ]] || { echo "run.sh: needs $SHARED/bench/gen_maildir.py" >&2; exit 2; }
LAB=$W/lab
bash "$ROOT/tests/lab/lab.sh" stop "$LAB" >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W"
trap 'bash "$ROOT/tests/lab/lab.sh" stop "$LAB" >/dev/null 2>&1 || true' EXIT
bash "$ROOT/tests/lab/lab.sh" start "$LAB" >/dev/null
# user00001..RUNS move to store2, user RUNS+1 to courier2.
bash "$ROOT/tests/lab/lab.sh" populate "$LAB" --users $((RUNS + 1)) --stores courier1 >/dev/null
. "$LAB/lab.env"
home() { printf '%s/%s/mail/example.org/%s' "$LAB" "$1" "$2"; }   # store user-local-part
user() { printf 'user%05d' "$1"; }

# The Courier stores' config plus the Dovecot store2 (as tests/integration/move_courier_store_test.cc).
CFG=$W/courier-to-dovecot.toml
{ cat "$COURIER_CONFIG"; cat <<EOF

[[server]]
name = "store2"
mail_root = "$STORE2_MAIL_ROOT"
mail_location = "maildir:~/Maildir"
capacity_bytes = 107374182400
doveadm_url = "$STORE2_DOVEADM_URL"
doveadm_password_file = "$DOVEADM_PW_FILE"
transport = "local"
class = "courier"
EOF
} >"$CFG"
JOURNAL=$(sed -n 's/^path = "\(.*\)"$/\1/p' "$CFG" | head -1)

echo "# generating a $MESSAGES-message Courier mailbox"
FIRST=$(home courier1 "$(user 1)")
$PY "$SHARED/bench/gen_maildir.py" generate "$FIRST" --messages "$MESSAGES" >/dev/null
$PREP courierize --lab "$LAB" --user "$(user 1)@example.org" $([ "${UNSETTLED:-0}" = 1 ] && echo --unsettled) >"$W/courierize.json"
cp -a "$FIRST" "$W/template"
for i in $(seq 2 $((RUNS + 1))); do cp -a "$W/template" "$(home courier1 "$(user "$i")")"; done
sync

# One move with the day's changes after the last warm pass; prints
# "lockout_ms wall_ms hook_ms convert_ms sweep_ms final_sync_ms renames sent pause_ms" from the journal
# and the clock (renames, sent: the frozen pass's renames and metadata files sent; pause_ms: from the end
# of the first sweep to the begin of the settle round's sweep, the time the move only waited or
# recounted the quota).
move_one() {  # user-local-part to-store run-number
  local u=$1 to=$2 r=$3
  local hook="precopy.end:run:sh -c '$PY $ROOT/tests/lab/maildir_deliver.py --lab $LAB --user $u@example.org --count 50 --tag r$r >/dev/null && $PREP flags --lab $LAB --user $u@example.org --first $((r * 50 + 1)) --count 50 >/dev/null'"
  local t0 t1
  t0=$(date +%s%N)
  MAILSHARD_TEST_AT=$hook "$MS" -c "$CFG" --log-level "${LOG_LEVEL:-warn}" move "$u@example.org" --to "$to" \
    >/dev/null 2>"$W/move-$r.err"
  t1=$(date +%s%N)
  # A figure without the day's changes would measure an idle final pass: stop instead.
  if grep -q "MAILSHARD_TEST_AT command failed" "$W/move-$r.err"; then
    cat "$W/move-$r.err" >&2
    return 1
  fi
  "$MS" -c "$CFG" --json status "$u@example.org" --limit 1 >"$W/status.json"
  $PY - "$W/status.json" "$JOURNAL" $(((t1 - t0) / 1000000)) <<'PY'
import json, sqlite3, sys
m = json.load(open(sys.argv[1]))[0]
assert m["state"] == "done", m
db = sqlite3.connect(f"file:{sys.argv[2]}?mode=ro", uri=True)
rows = list(db.execute("select step, phase, at from move_steps where move_id = ? order by at, rowid", (m["id"],)))
at = {(s, p): t for s, p, t in rows}
dur = lambda s: at.get((s, "end"), 0) - at.get((s, "begin"), 0)
sweeps = [(p, t) for s, p, t in rows if s == "sweep" and p in ("begin", "end")]
# sweep.begin, sweep.end, sweep.begin (the settle round), ...
pause = sweeps[2][1] - sweeps[1][1] if len(sweeps) >= 3 else 0
hook = at[("freeze", "begin")] - at[("precopy", "end")]
detail = db.execute("select detail from moves where id = ?", (m["id"],)).fetchone()[0]
fp = json.loads(detail or "{}").get("final_pass", {})
print(m["lockout_ms"], sys.argv[3], hook, dur("convert"), dur("sweep"), dur("final_sync"),
      fp.get("renames", -1), fp.get("metadata_sent", -1), pause)
PY
}

io_full_us() {  # the kernel's total time all tasks stalled on I/O (PSI), in microseconds; 0 without PSI
  sed -n 's/^full .*total=\([0-9]*\)$/\1/p' /proc/pressure/io 2>/dev/null || echo 0
}

# Each rsync writes a tree of its own, removed at the end: when each tree was removed (and
# synced) right before the next timed step, those rsyncs took 2-3x as long as the first one
# (docs/courier-benchmark.md).
rsync_ms() {  # home -> ms of rsync -a to a fresh tree, then sync (warm cache)
  tar cf /dev/null "$1" 2>/dev/null
  local t0 t1 to
  to=$(mktemp -d "$W/rsync.XXXXXX")
  t0=$(date +%s%N); rsync -a "$1/" "$to/"; sync; t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

: >"$W/runs.txt"
for r in $(seq "$RUNS"); do
  u=$(user "$r")
  echo "# run $r: $u courier1 -> store2"
  rs=$(rsync_ms "$(home courier1 "$u")")
  tar cf /dev/null "$(home courier1 "$u")" 2>/dev/null
  io0=$(io_full_us)
  read -r lockout wall hook convert sweep final fp_ren fp_sent pause < <(move_one "$u" store2 "$r") || true
  io=$((($(io_full_us) - io0) / 1000))
  # rsync again, of the source the move left (the same tree and the 50 deliveries): the smaller
  # of the two is the baseline, so a burst of other I/O during one rsync's sync cannot flatter the move.
  rs2=$(rsync_ms "$(home courier1 "$u")")
  ((rs2 < rs)) && rs=$rs2
  [ -n "${final:-}" ] || { echo "run.sh: run $r gave no figures (see above)" >&2; exit 1; }
  got=$(find "$(home store2 "$u")/Maildir" \( -path '*/cur/*' -o -path '*/new/*' \) -type f | wc -l)
  [ "$got" -eq $((MESSAGES + 50)) ] || { echo "run.sh: $u has $got messages on store2, want $((MESSAGES + 50))" >&2; exit 1; }
  echo "$lockout $wall $hook $convert $sweep $final $rs $io $fp_ren $fp_sent $pause" | tee -a "$W/runs.txt"
done

u=$(user $((RUNS + 1)))
echo "# reference: $u courier1 -> courier2 (no conversion)"
rs=$(rsync_ms "$(home courier1 "$u")")
tar cf /dev/null "$(home courier1 "$u")" 2>/dev/null
read -r c_lockout c_wall c_hook c_convert c_sweep c_final c_ren c_sent c_pause < <(move_one "$u" courier2 $((RUNS + 1))) || true
[ -n "${c_final:-}" ] || { echo "run.sh: the reference move gave no figures (see above)" >&2; exit 1; }
echo "$c_lockout $c_wall $c_hook $c_convert $c_sweep $c_final $rs" | tee "$W/reference.txt"

rm -rf "$W"/rsync.*
$PY - "$W/runs.txt" "$W/reference.txt" "$MESSAGES" <<'PY'
import statistics, sys
runs = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
ref = list(map(int, open(sys.argv[2]).read().split()))
n = int(sys.argv[3])
def p95(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
med = statistics.median
lock = [r[0] for r in runs]
move = [r[1] - r[2] for r in runs]           # wall minus the changes (hook)
base = [r[6] + r[3] for r in runs]           # rsync + convert, same run
ratio = [m / b for m, b in zip(move, base)]
settle = 2000
print(f"\n| metric ({n // 1000}k-message Courier mailbox -> Dovecot, {len(runs)} moves) | measured | target | |")
print("|---|---|---|---|")
print(f"| lockout, 50 new + 50 flag changes: median | {med(lock)/1000:.3f} s | <= 1.0 s | {'PASS' if med(lock) <= 1000 else 'FAIL'} |")
print(f"| lockout: p95 | {p95(lock)/1000:.3f} s | (<= 2.0 s, as for Dovecot) | {'PASS' if p95(lock) <= 2000 else 'FAIL'} |")
print(f"| whole move vs rsync -a + sync + convert: median of runs | {med(move)/1000:.2f} s vs {med(base)/1000:.2f} s "
      f"({med(ratio):.2f}x) | <= 1.5x | {'PASS' if med(ratio) <= 1.5 else 'FAIL'} |")
print(f"| the same, worst run | {max(ratio):.2f}x | <= 1.5x | {'PASS' if max(ratio) <= 1.5 else 'FAIL'} |")
# The settle round's sweep runs sweep_settle after the flip; the quota recount runs in the pause.
pause = [r[10] for r in runs]
nosettle = [(m - p) / b for m, p, b in zip(move, pause, base)]
print(f"\nthe settle pause (first sweep's end -> the settle round's sweep; 2 s after the flip, quota recount in it): "
      f"{min(pause)}-{max(pause)} ms")
print(f"without it: median {med(nosettle):.2f}x, worst {max(nosettle):.2f}x")
# Issue 6 states the Dovecot move's target as "<= 1.5 x rsync + 2 s" (the pause); issue 11's has no
# "+ 2 s". Printed for comparison only: the table above is issue 11's target as written.
bound = [1.5 * b + settle for b in base]
fits = sum(m <= x for m, x in zip(move, bound))
print(f"in issue 6's form, whole move <= 1.5 x (rsync + convert) + 2 s: {fits} of {len(runs)} moves "
      f"(median {med(move)/1000:.2f} s against {med(bound)/1000:.2f} s)")
print(f"reference, the same tree to courier2 (no conversion): whole move {(ref[1]-ref[2])/1000:.2f} s, "
      f"lockout {ref[0]/1000:.3f} s, rsync {ref[6]/1000:.2f} s")
print("\nper run: lockout_ms wall_ms changes_ms convert_ms sweep_ms final_sync_ms rsync_ms io_stall_ms"
      " final_pass_renames final_pass_metadata_sent pause_ms"
      " -> move_ms / (rsync + convert)\n(io_stall_ms: time with every task of the machine stalled on I/O during the move, /proc/pressure/io 'full')")
for r, m, x in zip(runs, move, ratio):
    print("  " + " ".join(map(str, r)) + f" -> {m} / {r[6] + r[3]} = {x:.2f}x")
PY
