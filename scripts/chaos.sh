#!/usr/bin/env bash
# The long seeded chaos run (tests/chaos/README.md): several seeds, each 45 s of
# concurrent callers over 3 payorchd replicas, a real Redis and the sandbox, under every
# fault kind. Writes the figures to tests/chaos/results/latest.json and a summary to
# tests/chaos/results/latest.md (the README quotes it). Exit status 1 if an invariant
# fails. Usage: scripts/chaos.sh [SEEDS [SECONDS_PER_SEED]]   (default 1,2,3,4,5,6 and 45)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
SEEDS=${1:-1,2,3,4,5,6}
DURATION=${2:-45}
cmake --build "$BUILD_DIR" --target payorchd paykka-sandbox payorch_python_stubs >/dev/null
OUT=tests/chaos/results
mkdir -p "$OUT"
status=0
/usr/bin/python3 tests/chaos/chaos.py --bin-dir "$BUILD_DIR/bin" --gen-dir "$BUILD_DIR/gen/python" \
  --seeds "$SEEDS" --duration "$DURATION" --results "$OUT/latest.json" || status=$?
/usr/bin/python3 tests/chaos/summarize.py "$OUT/latest.json" "$OUT/latest.md"
exit $status
