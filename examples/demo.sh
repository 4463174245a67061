#!/usr/bin/env bash
# The run command (README): on a fresh Debian 12 machine, as root,
#   installs what mailshard needs, builds it, starts a loopback mail lab (slapd, three Dovecot
#   stores, nginx mail proxy, node_exporter on 127.0.0.1), fills it with an uneven fleet, and runs
#   the main job on it: config check, inventory, a dry-run plan with its report, its approval,
#   the nightly rebalance that runs the approved plan (with its run report and metrics file), one
#   on-demand move, and the status of the moves.
#
# Usage: bash examples/demo.sh [--keep]
#   --keep    leave the lab running afterwards (stop it with: bash tests/lab/lab.sh stop DIR)
# Environment: MAILSHARD_DEMO_DIR (default /tmp/mailshard-demo), LAB_PORT_BASE (default 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KEEP=0
case ${1:-} in
  --keep) KEEP=1 ;;
  -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
  "") ;;
  *) echo "demo.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
LAB=${MAILSHARD_DEMO_DIR:-/tmp/mailshard-demo}
export LAB_PORT_BASE=${LAB_PORT_BASE:-10000}
MS="$ROOT/build/mailshard"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "install packages"
bash tests/lab/install-deps.sh

say "build"
# Only what the demo runs (the tests are the other command's business).
if command -v ccache >/dev/null; then export CCACHE_BASEDIR=$ROOT CCACHE_NOHASHDIR=1; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mailshard

say "start the lab in $LAB (ports from $LAB_PORT_BASE)"
bash tests/lab/lab.sh stop "$LAB" >/dev/null 2>&1 || true
rm -rf "$LAB"
bash tests/lab/lab.sh start "$LAB"
if [[ $KEEP == 0 ]]; then trap 'bash "$ROOT/tests/lab/lab.sh" stop "$LAB" >/dev/null' EXIT; fi

say "populate: 300 users over store1..3, real mail on store1 (the fleet starts uneven)"
bash tests/lab/lab.sh populate "$LAB" --users 300
# user00001, user00004, ... are on store1 (round robin). Give eight of them real mailboxes made
# through IMAP (folders, flags, keywords, expunges, a sieve script) and a few LMTP deliveries.
for n in 1 4 7 10 13 16 19 22; do
  u=$(printf 'user%05d@example.org' "$n")
  /usr/bin/python3 tests/lab/fill_mailbox.py --lab "$LAB" --user "$u" --messages 400 --seed "$n" >/dev/null
done
/usr/bin/python3 tests/lab/deliver.py --lab "$LAB" --user user00002@example.org --count 20 --tag demo >/dev/null
# The lab's stores share one disk; pretend each has 96 MiB so the imbalance shows (and keep
# 1 MiB of headroom on a destination instead of the default 1 GiB).
sed 's/^capacity_bytes = .*/capacity_bytes = "96MiB"/' "$LAB/mailshard.toml" >"$LAB/demo.toml"
printf '[move]\nheadroom = "1MiB"\n[rebalance]\nrequire_approval = true\n' >>"$LAB/demo.toml"
export MAILSHARD_CONFIG=$LAB/demo.toml
echo "config: $MAILSHARD_CONFIG"

say "mailshard config check --connect"
"$MS" config check --connect

say "mailshard inventory"
"$MS" inventory --save "$LAB/snapshot"

say "mailshard plan (dry run: nothing moves; the afternoon's report for a person)"
"$MS" plan --output "$LAB/plan.json" --csv "$LAB/plan.csv" --report "$LAB/plan.html"
echo "report: $LAB/plan.html"
HASH=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["plan_hash"])' "$LAB/plan.json")

say "mailshard plan approve (a person read the report)"
"$MS" plan approve "$HASH"
"$MS" plan list --limit 3

say "mailshard rebalance --plan latest (the night: exactly the approved plan, slots per server, a deadline)"
"$MS" rebalance --plan latest --deadline 5h --report "$LAB/night.html" --metrics-file "$LAB/mailshard.prom"

say "mailshard move (one user, on demand)"
"$MS" move user00002@example.org --to store3

say "mailshard status"
"$MS" status --limit 10

say "mailshard inventory (after)"
"$MS" inventory

say "the night's results"
echo "run report:   $LAB/night.html"
echo "metrics file: $LAB/mailshard.prom (for node_exporter's textfile collector)"
grep -E '^mailshard_rebalance_(moves|bytes_moved|last_run_status)' "$LAB/mailshard.prom" | grep -v ' 0$' || true

if [[ $KEEP == 1 ]]; then
  echo
  echo "The lab keeps running. Try: MAILSHARD_CONFIG=$LAB/demo.toml $MS move user00005@example.org --to store3"
  echo "Stop it with: bash tests/lab/lab.sh stop $LAB"
fi
