#!/usr/bin/env bash
# rebalance --dry-run of a 100k-user fleet snapshot with names (issue 10's
# target: <= 5 s, the LDAP read excluded: the snapshot stands in for the
# inventory), against `plan --snapshot` of the same snapshot in the same run
# (the planning alone: the floor of a dry run that plans).
#
# Usage: tests/bench/rebalance/dry_run.sh [OUT_DIR]    (env: USERS=100000 SERVERS=30 RUNS=3)
# Needs ../shared/bench/gen_fleet.py (the reference fleet generator) and build/mailshard.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${1:-/tmp/mailshard-dry-run-bench}
USERS=${USERS:-100000}
SERVERS=${SERVERS:-30}
RUNS=${RUNS:-3}
GEN=$ROOT/../shared/bench/gen_fleet.py
MS=$ROOT/build/mailshard
PY=/usr/bin/python3
[[ -f $GEN ]] || { echo "dry_run.sh: $GEN not found (../shared/bench)" >&2; exit 2; }
[[ -x $MS ]] || { echo "dry_run.sh: build mailshard first (cmake --build build --target mailshard)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT/snap"
$PY "$GEN" --users "$USERS" --servers "$SERVERS" --seed 7 --out "$OUT/snap" >/dev/null
# Names, as `mailshard inventory --save` writes them, and a fresh time stamp.
$PY - "$OUT/snap" "$USERS" "$SERVERS" <<'PYEOF'
import json, sys, time
d, users, servers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
meta = json.load(open(f"{d}/meta.json"))
meta["server_names"] = [f"store{i}" for i in range(servers)]
meta["user_names"] = [f"user{i:06d}@example.org" for i in range(users)]
meta["taken_at_ms"] = int(time.time() * 1000)
meta["source"] = "inventory"
json.dump(meta, open(f"{d}/meta.json", "w"))
PYEOF
echo x >"$OUT/secret" && chmod 600 "$OUT/secret"
{
  printf '[journal]\npath = "%s/journal.sqlite"\n' "$OUT"
  printf '[ldap]\nuri = "ldap://127.0.0.1:1"\nbind_dn = "cn=x"\nbind_password_file = "%s/secret"\nbase_dn = "dc=x"\n' "$OUT"
  for ((i = 0; i < SERVERS; i++)); do printf '[[server]]\nname = "store%d"\nmail_root = "/srv/store%d"\n' "$i" "$i"; done
} >"$OUT/mailshard.toml"

best() { sort -n | head -1; }
time_of() {  # seconds of the fastest of RUNS runs of "$@"
  for ((r = 0; r < RUNS; r++)); do
    local t0=$EPOCHREALTIME
    "$@" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; exit 1; }
    awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }'
  done | best
}
dry=$(time_of "$MS" -c "$OUT/mailshard.toml" --log-level warn rebalance --dry-run --snapshot "$OUT/snap")
plan=$(time_of "$MS" -c "$OUT/mailshard.toml" --log-level warn plan --snapshot "$OUT/snap" --no-journal)
moves=$("$MS" -c "$OUT/mailshard.toml" --log-level warn rebalance --dry-run --snapshot "$OUT/snap" | grep -c '^would move')
[[ ! -e $OUT/journal.sqlite ]] || { echo "dry_run.sh: the dry run created the journal" >&2; exit 1; }
ratio=$(awk -v a="$dry" -v b="$plan" 'BEGIN { printf "%.2f", a / b }')
verdict=$(awk -v a="$dry" 'BEGIN { print (a <= 5) ? 1 : 0 }')
printf 'rebalance --dry-run, %d users, %d servers: %.2f s (%d moves listed); plan --snapshot alone: %.2f s; ratio %s; target <= 5 s: %s\n' \
  "$USERS" "$SERVERS" "$dry" "$moves" "$plan" "$ratio" "$([[ $verdict == 1 ]] && echo PASS || echo FAIL)"
[[ $verdict == 1 ]]
