#!/usr/bin/env bash
# Builds every libFuzzer target (a clang CMake tree with -DMAILSHARD_FUZZ=ON)
# and runs each for its share of a time budget, then prints one line per
# target: execs, corpus size, coverage, or the crash.
#
# Usage: tests/fuzz/run.sh [TOTAL_SECONDS] [WORKDIR]   (default 210 s, /tmp/mailshard-fuzz)
# Environment: FUZZ_TARGETS  the targets to run (default: all, in the table below)
#              FUZZ_BUILD_DIR  the clang tree (default <repo>/build-fuzz)
#              FUZZ_JOBS  build parallelism (default nproc)
# Seeds come from tests/fuzz/corpus/<target>/ (read only); what a run finds is
# kept in WORKDIR/corpus/<target>/ for the next run, crash inputs in
# WORKDIR/<target>/crash-* (timeout-*, oom-*).
# Exit status: 0 when no target crashed, 1 otherwise (2 on a usage or build error).
set -euo pipefail
TOTAL=${1:-210}
WORK=${2:-/tmp/mailshard-fuzz}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
JOBS=${FUZZ_JOBS:-$(nproc)}

# target  max_len (bytes: a few times the largest realistic input the target reads)
declare -A MAX_LEN=(
  [agent_protocol]=4096  # frames: header + a few entries
  [prometheus]=8192      # a node_exporter page cut to the metrics we read
  [mailbox_files]=4096   # maildirsize (Maildir++ recalculates beyond 5120 B) and file names
  [config]=8192          # a mailshard.toml with a few servers
  [snapshot]=8192        # servers.csv + users.csv + meta.json
  [plan]=8192            # a plan of a few moves
  [sync_state]=4096      # a state of a few directories
  [courier_files]=4096   # a few Courier metadata files and message names
)
ALL=(agent_protocol prometheus mailbox_files config snapshot plan sync_state courier_files)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL[*]}}"
for t in "${TARGETS[@]}"; do
  [[ -n ${MAX_LEN[$t]:-} ]] || { echo "run.sh: unknown fuzz target '$t' (known: ${ALL[*]})" >&2; exit 2; }
done
[[ $TOTAL =~ ^[0-9]+$ ]] || { echo "run.sh: TOTAL_SECONDS '$TOTAL' is not a number" >&2; exit 2; }
PER=$((TOTAL / ${#TARGETS[@]}))
((PER >= 1)) || PER=1

cmake -S "$ROOT" -B "$BUILD" -DMAILSHARD_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null ||
  { echo "run.sh: configuring $BUILD failed" >&2; exit 2; }
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]/%/_fuzz}" >"$BUILD/fuzz-build.log" 2>&1 ||
  { tail -40 "$BUILD/fuzz-build.log" >&2; echo "run.sh: building the fuzz targets failed" >&2; exit 2; }

# UBSan's report with its stack (our frames are printed with the summary).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$WORK/corpus/$t" "$WORK/$t"
  log=$WORK/$t.log
  echo "fuzz $t for ${PER} s (log: $log)"
  rc=0
  "$BUILD/tests/fuzz/${t}_fuzz" -max_total_time="$PER" -max_len="${MAX_LEN[$t]}" -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$WORK/$t/" "$WORK/corpus/$t" "$HERE/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$log" | tail -1 || true)
  if ((rc == 0)) && [[ -n $done_line ]]; then
    corp=$(sed -E 's/.* corp: ([^ ]+).*/\1/' <<<"$done_line")
    cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$done_line")
    rate=$(sed -E 's/.* exec\/s: ([0-9]+).*/\1/' <<<"$done_line")
    summary+=("$(printf '%-15s ok     execs %-9s exec/s %-7s corpus %-12s cov %s' "$t" "${execs:-?}" "$rate" "$corp" "$cov")")
  else
    failed+=("$t")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    what=$(grep -m1 -E '^SUMMARY: |ERROR: libFuzzer: ' "$log" || echo "exit status $rc")
    summary+=("$(printf '%-15s CRASH  execs %-9s %s; input: %s' "$t" "${execs:-?}" "$what" "${artifact:-?}")")
    # The stack's frames in our code, for the report.
    grep -E '^ +#[0-9]+ .* in .*(src|movers|planners)/' "$log" | head -5 >&2 || true
  fi
done

echo
echo "fuzz summary (${PER} s per target; corpus: inputs/bytes):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: ${#failed[@]} target(s) crashed: ${failed[*]} (logs and inputs in $WORK)" >&2
  exit 1
fi
