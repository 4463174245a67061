#!/usr/bin/env bash
# The test command (README, and what CI runs through .ci/run):
#   installs every package the build, the lab and the tests need (Debian 12, as root),
#   builds mailshard, runs every unit and integration test (the integration tests start a
#   real lab on 127.0.0.1 and stop it again), runs the unit and integration tests again in
#   an ASan+UBSan build (its integration tests at the same time as the plain build's, each
#   tree with its own lab) and the threaded unit tests (label tsan) in a TSan build, then
#   runs every libFuzzer target for a bounded time. Exit status 0 only if everything passed.
#
# Environment: BUILD_DIR (default build; the sanitizer trees are BUILD_DIR-asan, BUILD_DIR-tsan),
#              MAILSHARD_LAB_PORT_BASE (default 10000),
#              MAILSHARD_ASAN_LAB_PORT_BASE (the ASan tree's lab; default MAILSHARD_LAB_PORT_BASE + 6000),
#              SANITIZERS (default 1; 0 skips the ASan and TSan trees),
#              FUZZ_SECONDS (default 210, split over the fuzz targets; 0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build}
ASAN_DIR=$BUILD_DIR-asan
TSAN_DIR=$BUILD_DIR-tsan
JOBS=$(nproc)
PORT_BASE=${MAILSHARD_LAB_PORT_BASE:-10000}
# Its own lab, so the two trees' integration runs never share daemons or ports: a lab
# takes base+25 .. base+5425 (three stores and two shared director backends, 1000 apart), so the next free base is +6000.
ASAN_PORT_BASE=${MAILSHARD_ASAN_LAB_PORT_BASE:-$((PORT_BASE + 6000))}
FUZZ_SECONDS=${FUZZ_SECONDS:-210}
# ccache (installed by install-deps.sh; CMakeLists.txt uses it when found): paths
# relative to the checkout and no build directory in the hash, so a fresh clone
# anywhere reuses what an earlier build of the same sources compiled.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
# Sanitizer trees: -O1 (what the sanitizers recommend) and line tables only,
# which compile much faster than -O2 -g and still give file:line stacks.
SAN_FLAGS="-O1 -g1 -DNDEBUG"

# step NAME: starts a step; the previous one's duration goes to the summary.
STEP_NAMES=() STEP_SECS=() step_name="" step_t0=$SECONDS
step_end() {
  if [[ -n $step_name ]]; then STEP_NAMES+=("$step_name") STEP_SECS+=($((SECONDS - step_t0))); fi
  step_name=""
}
step() {
  step_end
  step_name=$1 step_t0=$SECONDS
  printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"
}
step_summary() {
  step_end
  local i
  echo "step times:"
  for i in "${!STEP_NAMES[@]}"; do printf '  %5d s  %s\n' "${STEP_SECS[i]}" "${STEP_NAMES[i]}"; done
  printf '  %5d s  total\n' "$SECONDS"
}
trap 'rc=$?; step_summary; exit $rc' EXIT

# ASan/LSan and TSan reports go to files (LOG_DIR/asan.<exe>.<pid>, tsan.*), so one
# from a process whose exit status or stderr a test ignores (mailshard started by an
# integration test, an agent it spawned) still fails the step. halt_on_error +
# abort_on_error: the first report kills the process with SIGABRT, never a plain exit 1
# that a test expecting a failure would accept.
sanitizer_env() {  # LOG_DIR
  # Writable for a process that drops root (an agent run as the mail owner).
  rm -rf "$1" && mkdir -p "$1" && chmod 1777 "$1"
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:log_path=$1/asan:log_exe_name=1"
  export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$1/ubsan:log_exe_name=1"
  export TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:log_path=$1/tsan:log_exe_name=1"
}
# UBSan inside the ASan runtime ignores log_path and reports on stderr only: the
# tests' own output (ctest's LastTest.log) is searched for its reports too.
sanitizer_check() {  # LOG_DIR TREE WHAT
  local reports ub
  reports=$(find "$1" -type f | sort)
  ub=$(grep -n -E 'runtime error: |ERROR: (Address|Leak|Thread)Sanitizer' "$2/Testing/Temporary/LastTest.log" || true)
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
  if [[ -n $reports || -n $ub ]]; then
    local f
    for f in $reports; do printf '\n--- %s\n' "$f"; head -60 "$f"; done
    [[ -z $ub ]] || printf '\n--- %s\n%s\n' "$2/Testing/Temporary/LastTest.log" "$(head -20 <<<"$ub")"
    echo "$3: sanitizer reports, above (files in $1)" >&2
    return 1
  fi
}

# failure_digest TREE: a short account of a tree's failed ctest run, printed last so
# that a CI page showing only the end of the output still shows it: the first
# assertion failures of the run, and the lab's Dovecot warnings and errors.
failure_digest() {
  local log=$1/Testing/Temporary/LastTest.log f
  printf '\n--- %s: first failures\n' "$1"
  [[ -f $log ]] && grep -n -A8 -E ': Failure$|Failed to|Error: ' "$log" | grep -v '^--$' | cut -c1-400 | head -60 || true
  for f in "$1"/lab/logs/store*.log "$1"/lab/logs/shared*.log; do
    [[ -f $f ]] || continue
    printf -- '--- %s: warnings and errors\n' "$f"
    # (not the sessions kicked by moves, nor the lab's own stop)
    grep -v -E ' Info: | Debug: |Killed with signal 15|Connection lost to LDAP|Can.t connect to server' "$f" | tail -15 || true
  done
}

step "install packages"
bash tests/lab/install-deps.sh

step "configure and build"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAILSHARD_LAB_PORT_BASE="$PORT_BASE" >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"

# Whatever happens, no lab daemon outlives this script.
PLAIN_PID=""
trap 'rc=$?
      [[ -z $PLAIN_PID ]] || kill "$PLAIN_PID" 2>/dev/null || true
      for d in "$BUILD_DIR" "$ASAN_DIR"; do bash "$ROOT/tests/lab/lab.sh" stop "$ROOT/$d/lab" >/dev/null 2>&1 || true; done
      step_summary; exit $rc' EXIT

step "unit tests"
(cd "$BUILD_DIR" && ctest -L unit -j"$JOBS" --output-on-failure --no-tests=error)

INTEGRATION="integration tests (real slapd, Dovecot, nginx, node_exporter on 127.0.0.1)"
if [[ ${SANITIZERS:-1} == 0 ]]; then
  step "$INTEGRATION"
  (cd "$BUILD_DIR" && ctest -L integration --output-on-failure --no-tests=error)
else
  step "ASan+UBSan: build the unit and integration tests"
  cmake -S . -B "$ASAN_DIR" -DMAILSHARD_SANITIZE=address -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$SAN_FLAGS" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$SAN_FLAGS" \
    -DMAILSHARD_LAB_PORT_BASE="$ASAN_PORT_BASE" >/dev/null
  cmake --build "$ASAN_DIR" -j"$JOBS" --target unit_tests integration_tests

  step "ASan+UBSan: unit tests"
  sanitizer_env "$ROOT/$ASAN_DIR/sanitizer-reports/unit"
  (cd "$ASAN_DIR" && ctest -L unit -j"$JOBS" --output-on-failure --no-tests=error)
  sanitizer_check "$ROOT/$ASAN_DIR/sanitizer-reports/unit" "$ASAN_DIR" "ASan+UBSan unit tests"

  # Both trees' integration tests at once, each against its own lab (port bases $PORT_BASE and
  # $ASAN_PORT_BASE): most of their time is spent waiting on daemons and deliveries, not on the
  # CPU. The plain tree's output is kept in a file and printed when both are done.
  step "$INTEGRATION, plain and ASan+UBSan at once (labs on port bases $PORT_BASE and $ASAN_PORT_BASE)"
  PLAIN_LOG=$ROOT/$BUILD_DIR/integration-tests.log
  (cd "$BUILD_DIR" && ctest -L integration --output-on-failure --no-tests=error) >"$PLAIN_LOG" 2>&1 &
  PLAIN_PID=$!
  sanitizer_env "$ROOT/$ASAN_DIR/sanitizer-reports/integration"
  asan_rc=0
  (cd "$ASAN_DIR" && ctest -L integration --output-on-failure --no-tests=error) || asan_rc=$?
  plain_rc=0
  wait "$PLAIN_PID" || plain_rc=$?
  PLAIN_PID=""
  printf '\n--- plain tree (%s), exit %d:\n' "$BUILD_DIR" "$plain_rc"
  cat "$PLAIN_LOG"
  sanitizer_check "$ROOT/$ASAN_DIR/sanitizer-reports/integration" "$ASAN_DIR" "ASan+UBSan integration tests"
  if ((plain_rc != 0 || asan_rc != 0)); then
    ((plain_rc == 0)) || failure_digest "$BUILD_DIR"
    ((asan_rc == 0)) || failure_digest "$ASAN_DIR"
    echo "integration tests failed: plain tree exit $plain_rc, ASan+UBSan tree exit $asan_rc (output above)" >&2
    exit 1
  fi

  step "TSan: build the threaded unit tests (sync engine, movers, agent transport)"
  cmake -S . -B "$TSAN_DIR" -DMAILSHARD_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$SAN_FLAGS" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$SAN_FLAGS" >/dev/null
  cmake --build "$TSAN_DIR" -j"$JOBS" --target tsan_tests

  step "TSan: unit tests labelled tsan"
  sanitizer_env "$ROOT/$TSAN_DIR/sanitizer-reports"
  (cd "$TSAN_DIR" && ctest -L tsan -j"$JOBS" --output-on-failure --no-tests=error)
  sanitizer_check "$ROOT/$TSAN_DIR/sanitizer-reports" "$TSAN_DIR" "TSan unit tests"
fi

if ((FUZZ_SECONDS > 0)); then
  step "fuzz every target, ${FUZZ_SECONDS} s in all"
  FUZZ_BUILD_DIR="$ROOT/$BUILD_DIR-fuzz" bash tests/fuzz/run.sh "$FUZZ_SECONDS"
fi

step "all tests passed"
