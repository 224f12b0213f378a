#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++, -DPAYORCH_FUZZ=ON, in ${FUZZ_BUILD_DIR:-build-fuzz})
# and runs each for SECONDS (default 20) from its committed seed corpus
# (tests/fuzz/corpus/<target>, copied to a scratch dir so the repo is untouched).
# Prints executions and findings per target; exits 1 if any target crashed,
# leaked or timed out (the reproducer is kept in the scratch dir, printed).
# FUZZ_RUNS=N also stops each target after N executions (a long run aiming at
# N per target ends early for fast targets; SECONDS still bounds each).
# Usage: scripts/fuzz.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${1:-20}
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(webhook response_mapping validation merchant_config stored_outcome
  caller_policy)
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DPAYORCH_FUZZ=ON "${LAUNCHER[@]}" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]/#/fuzz_}" >/dev/null
WORK=$(mktemp -d /tmp/payorch-fuzz.XXXXXX)
echo "fuzz: ${SECONDS_EACH}s per target, scratch $WORK"
failed=0
printf '%-18s %14s %9s\n' target executions findings
for t in "${TARGETS[@]}"; do
  mkdir -p "$WORK/$t/corpus" "$WORK/$t/artifacts"
  cp "$ROOT/tests/fuzz/corpus/$t"/* "$WORK/$t/corpus/"
  rc=0
  "$ROOT/$BUILD/bin/fuzz_$t" -max_total_time="$SECONDS_EACH" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} \
    -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$WORK/$t/artifacts/" "$WORK/$t/corpus" \
    >"$WORK/$t/log" 2>&1 || rc=$?
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$WORK/$t/log")
  findings=$(find "$WORK/$t/artifacts" -type f | wc -l)
  printf '%-18s %14s %9s\n' "$t" "${execs:-?}" "$findings"
  if ((rc != 0 || findings != 0)); then
    failed=1
    echo "fuzz_$t failed (exit $rc); log $WORK/$t/log, reproducers:" >&2
    find "$WORK/$t/artifacts" -type f >&2
    tail -40 "$WORK/$t/log" >&2
  fi
done
exit $failed
