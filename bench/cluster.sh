#!/usr/bin/env bash
# payorch on a 3-primary Redis Cluster beside a single redis-server, in the
# same run: the create and replay scenarios of bench/run.sh ((a) closed loop
# and (b)) against two payorchd processes that differ only in --redis_url,
# interleaved, and their ratio. Writes bench/results/<UTC>-cluster.{json,md}.
#
#   bench/cluster.sh [--duration=S] [--no-build] [--build-dir=DIR] [--keep]
#
# Everything listens on 127.0.0.1; each process is recorded by PID and killed
# on exit; the work directory (with the Cluster's nodes.conf) is removed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build-bench"
DURATION=8
REPS=2
BUILD=1
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --duration=*) DURATION="${arg#*=}" ;;
    --reps=*) REPS="${arg#*=}" ;;
    --build-dir=*) BUILD_DIR="${arg#*=}" ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PY=/usr/bin/python3
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
RESULTS="$ROOT/bench/results"
WORK="$(mktemp -d /tmp/payorch-bench-cluster.XXXXXX)"
RUNS="$WORK/runs"
mkdir -p "$RUNS" "$RESULTS"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $KEEP == 1 ]]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log() { printf '\n== %s\n' "$*"; }
# free_port, wait_line, make_keys, start_sandbox, sb, sb_reset
source "$ROOT/bench/lib.sh"
# A free port whose cluster bus port (+10000) is free too (Redis needs both,
# so the port must be <= 55535).
free_cluster_port() {
  "$PY" -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    b = socket.socket()
    try:
        if port <= 55535:
            b.bind(("127.0.0.1", port + 10000)); print(port); break
    except OSError:
        pass
    finally:
        a.close(); b.close()
'
}
BIN="$BUILD_DIR/bin"
if [[ $BUILD == 1 ]]; then
  log "building Release in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target payorchd paykka-sandbox payorch-loadgen
fi

make_keys

# redis_start PORT [ARGS...]: one redis-server in $WORK/redis-PORT.
redis_start() {
  local port=$1 dir="$WORK/redis-$1"
  shift
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
    --protected-mode yes --maxclients 10000 --logfile "$dir/redis.log" "$@" \
    </dev/null >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" ping >/dev/null
}

log "single redis-server, and a Redis Cluster of 3 primaries + 3 replicas"
SINGLE_PORT="$(free_port)"
redis_start "$SINGLE_PORT"
NODES=()
for _ in 1 2 3 4 5 6; do
  port="$(free_cluster_port)"
  redis_start "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout 2000 --repl-diskless-sync-delay 0
  NODES+=("127.0.0.1:$port")
done
redis-cli --cluster create "${NODES[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
for _ in $(seq 100); do
  redis-cli -p "${NODES[0]#*:}" cluster info | grep -q 'cluster_state:ok' && break
  sleep 0.1
done
CLUSTER_URL="redis+cluster://${NODES[0]},${NODES[1]},${NODES[2]}"

start_sandbox

declare -A GRPC
for backend in single cluster; do
  url="redis://127.0.0.1:$SINGLE_PORT"
  [[ $backend == cluster ]] && url="$CLUSTER_URL"
  "$BIN/payorchd" --grpc_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 "--redis_url=$url" --paykka_allow_http \
    "--merchants_config=$WORK/merchants.json" --lease=30s --paykka_timeout=15s --log_level=warning --insecure_plaintext \
    </dev/null >"$WORK/payorchd-$backend.out" 2>"$WORK/payorchd-$backend.err" &
  PIDS+=($!)
  GRPC[$backend]="$(wait_line "$WORK/payorchd-$backend.out" '^listening grpc ' 30 | awk '{print $3}')"
done
echo "payorchd single ${GRPC[single]}, cluster ${GRPC[cluster]} ($CLUSTER_URL)"
echo "load average at start: $(cut -d' ' -f1 /proc/loadavg)"

RUN_ID="c$(date +%s)"
LG=("$BIN/payorch-loadgen" --warmup=1s --count=2000000)
for rep in $(seq "$REPS"); do
  for backend in single cluster; do
    log "create, closed loop c=32, $backend (rep $rep)"
    "${LG[@]}" --target="${GRPC[$backend]}" --op=create --concurrency=32 --duration="${DURATION}s" \
      --prefix="$RUN_ID-$backend-a$rep" --label="create.$backend.$rep" \
      --out="$RUNS/create.$backend.$rep.json" >/dev/null
    sb_reset
  done
done
for backend in single cluster; do
  "${LG[@]}" --target="${GRPC[$backend]}" --op=create --concurrency=64 --count=2000 --warmup=0s \
    --duration=120s --prefix="$RUN_ID-$backend-replay" --label="seed.$backend" \
    --out="$RUNS/seed.$backend.json" >/dev/null
done
for rep in $(seq "$REPS"); do
  for backend in single cluster; do
    log "replay of 2000 completed trans_ids, closed loop c=256, $backend (rep $rep)"
    "${LG[@]}" --target="${GRPC[$backend]}" --op=create --concurrency=256 --channels=8 \
      --duration="${DURATION}s" --prefix="$RUN_ID-$backend-replay" --id_space=2000 \
      --label="replay.$backend.$rep" --out="$RUNS/replay.$backend.$rep.json" >/dev/null
  done
done

# Memory per record (for docs/capacity.md): Redis's own MEMORY USAGE of 200
# completed records, and of the unsettled-index keys per entry they hold.
SR=(redis-cli -p "$SINGLE_PORT")
RECORD_BYTES="$("${SR[@]}" --scan --pattern 'payorch:idem:*' | sed -n '1,200p' |
  while read -r k; do "${SR[@]}" memory usage "$k"; done | awk '{s+=$1; n++} END {printf "%.0f", s/n}')"
INDEX_BYTES="$("${SR[@]}" --scan --pattern 'payorch:unsettled:*' |
  while read -r k; do "${SR[@]}" memory usage "$k" samples 0; done | awk '{s+=$1} END {print s+0}')"
INDEX_ENTRIES="$("${SR[@]}" --scan --pattern 'payorch:unsettled:*:entries' |
  while read -r k; do "${SR[@]}" hlen "$k"; done | awk '{s+=$1} END {print s+0}')"
echo "memory: $RECORD_BYTES B per completed record; index $INDEX_BYTES B for $INDEX_ENTRIES entries"

"$PY" - "$RUNS" "$RESULTS/$STAMP-cluster" "$CLUSTER_URL" "$RECORD_BYTES" "$INDEX_BYTES" \
  "$INDEX_ENTRIES" <<'EOF'
import glob, json, sys
runs_dir, out, url, record_bytes, index_bytes, index_entries = sys.argv[1:]
runs = {f.split("/")[-1][:-5]: json.load(open(f)) for f in glob.glob(f"{runs_dir}/*.json")}
rows, summary = [], {}
for scenario in ("create", "replay"):
    best = {}
    for backend in ("single", "cluster"):
        rs = [r for k, r in runs.items() if k.startswith(f"{scenario}.{backend}.")]
        b = max(rs, key=lambda r: r["throughput_rps"])
        best[backend] = b
        errors = sum(r["errors"] for r in rs)
        rows.append(f"| {scenario} | {backend} | {b['throughput_rps']:.0f} | "
                    f"{b['latency_ms']['p50']:.2f} / {b['latency_ms']['p99']:.2f} | {errors} |")
    ratio = best["cluster"]["throughput_rps"] / best["single"]["throughput_rps"]
    summary[scenario] = {"single_rps": best["single"]["throughput_rps"],
                         "cluster_rps": best["cluster"]["throughput_rps"], "ratio": ratio}
    rows.append(f"| {scenario} | **cluster / single** | **{ratio:.2f}** | | |")
md = ["| scenario | Redis | req/s (best of runs) | p50 / p99 ms | errors |",
      "|---|---|---|---|---|"] + rows
per_entry = int(index_bytes) / max(1, int(index_entries))
md += ["", f"Redis MEMORY USAGE: {record_bytes} B per completed record (mean of 200); "
       f"unsettled index {per_entry:.0f} B per entry ({index_entries} entries)."]
summary["memory"] = {"record_bytes": int(record_bytes), "index_bytes_per_entry": per_entry}
json.dump({"cluster_url": url, "summary": summary, "runs": runs}, open(out + ".json", "w"), indent=1)
open(out + ".md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
print(f"written {out}.json and {out}.md")
EOF
