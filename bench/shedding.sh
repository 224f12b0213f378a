#!/usr/bin/env bash
# Shedding under overload: measures payorchd's CreateCheckout capacity
# (closed loop, the best of two runs), then offers FACTOR x that rate open
# loop (fixed schedule, bounded count and time, loopback only) and checks
# that payorchd
#   - answers every call OK or RESOURCE_EXHAUSTED (OVERLOADED) within the
#     call's deadline (no DEADLINE_EXCEEDED, nothing left unanswered),
#   - stays under the memory limit (max VmRSS / VmHWM sampled every 100 ms
#     from /proc, against the chart's 512 MiB limit) and keeps its threads.
# payorchd runs with its default caps (--max_in_flight, --cpu_queue_depth)
# unless --payorchd-args adds flags. Writes bench/results/<UTC>-shedding.{json,md}.
#
#   bench/shedding.sh [--factor=3] [--duration=10] [--deadline=10s]
#                     [--payorchd-args="--cpu_queue_depth=2000"]
#                     [--build-dir=DIR] [--no-build] [--keep]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build-bench"
FACTOR=3
DURATION=10
DEADLINE=10s
EXTRA_ARGS=""
BUILD=1
KEEP=0
MEMORY_LIMIT_MB=512
for arg in "$@"; do
  case "$arg" in
    --factor=*) FACTOR="${arg#*=}" ;;
    --duration=*) DURATION="${arg#*=}" ;;
    --deadline=*) DEADLINE="${arg#*=}" ;;
    --payorchd-args=*) EXTRA_ARGS="${arg#*=}" ;;
    --build-dir=*) BUILD_DIR="${arg#*=}" ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "shedding.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PY=/usr/bin/python3
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
RESULTS="$ROOT/bench/results"
WORK="$(mktemp -d /tmp/payorch-shedding.XXXXXX)"
PIDS=()
# free_port, wait_line, make_keys, start_sandbox, sb_reset, stop_pids
source "$ROOT/bench/lib.sh"
on_exit() {
  local rc=$?
  rm -f "$WORK/sampling"
  stop_pids
  if [[ $rc != 0 || $KEEP == 1 ]]; then echo "shedding.sh: rc=$rc; logs in $WORK" >&2
  else rm -rf "$WORK"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BIN="$BUILD_DIR/bin"
if [[ $BUILD == 1 ]]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target payorchd paykka-sandbox payorch-loadgen
fi
make_keys
REDIS_PORT="$(free_port)"
mkdir -p "$WORK/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" --save '' \
  --appendonly no --maxclients 10000 --logfile "$WORK/redis/redis.log" </dev/null >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# As deployed: mTLS and a caller policy on the gRPC port, PayKKa over HTTPS.
SANDBOX_TLS=1 start_sandbox
bash "$ROOT/scripts/make_mtls_certs.sh" "$WORK/mtls" spiffe://payorch.bench/loadgen >/dev/null
echo '{"callers":[{"identity":"spiffe://payorch.bench/loadgen","merchants":["*"],"methods":["*"]}]}' \
  >"$WORK/policy.json"
# shellcheck disable=SC2206
ARGS=(--grpc_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --paykka_allow_http
  "--redis_url=redis://127.0.0.1:$REDIS_PORT" "--merchants_config=$WORK/merchants.json"
  "--paykka_ca_file=$WORK/tls/ca.pem" --log_level=warning
  "--tls_cert_file=$WORK/mtls/server.pem" "--tls_key_file=$WORK/mtls/server.key"
  "--tls_client_ca_file=$WORK/mtls/ca.pem" "--caller_policy=$WORK/policy.json" $EXTRA_ARGS)
"$BIN/payorchd" "${ARGS[@]}" </dev/null >"$WORK/payorchd.out" 2>"$WORK/payorchd.err" &
PIDS+=($!)
PID=$!
GRPC="$(wait_line "$WORK/payorchd.out" '^listening grpc ' 30 | awk '{print $3}')"
HTTP="$(wait_line "$WORK/payorchd.out" '^listening http ' 30 | awk '{print $3}')"
LG=("$BIN/payorch-loadgen" --target="$GRPC" --op=create --count=2000000 --channels=16
  "--ca=$WORK/mtls/ca.pem" "--cert=$WORK/mtls/client-loadgen.pem"
  "--key=$WORK/mtls/client-loadgen.key")

echo "== capacity: CreateCheckout closed loop c=64, ${DURATION}s, best of 2"
for rep in 1 2; do
  "${LG[@]}" --concurrency=64 --duration="${DURATION}s" --prefix="cap$rep-$STAMP" \
    --label="capacity.$rep" --out="$WORK/capacity.$rep.json" >/dev/null
  sb_reset
done
CAPACITY="$("$PY" -c 'import json,sys; print(int(max(json.load(open(f))["throughput_rps"] for f in sys.argv[1:])))' \
  "$WORK"/capacity.*.json)"
RATE=$((CAPACITY * FACTOR))
echo "capacity $CAPACITY/s; offering $RATE/s open loop for ${DURATION}s, deadline $DEADLINE"

touch "$WORK/sampling"
"$PY" - "$PID" "$WORK/sampling" "$WORK/proc.json" <<'EOF' &
import json, os, sys, time
pid, flag, out = sys.argv[1], sys.argv[2], sys.argv[3]
def status():
    d = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            d[k] = v.split()[0] if v.split() else "0"
    return d
peak = {"max_rss_kb": 0, "max_threads": 0}
while os.path.exists(flag):
    s = status()
    peak["max_rss_kb"] = max(peak["max_rss_kb"], int(s["VmRSS"]))
    peak["max_threads"] = max(peak["max_threads"], int(s["Threads"]))
    time.sleep(0.1)
peak["hwm_rss_kb"] = int(status()["VmHWM"])
json.dump(peak, open(out, "w"))
EOF
SAMPLER=$!
"${LG[@]}" --mode=open --rate="$RATE" --duration="${DURATION}s" --warmup=0s \
  --deadline="$DEADLINE" --max_outstanding=1000000 --prefix="over-$STAMP" \
  --label="overload.x$FACTOR" --out="$WORK/overload.json"
rm -f "$WORK/sampling"
wait "$SAMPLER"
ALIVE=0; kill -0 "$PID" 2>/dev/null && ALIVE=1
curl -sS --max-time 10 "http://$HTTP/metrics" | grep -E '^payorch_(cpu_queue_dropped_total|requests_total)' \
  >"$WORK/metrics.txt" || true

"$PY" - "$WORK" "$RESULTS/$STAMP-shedding" "$CAPACITY" "$RATE" "$FACTOR" "$DEADLINE" \
  "$MEMORY_LIMIT_MB" "$ALIVE" "${ARGS[*]}" <<'EOF'
import glob, json, re, sys
work, out, capacity, rate, factor, deadline, limit_mb, alive, args = sys.argv[1:]
over = json.load(open(f"{work}/overload.json"))
proc = json.load(open(f"{work}/proc.json"))
caps = [json.load(open(f)) for f in sorted(glob.glob(f"{work}/capacity.*.json"))]
outcomes = over.get("outcomes", {})
answered_ok = all(k == "OK" or k.startswith("RESOURCE_EXHAUSTED") for k in outcomes)
m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", deadline)
deadline_ms = float(m.group(1)) * (1000 if m.group(2) == "s" else 1)
lat = over.get("latency_ms", {})
rss_mb = max(proc["max_rss_kb"], proc["hwm_rss_kb"]) / 1024
unanswered = over["issued"] - over["completed"] - over["warmup_completed"]
checks = {
    "every call OK or RESOURCE_EXHAUSTED": answered_ok and unanswered == 0,
    "max answer latency within the deadline": lat.get("max", 1e18) <= deadline_ms,
    f"max RSS under {limit_mb} MB": rss_mb < float(limit_mb),
    "payorchd still running": alive == "1",
}
metrics = open(f"{work}/metrics.txt").read().splitlines()
result = {"capacity_rps": int(capacity), "offered_rps": int(rate), "factor": float(factor),
          "deadline": deadline, "memory_limit_mb": int(limit_mb), "payorchd_args": args,
          "capacity_runs": caps, "overload_run": over, "payorchd_proc": proc,
          "payorchd_metrics": metrics, "checks": checks,
          "pass": all(checks.values())}
json.dump(result, open(out + ".json", "w"), indent=2)
rows = [f"| {k} | {'PASS' if v else 'MISS'} |" for k, v in checks.items()]
md = f"""# Shedding at {factor}x capacity ({out.rsplit('/', 1)[-1]})

Capacity (CreateCheckout, closed loop c=64, best of 2): **{capacity}/s**. Offered open loop:
**{rate}/s** for {over['duration_limit_s']:.0f} s ({over['issued']} calls issued), deadline {deadline}.

| measured | value |
|---|---|
| calls answered | {over['completed']} ({over['ok']} OK) |
| outcomes | {', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))} |
| unanswered (issued - answered; client drops {over['dropped']}) | {unanswered} |
| answer latency p50 / p99 / max ms (from the intended send time) | {lat.get('p50')} / {lat.get('p99')} / {lat.get('max')} |
| payorchd max RSS (VmRSS / VmHWM) | {proc['max_rss_kb'] / 1024:.1f} / {proc['hwm_rss_kb'] / 1024:.1f} MB (limit {limit_mb} MB) |
| payorchd max threads | {proc['max_threads']} |

| check | result |
|---|---|
{chr(10).join(rows)}

payorchd `{args}`

```
{chr(10).join(metrics)}
```
"""
open(out + ".md", "w").write(md)
print(md)
sys.exit(0 if all(checks.values()) else 1)
EOF
