#!/bin/bash
# Rebalance benchmark: the nightly executor on its own lab (tests/lab/lab.sh on
# LAB_PORT_BASE, default 27000, so it runs beside ctest's lab). Prints the
# figures and a PASS/FAIL per target; exits 1 when a check fails.
#
# Usage: tests/bench/rebalance/run.sh [WORKDIR]
#   env: MAILSHARD=build/mailshard  EXECUTOR_BENCH=build/tests/bench/rebalance/executor_bench
#        LAB_PORT_BASE=27000  USERS=90 (figure 1; two thirds of them move)
# Needs root (the lab), /usr/bin/python3.
#
# Figure 1  60 moves over 3 stores, slots 2/2 per server: the run's wall time
#           (the summary's "seconds") against its schedule bound (no schedule
#           with these slots and these move durations is shorter). Target
#           wall <= 1.25 x bound.
# Figure 2  back-off: store2's metrics_url points at a fake node_exporter
#           (a copy of the real one's filesystem and disk lines, node_load1
#           and node_cpu_seconds_total from this script) whose load is held at
#           10 x CPUs for HOLD_S seconds, then dropped; [rebalance]
#           sample_interval 1s. Counted from the run's log and per-move
#           times: moves into store2 started after its slots reached 0 and
#           before the load dropped (target 0), while store3's moves went on.
# Figure 3  executor_bench 10000 100: the executor's own overhead for 10k
#           moves on 100 servers with instant moves (target <= 1 s).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=${1:-/tmp/rebalance-bench}
MS=${MAILSHARD:-$REPO/build/mailshard}
EB=${EXECUTOR_BENCH:-$REPO/build/tests/bench/rebalance/executor_bench}
PY=/usr/bin/python3
BASE=${LAB_PORT_BASE:-27000}
USERS=${USERS:-90}
HOLD_S=${HOLD_S:-15}
[ -x "$MS" ] || { echo "no mailshard binary at $MS (build first or set MAILSHARD)" >&2; exit 2; }
[ -x "$EB" ] || { echo "no executor_bench at $EB (cmake --build build --target executor_bench)" >&2; exit 2; }
LAB=$W/lab
mkdir -p "$W"
LOG=$W/bench.log
: > "$LOG"
FAIL=0
note() { echo "$*" | tee -a "$LOG" >&2; }
json() { $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }
check() { # NAME VALUE OP LIMIT
  if $PY -c "import sys; sys.exit(0 if float(sys.argv[1]) $3 float(sys.argv[2]) else 1)" "$2" "$4"; then
    note "$(printf '%-60s %-12s %s %-8s PASS' "$1" "$2" "$3" "$4")"
  else
    note "$(printf '%-60s %-12s %s %-8s FAIL' "$1" "$2" "$3" "$4")"; FAIL=1
  fi
}
FAKE_PID=
cleanup() {
  [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
  "$REPO/tests/lab/lab.sh" stop "$LAB" >/dev/null 2>&1
}
trap cleanup EXIT

note "# mailshard rebalance benchmark $(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
note "# binary $MS ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)) lab port base $BASE"
LAB_PORT_BASE=$BASE LAB_SLAPD_DEBUG=0 "$REPO/tests/lab/lab.sh" restart "$LAB" > "$W/lab.out" 2>&1 \
  || { cat "$W/lab.out" >&2; exit 2; }
. "$LAB/lab.env"

# block FIRST N: users userFIRST.. on store1 with 20 messages of ~20 kB each.
block() {
  "$REPO/tests/lab/lab.sh" populate "$LAB" --users "$2" --first "$1" --stores store1 > /dev/null || exit 2
  local i
  for ((i = $1; i < $1 + $2; i++)); do
    $PY "$REPO/tests/lab/deliver.py" --lab "$LAB" --user "user$i" --count 20 --tag seed --size 20000 > /dev/null &
    (( (i - $1) % 4 == 3 )) && wait
  done
  wait
}
# config NAME PREFIX SLOTS EXTRA_REBALANCE [SED...]: the lab's config for one block.
config() {
  local name=$1 prefix=$2 slots=$3 extra=$4; shift 4
  mkdir -p "$W/$name"; rm -rf "$W/$name"/journal.sqlite*
  sed -e "s|filter = \"(objectClass=mlabMailAccount)\"|filter = \"(\&(objectClass=mlabMailAccount)(uid=$prefix*))\"|" \
      -e "s|capacity_bytes = .*|capacity_bytes = \"32MiB\"\nmax_moves_out = $slots\nmax_moves_in = $slots|" \
      -e "s|^path = .*journal.sqlite\"|path = \"$W/$name/journal.sqlite\"|" "$@" "$LAB/mailshard.toml" > "$W/$name.toml"
  printf '\n[move]\nheadroom = "1MiB"\n\n[rebalance]\n%b\n' "$extra" >> "$W/$name.toml"
}
plan() { # NAME -> number of moves
  "$MS" -c "$W/$1.toml" plan --band 0.003 --output "$W/$1/plan.json" > "$W/$1/plan.out" 2>&1 || { cat "$W/$1/plan.out" >&2; exit 2; }
  json "$W/$1/plan.json" "len(d['moves'])"
}
# rebalance NAME: runs the plan; the --json summary (always on stdout) goes
# to $W/NAME/summary.json.
rebalance() {
  "$MS" -c "$W/$1.toml" --json rebalance --plan "$W/$1/plan.json" > "$W/$1/run.out" 2> "$W/$1/run.err"
  local rc=$?
  cp "$W/$1/run.out" "$W/$1/summary.json"
  return $rc
}

# --- Figure 1: wall vs schedule bound ------------------------------------------
note "## figure 1: $USERS users on store1, slots 2/2"
block 61000 "$USERS"
config fig1 user610 2 "max_load_per_cpu = 1000"
n=$(plan fig1)
note "plan: $n moves"
t0=$(date +%s.%N)
rebalance fig1; rc=$?
t1=$(date +%s.%N)
[ $rc -eq 0 ] || { note "figure 1 rebalance exited $rc: $(tail -3 "$W/fig1/run.err")"; FAIL=1; }
wall=$(json "$W/fig1/summary.json" "d['seconds']")
bound=$(json "$W/fig1/summary.json" "round(d['schedule_bound_seconds'], 2)")
done1=$(json "$W/fig1/summary.json" "d['done']")
ratio=$($PY -c "import sys; print(round(float(sys.argv[1]) / float(sys.argv[2]), 3))" "$wall" "$bound")
# The bound recomputed from the per-move times (a check on the reported one).
rebound=$($PY - "$W/fig1/summary.json" <<'EOF'
import json, sys, datetime
d = json.load(open(sys.argv[1]))
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
slots = {s["name"]: s["slots_max"] for s in d["servers"]}
out, inn, longest = {}, {}, 0.0
for m in d["moves"]:
    if not m["started_at"] or not m["finished_at"]: continue
    dur = t(m["finished_at"]) - t(m["started_at"])
    out[m["from"]] = out.get(m["from"], 0) + dur
    inn[m["to"]] = inn.get(m["to"], 0) + dur
    longest = max(longest, dur)
b = max([longest] + [v / slots[k]["out"] for k, v in out.items()] + [v / slots[k]["in"] for k, v in inn.items()])
print(round(b, 2))
EOF
)
note "figure 1: $done1/$n moves done; run ${wall} s (process $($PY -c "print(round($t1 - $t0, 1))") s); schedule bound ${bound} s (recomputed from the moves: ${rebound} s)"
check "fig1 moves done" "$done1" "==" "$n"
check "fig1 wall / schedule bound" "$ratio" "<=" 1.25

# --- Figure 2: back-off on one loaded server -----------------------------------
note "## figure 2: store2's load held at 10 x CPUs for ${HOLD_S} s, sample_interval 1s"
block 62000 30
F=$W/fake
mkdir -p "$F"
curl -s "$NODE_EXPORTER_URL" | grep -E '^node_(filesystem_[a-z_]+|disk_io_time_seconds_total)\{' > "$F/static.prom"
echo 0 > "$F/load"
FAKE_PORT=$((BASE + 190))
cat > "$F/fake_exporter.py" <<'EOF'
#!/usr/bin/python3
# A node_exporter stand-in: the real one's filesystem and disk lines (static),
# plus node_load1 and two CPUs. /metrics reads the load from a file on every
# scrape (the loaded store); /idle/metrics always says 0 (the other stores).
import http.server, sys
static, loadfile, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        load = "0" if self.path.startswith("/idle/") else open(loadfile).read().strip()
        body = open(static).read() + f"node_load1 {load}\n"
        for cpu in (0, 1):
            body += f'node_cpu_seconds_total{{cpu="{cpu}",mode="idle"}} 1000\n'
        b = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
$PY "$F/fake_exporter.py" "$F/static.prom" "$F/load" "$FAKE_PORT" &
FAKE_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$FAKE_PORT/metrics" > /dev/null && break; sleep 0.1; done
# Every store reads the fake: store2 the load this script holds, the others 0
# (this 2-CPU machine's own load under the moves is over 1.5 per CPU, and
# with the real exporter it paused every store, store1 included).
config fig2 user620 2 "sample_interval = \"1s\"\nmax_load_per_cpu = 1.5" \
  -e "s|^metrics_url = .*|metrics_url = \"http://127.0.0.1:$FAKE_PORT/idle/metrics\"|" \
  -e "/^name = \"store2\"/,/^metrics_url/ s|^metrics_url = .*|metrics_url = \"http://127.0.0.1:$FAKE_PORT/metrics\"|"
grep -q "127.0.0.1:$FAKE_PORT" "$W/fig2.toml" || { note "figure 2: the config edit did not apply"; exit 2; }
n2=$(plan fig2)
note "plan: $n2 moves ($(json "$W/fig2/plan.json" "sum(1 for m in d['moves'] if m['to'] == 1)") to store2)"
echo 20 > "$F/load"  # 10 x 2 CPUs
high_at=$(date +%s.%N)
( sleep "$HOLD_S"; echo 0 > "$F/load"; date +%s.%N > "$F/low_at" ) &
TIMER_PID=$!
rebalance fig2; rc2=$?
wait "$TIMER_PID"  # not the fake exporter, which serves until the script ends
low_at=$(cat "$F/low_at")
$PY - "$W/fig2/summary.json" "$W/fig2/run.err" "$high_at" "$low_at" > "$W/fig2/figures.txt" <<'EOF'
import json, sys, datetime, re
d = json.load(open(sys.argv[1])); log = open(sys.argv[2]).read().splitlines()
high, low = float(sys.argv[3]), float(sys.argv[4])
utc = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
local = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f").timestamp()
# The log lines about store2's slots (the back-off is logged at info).
zero_at = first_at = None
# "... info rebalance: store2: load 10.00 per CPU > 1.50: slots 2/2 -> 1/1 (out/in)"
for line in log:
    m = re.search(r"rebalance: store2: .*slots (\d+)/(\d+) -> (\d+)/(\d+)", line)
    if not m: continue
    ts = local(line.split()[0])
    if first_at is None: first_at = ts
    if zero_at is None and int(m.group(4)) == 0: zero_at = ts
moves = [m for m in d["moves"] if m["started_at"]]
into2 = [utc(m["started_at"]) for m in moves if m["to"] == "store2"]
into3 = [utc(m["started_at"]) for m in moves if m["to"] == "store3"]
after_zero = sum(1 for t in into2 if zero_at is not None and zero_at < t < low)
after_first = sum(1 for t in into2 if first_at is not None and first_at < t < low)
during3 = sum(1 for t in into3 if high < t < low)
s2 = next(s for s in d["servers"] if s["name"] == "store2")
backoff_other = sum(s["backoff_events"] for s in d["servers"] if s["name"] != "store2")
print(f"first_backoff_after_s {first_at - high if first_at else 'none'}")
print(f"zero_after_s {zero_at - high if zero_at else 'none'}")
print(f"into2_after_first_sample {after_first}")
print(f"into2_after_zero {after_zero if zero_at else -1}")
print(f"into3_while_high {during3}")
print(f"store2_backoff_events {s2['backoff_events']}")
print(f"other_backoff_events {backoff_other}")
print(f"into2_after_low {sum(1 for t in into2 if t >= low)}")
print(f"done {d['done']} of {len(d['moves'])}")
EOF
cat "$W/fig2/figures.txt" | sed 's/^/figure 2: /' | tee -a "$LOG" >&2
grep -E "store2" "$W/fig2/run.err" | grep -iE "slot|load" | head -8 | sed 's/^/  log: /' | tee -a "$LOG" >&2
f2() { awk -v k="$1" '$1 == k {print $2}' "$W/fig2/figures.txt"; }
check "fig2 rebalance exit" "$rc2" "==" 0
check "fig2 moves into store2 started after its slots reached 0, while loaded" "$(f2 into2_after_zero)" "==" 0
check "fig2 moves into store3 started while store2 was loaded" "$(f2 into3_while_high)" ">=" 1
check "fig2 moves into store2 started after the load dropped" "$(f2 into2_after_low)" ">=" 1

# --- Figure 3: executor overhead ----------------------------------------------
note "## figure 3: executor_bench 10000 100"
t0=$(date +%s.%N)
"$EB" 10000 100 > "$W/fig3.out" 2>&1; rc3=$?
t1=$(date +%s.%N)
sed 's/^/figure 3: /' "$W/fig3.out" | tee -a "$LOG" >&2
check "fig3 executor_bench 10000 100 exit" "$rc3" "==" 0
check "fig3 executor_bench 10000 100 wall (s)" "$($PY -c "print(round($t1 - $t0, 3))")" "<=" 1.0

note "# load at end: $(cut -d' ' -f1-3 /proc/loadavg); log: $LOG"
exit $FAIL
