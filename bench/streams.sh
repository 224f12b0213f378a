#!/usr/bin/env bash
# payorch streams benchmark: 10,000 concurrent WatchOrder streams held open on
# one payorchd, then payments at 500/s whose webhooks become events on those
# streams. Starts redis-server, paykka-sandbox and payorchd on loopback,
# samples payorchd's threads and RSS (/proc) throughout, and writes
# bench/results/<date>-streams.json and .md.
#
#   bench/streams.sh [--streams=10000] [--payments=5000] [--rate=500]
#                    [--hold=10] [--build-dir=build] [--no-build] [--keep]
#
# Bounds checked (the in-flight scenario's): payorchd at most 64 threads and
# 512 MB RSS with every stream open. Everything listens on 127.0.0.1; every
# process started here is killed by PID on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build"
STREAMS=10000 PAYMENTS=5000 RATE=500 HOLD=10 BUILD=1 KEEP=0
for arg in "$@"; do
  case "$arg" in
    --streams=*) STREAMS="${arg#*=}" ;;
    --payments=*) PAYMENTS="${arg#*=}" ;;
    --rate=*) RATE="${arg#*=}" ;;
    --hold=*) HOLD="${arg#*=}" ;;
    --build-dir=*) BUILD_DIR="${arg#*=}" ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "streams.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
MAX_THREADS=64
MAX_RSS_KB=$((512 * 1024))

PY=/usr/bin/python3
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
RESULTS="$ROOT/bench/results"
WORK="$(mktemp -d /tmp/payorch-streams.XXXXXX)"
BIN="$BUILD_DIR/bin"
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [[ $rc != 0 || $KEEP == 1 ]]; then echo "streams.sh: rc=$rc; logs in $WORK" >&2
  else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $BUILD == 1 ]]; then
  cmake --build "$BUILD_DIR" --target payorchd paykka-sandbox payorch-watchbench >/dev/null
fi
ulimit -n 65536 2>/dev/null || true

REDIS_PORT="$(free_port)"
mkdir -p "$WORK/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" --save '' \
  --appendonly no --logfile "$WORK/redis/redis.log" </dev/null >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

make_keys
start_sandbox
WEBHOOK_PORT="$(free_port)"
"$BIN/payorchd" --grpc_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 \
  --webhook_listen="127.0.0.1:$WEBHOOK_PORT" --insecure_plaintext --paykka_allow_http \
  "--redis_url=redis://127.0.0.1:$REDIS_PORT" "--merchants_config=$WORK/merchants.json" \
  --log_level=warning --grpc_max_concurrent_streams=2000 \
  </dev/null >"$WORK/payorchd.out" 2>"$WORK/payorchd.err" &
PIDS+=($!)
PAYORCHD_PID=$!
ADDR="$(wait_line "$WORK/payorchd.out" '^listening grpc ' 30 | awk '{print $3}')"

# Threads and RSS of payorchd every 200 ms, into $WORK/samples (threads rss_kb).
sample() {
  while kill -0 "$PAYORCHD_PID" 2>/dev/null; do
    awk '/^Threads:/{t=$2} /^VmRSS:/{r=$2} END{print t, r}' "/proc/$PAYORCHD_PID/status" \
      >>"$WORK/samples" 2>/dev/null || true
    sleep 0.2
  done
}
sample &
PIDS+=($!)

echo "streams.sh: $STREAMS streams, $PAYMENTS payments at $RATE/s against $ADDR" >&2
"$BIN/payorch-watchbench" --target="$ADDR" --sandbox="$SB" --merchant_id=M100002 \
  --notify_url="http://127.0.0.1:$WEBHOOK_PORT/webhooks/paykka" --streams="$STREAMS" \
  --payments="$PAYMENTS" --rate="$RATE" --hold="${HOLD}s" >"$WORK/bench.out"
RESULT="$(grep '"phase":"done"' "$WORK/bench.out")"
read -r MAX_T MAX_R < <(awk '$1>t{t=$1} $2>r{r=$2} END{print t+0, r+0}' "$WORK/samples")
HWM="$(awk '/^VmHWM:/{print $2}' "/proc/$PAYORCHD_PID/status")"

"$PY" - "$RESULT" "$MAX_T" "$MAX_R" "$HWM" "$MAX_THREADS" "$MAX_RSS_KB" \
  "$RESULTS/$STAMP-streams" "$RATE" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
r.update(payorchd_max_threads=int(sys.argv[2]), payorchd_max_rss_kb=int(sys.argv[3]),
         payorchd_hwm_rss_kb=int(sys.argv[4]), bound_threads=int(sys.argv[5]),
         bound_rss_kb=int(sys.argv[6]), rate_per_s=float(sys.argv[8]))
r["within_bounds"] = (r["payorchd_max_threads"] <= r["bound_threads"] and
                      r["payorchd_hwm_rss_kb"] <= r["bound_rss_kb"] and
                      r["opened"] == r["streams"])
out = sys.argv[7]
json.dump(r, open(out + ".json", "w"), indent=1)
md = f"""# Streams benchmark ({out.rsplit('/', 1)[-1]})

One payorchd (`--redis_url` a local redis-server, the sandbox as PayKKa, plaintext gRPC over
loopback, 2 cores shared with the client, the sandbox and Redis).

| measure | value | bound |
|---|---|---|
| WatchOrder streams open at once | {r['opened']} / {r['streams']} (opened in {r['open_s']} s) | 10,000 |
| payorchd threads (max) | {r['payorchd_max_threads']} | <= {r['bound_threads']} |
| payorchd RSS (peak) | {r['payorchd_hwm_rss_kb'] // 1024} MB | <= {r['bound_rss_kb'] // 1024} MB |
| payments at {r['rate_per_s']:.0f}/s | {r['paid']} paid in {r['pay_s']} s, {r['delivered']} delivered | |
| pay call -> SUCCESS on its stream, p50 | {r['p50_ms']} ms | |
| p99 | {r['p99_ms']} ms | |
| max | {r['max_ms']} ms | |

The latency runs from the start of the sandbox pay call (the sandbox sends the webhook while
answering it) to the SUCCESS message on the WatchOrder stream: webhook verification, a Query
Transaction, the append to the merchant's Redis Stream, the XREAD wake-up and the stream write.
Within bounds: {r['within_bounds']}.
"""
open(out + ".md", "w").write(md)
print(json.dumps(r))
EOF
