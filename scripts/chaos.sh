#!/usr/bin/env bash
# The long seeded chaos run (tests/chaos/README.md): several seeds, each a minute of
# concurrent callers over 3 payorchd replicas, a real Redis and the sandbox, under every
# fault kind. Writes the figures to tests/chaos/results/latest.json and a summary to
# tests/chaos/results/latest.md (the README quotes it). Exit status 1 if an invariant
# fails. Usage: scripts/chaos.sh [SEEDS [SECONDS_PER_SEED]]   (default 1,2,3,4 and 60)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
SEEDS=${1:-1,2,3,4}
DURATION=${2:-60}
cmake --build "$BUILD_DIR" --target payorchd paykka-sandbox payorch_python_stubs >/dev/null
OUT=tests/chaos/results
mkdir -p "$OUT"
status=0
/usr/bin/python3 tests/chaos/chaos.py --bin-dir "$BUILD_DIR/bin" --gen-dir "$BUILD_DIR/gen/python" \
  --seeds "$SEEDS" --duration "$DURATION" --results "$OUT/latest.json" || status=$?
/usr/bin/python3 - "$OUT/latest.json" "$OUT/latest.md" <<'PY'
import json, subprocess, sys
d = json.load(open(sys.argv[1]))
t = d["total"]
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                     text=True).stdout.strip()
lines = [
    "# Chaos run (scripts/chaos.sh) at %s" % rev, "",
    "| figure | value |", "|---|---|",
    "| seeds | %s |" % ", ".join(str(r["seed"]) for r in d["runs"]),
    "| operations (mutating RPC attempts) | %d |" % t["operations"],
    "| duplicates found (extra upstream objects) | %d |" % t["duplicates"],
    "| wrong final answers | %d |" % t["wrong_final_answers"],
    "| payments missing at PayKKa after the last retry | %d |" % t["payments_missing_at_paykka"],
    "| unsettled records left after the reconciler's window | %d |"
    % t["unsettled_left_after_window"],
    "| longest settle time after the faults stopped (s) | %s |"
    % t["max_settle_after_faults_stopped_s"],
    "", "Faults injected, by kind:", "", "| kind | windows |", "|---|---|",
]
lines += ["| %s | %d |" % (k, n) for k, n in t["faults_injected"].items()]
lines += ["", "Per seed: operations, duplicate policy, violations by the fault windows the "
          "payment's calls ran in:", ""]
for r in d["runs"]:
    lines.append("- seed %d: %d operations, %d payments, %d callers, policy %s, %s s; %s" % (
        r["seed"], r["operations"], r["payments"], r["callers"],
        json.dumps(r["duplicate_policy"]), r["seconds"],
        json.dumps(r["violations_by_fault"]) if r["violations_by_fault"] else "no violation"))
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit $status
