#!/bin/sh
# Builds the agent protocol fuzz target with clang (no CMake) and runs it.
# Usage: tests/fuzz/run.sh [SECONDS] [WORKDIR]   (default 30 s, /tmp/mailshard-fuzz)
# Exit status: 0 no crash found; libFuzzer's status (and a crash-* file in
# WORKDIR) otherwise.
set -eu
SECONDS_TO_RUN=${1:-30}
WORK=${2:-/tmp/mailshard-fuzz}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SRC=$ROOT/src
CXX=${CXX_FUZZ:-clang++}
mkdir -p "$WORK/corpus"
cp -n "$HERE"/corpus/* "$WORK/corpus/" 2>/dev/null || true
"$CXX" -std=gnu++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$SRC" -I"$ROOT" "$HERE/agent_protocol_fuzz.cc" \
  "$SRC/transport/wire.cc" "$SRC/core/transport.cc" "$SRC/util/result.cc" "$SRC/util/strings.cc" \
  "$SRC/core/codec.cc" "$SRC/util/hash.cc" "$SRC/util/fs.cc" -lfmt -lxxhash -o "$WORK/agent_protocol_fuzz"
cd "$WORK"
exec ./agent_protocol_fuzz -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=1024 corpus
