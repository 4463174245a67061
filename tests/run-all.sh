#!/usr/bin/env bash
# The test command (README, and what CI runs through .ci/run):
#   installs every package the build, the lab and the tests need (Debian 12, as root),
#   builds mailshard, runs every unit and integration test (the integration tests start a
#   real lab on 127.0.0.1 and stop it again), then runs the agent-protocol fuzzer for a
#   bounded time. Exit status 0 only if everything passed.
#
# Environment: BUILD_DIR (default build), MAILSHARD_LAB_PORT_BASE (default 10000),
#              FUZZ_SECONDS (default 60; 0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build}
JOBS=$(nproc)
PORT_BASE=${MAILSHARD_LAB_PORT_BASE:-10000}

step() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

step "install packages"
bash tests/lab/install-deps.sh

step "configure and build"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAILSHARD_LAB_PORT_BASE="$PORT_BASE" >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"

# Whatever happens, no lab daemon outlives this script.
trap 'bash "$ROOT/tests/lab/lab.sh" stop "$ROOT/$BUILD_DIR/lab" >/dev/null 2>&1 || true' EXIT

step "unit tests"
(cd "$BUILD_DIR" && ctest -L unit -j"$JOBS" --output-on-failure --no-tests=error)

step "integration tests (real slapd, Dovecot, nginx, node_exporter on 127.0.0.1)"
(cd "$BUILD_DIR" && ctest -L integration --output-on-failure --no-tests=error)

if [[ -x tests/fuzz/run.sh && ${FUZZ_SECONDS:-60} -gt 0 ]]; then
  step "fuzz the agent protocol for ${FUZZ_SECONDS:-60} s"
  bash tests/fuzz/run.sh "${FUZZ_SECONDS:-60}"
fi

step "all tests passed"
