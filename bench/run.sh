#!/usr/bin/env bash
# payorch benchmarks: ONE command that builds Release, starts redis-server,
# paykka-sandbox and payorchd on loopback, runs every scenario of the
# benchmark issue and writes bench/results/<date>.json and <date>.md.
#
#   bench/run.sh            # full run (about 6-8 min on 2 cores)
#   bench/run.sh --quick    # shorter runs, smaller ramp (about 2-3 min)
#
# Options:
#   --quick               short runs (4 s), ramp 1000 5000 10000
#   --duration=SECONDS    length of each measured run (default 10, quick 4)
#   --ramp="N1 N2 ..."    in-flight ramp for scenario (e) (default 1000 2500 5000 10000)
#   --only=a,b,c,d,e,f    run only these scenarios
#   --profile             also perf-record payorchd under CreateCheckout load
#   --build-dir=DIR       build directory (default build-bench, Release)
#   --no-build            use the binaries already in the build directory
#   --keep                keep the work directory (logs, keys, raw runs) in /tmp
#
# Everything listens on 127.0.0.1 only; every process started here is
# recorded by PID and killed on exit (normal or not). Nothing else is touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build-bench"
QUICK=0
DURATION=""
RAMP=""
ONLY="a,b,c,d,e,f"
PROFILE=0
BUILD=1
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --duration=*) DURATION="${arg#*=}" ;;
    --ramp=*) RAMP="${arg#*=}" ;;
    --only=*) ONLY="${arg#*=}" ;;
    --profile) PROFILE=1 ;;
    --build-dir=*) BUILD_DIR="${arg#*=}" ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then
  DURATION="${DURATION:-4}"; RAMP="${RAMP:-1000 5000 10000}"; RAMP_HOLD=6; REPS=1; WARMUP=0.5s
  SCALE_DURATION=3
else
  DURATION="${DURATION:-10}"; RAMP="${RAMP:-1000 2500 5000 10000}"; RAMP_HOLD=10; REPS=2; WARMUP=1s
  SCALE_DURATION=5
fi
want() { [[ ",$ONLY," == *",$1,"* ]]; }

PY=/usr/bin/python3
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
RESULTS="$ROOT/bench/results"
WORK="$(mktemp -d /tmp/payorch-bench.XXXXXX)"
RUNS="$WORK/runs"
mkdir -p "$RUNS" "$RESULTS"
PIDS=()

cleanup() {
  local rc=$?
  rm -f "$WORK/sampling"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [[ $rc != 0 || $KEEP == 1 ]]; then
    echo "run.sh: rc=$rc; logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '\n== %s\n' "$*"; }

# 10,000 upstream connections need file descriptors (payorchd and the
# sandbox raise their own soft limit too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# free_port, wait_line, make_keys, start_sandbox, sb, sb_reset
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------- build
BIN="$BUILD_DIR/bin"
if [[ $BUILD == 1 ]]; then
  log "building Release in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target payorchd paykka-sandbox payorch-loadgen paykka-direct \
    payorch-signbench
fi
for b in payorchd paykka-sandbox payorch-loadgen paykka-direct payorch-signbench; do
  [[ -x "$BIN/$b" ]] || { echo "run.sh: $BIN/$b missing" >&2; exit 1; }
done
LOADGEN="$BIN/payorch-loadgen"
DIRECT="$BIN/paykka-direct"

# ---------------------------------------------------------------- keys
log "generating keys (openssl) in $WORK"
make_keys

# ---------------------------------------------------------------- redis
REDIS_PORT="$(free_port)"
mkdir -p "$WORK/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" --save '' \
  --appendonly no --protected-mode yes --maxclients 10000 --logfile "$WORK/redis/redis.log" \
  </dev/null >/dev/null 2>&1 &
PIDS+=($!)
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null

# ---------------------------------------------------------------- sandbox
# PayKKa is HTTPS: M100001 talks to the sandbox's HTTPS listener, M100002
# (same keys) to its plain-HTTP one, so the TLS share is visible.
SANDBOX_TLS=1 start_sandbox

# ---------------------------------------------------------------- payorchd
# The measured payorchd ("main") has every protection on: mTLS and a caller
# policy on the gRPC port, admission control (--max_in_flight, its default),
# at-most-once sends. "plain" differs only by plaintext gRPC (mTLS's cost);
# scenario (f) adds a --cpu_threads=1 one.
bash "$ROOT/scripts/make_mtls_certs.sh" "$WORK/mtls" spiffe://payorch.bench/loadgen
cat >"$WORK/policy.json" <<EOF
{"callers":[{"identity":"spiffe://payorch.bench/loadgen","merchants":["*"],"methods":["*"]}]}
EOF
HELP="$("$BIN/payorchd" --helpfull 2>&1 || true)"
PAYORCHD_ARGS=(--grpc_listen=127.0.0.1:0 --http_listen=127.0.0.1:0
  "--redis_url=redis://127.0.0.1:$REDIS_PORT" "--merchants_config=$WORK/merchants.json"
  --lease=30s "--paykka_ca_file=$WORK/tls/ca.pem")
grep -q -- '-paykka_allow_http' <<<"$HELP" && PAYORCHD_ARGS+=(--paykka_allow_http)
# Optional flags, passed only when this payorchd has them.
grep -q -- '-paykka_timeout' <<<"$HELP" && PAYORCHD_ARGS+=(--paykka_timeout=15s)
grep -q -- '-log_level' <<<"$HELP" && PAYORCHD_ARGS+=(--log_level="${PAYORCH_BENCH_LOG_LEVEL:-warning}")
MTLS_ARGS=("--tls_cert_file=$WORK/mtls/server.pem" "--tls_key_file=$WORK/mtls/server.key"
  "--tls_client_ca_file=$WORK/mtls/ca.pem" "--caller_policy=$WORK/policy.json")
LG_MTLS=("--ca=$WORK/mtls/ca.pem" "--cert=$WORK/mtls/client-loadgen.pem"
  "--key=$WORK/mtls/client-loadgen.key")

# start_payorchd NAME ARGS...: one more payorchd; sets NAME_PID and NAME_ADDR.
start_payorchd() {
  local name=$1 pid addr
  shift
  # PAYORCH_BENCH_PRELOAD=lib.so: A/B a library (e.g. an allocator) without a rebuild.
  env ${PAYORCH_BENCH_PRELOAD:+LD_PRELOAD=$PAYORCH_BENCH_PRELOAD} \
    "$BIN/payorchd" "${PAYORCHD_ARGS[@]}" "$@" </dev/null >"$WORK/payorchd.$name.out" \
    2>"$WORK/payorchd.$name.err" &
  pid=$!
  PIDS+=("$pid")
  addr="$(wait_line "$WORK/payorchd.$name.out" '^listening grpc ' 30 | awk '{print $3}')"
  printf -v "${name}_PID" %s "$pid"
  printf -v "${name}_ADDR" %s "$addr"
}
start_payorchd MAIN "${MTLS_ARGS[@]}"
start_payorchd PLAIN --insecure_plaintext
PAYORCHD_PID=$MAIN_PID
GRPC_ADDR=$MAIN_ADDR
echo "redis 127.0.0.1:$REDIS_PORT (pid $REDIS_PID), sandbox $SB $SB_TLS (pid $SANDBOX_PID)"
echo "payorchd main (mTLS) $MAIN_ADDR (pid $MAIN_PID), plaintext $PLAIN_ADDR (pid $PLAIN_PID)"
echo "payorchd ${PAYORCHD_ARGS[*]} ${MTLS_ARGS[*]}"

proc_field() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
IDLE_THREADS="$(proc_field "$PAYORCHD_PID" Threads)"
IDLE_RSS_KB="$(proc_field "$PAYORCHD_PID" VmRSS)"

RUN_ID="r$(date +%s)"
LOAD_AT_START="$(cut -d' ' -f1 /proc/loadavg)"
echo "load average at start: $LOAD_AT_START (other work on these cores skews every figure)"
# Every load run also reports each process's CPU per request (/proc/<pid>/stat
# over the measured window): the figure a busy shared machine does not skew.
CPU_PIDS="redis:$REDIS_PID,sandbox:$SANDBOX_PID"
COMMON_LG=(--target="$GRPC_ADDR" "${LG_MTLS[@]}" --warmup="$WARMUP" --count=2000000
  "--cpu_pids=payorchd:$MAIN_PID,$CPU_PIDS")
PLAIN_LG=(--target="$PLAIN_ADDR" --warmup="$WARMUP" --count=2000000
  "--cpu_pids=payorchd:$PLAIN_PID,$CPU_PIDS")
COMMON_DI=(--merchants_config="$WORK/merchants.json" --warmup="$WARMUP" --count=2000000 --threads=2
  "--ca_file=$WORK/tls/ca.pem" "--cpu_pids=sandbox:$SANDBOX_PID")

# sb_counters NAME: the sandbox's request and connection counters for the run
# just finished (new TCP / TLS connections per request: keep-alive at work),
# then a reset.
sb_counters() {
  sb GET /sandbox/counters | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: v for k, v in d.items() if isinstance(v, int) or k == "requests_by_endpoint"}))' \
    >"$RUNS/sandbox.$1.json"
  sb_reset
}

# signbench NAME: the RSA part (sign + verify CPU us) with the same key and code.
signbench() {
  "$BIN/payorch-signbench" --merchants_config="$WORK/merchants.json" \
    --public_key_file="$WORK/merchant_pub.pem" --count=400 --out="$RUNS/rsa.$1.json"
}
signbench start

# json_get FILE EXPR: a value from a result file.
json_get() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

PEAK_CONC=32

# ---------------------------------------------------------------- (a) create
if want a; then
  log "(a) CreateCheckout (fresh trans_ids) vs direct Create Session: peak, closed loop, concurrency $PEAK_CONC"
  sb_reset
  for rep in $(seq "$REPS"); do
    "$DIRECT" "${COMMON_DI[@]}" --op=create --concurrency=$PEAK_CONC --duration="${DURATION}s" \
      --prefix="$RUN_ID-da$rep" --label="a.direct.peak.$rep" --out="$RUNS/a.direct.peak.$rep.json"
    sb_counters "a.direct.peak.$rep"
    "$LOADGEN" "${COMMON_LG[@]}" --op=create --concurrency=$PEAK_CONC --duration="${DURATION}s" \
      --prefix="$RUN_ID-pa$rep" --label="a.payorch.peak.$rep" --out="$RUNS/a.payorch.peak.$rep.json"
    sb_counters "a.payorch.peak.$rep"
  done
  log "(a) info: the same without TLS to PayKKa (M100002: plain HTTP), and without mTLS"
  "$DIRECT" "${COMMON_DI[@]}" --merchant_id=M100002 --op=create --concurrency=$PEAK_CONC \
    --duration="${DURATION}s" --prefix="$RUN_ID-dah" --label="a.direct_http.peak" \
    --out="$RUNS/a.direct_http.peak.json"
  "$LOADGEN" "${COMMON_LG[@]}" --merchant_id=M100002 --op=create --concurrency=$PEAK_CONC \
    --duration="${DURATION}s" --prefix="$RUN_ID-pah" --label="a.payorch_http.peak" \
    --out="$RUNS/a.payorch_http.peak.json"
  "$LOADGEN" "${PLAIN_LG[@]}" --op=create --concurrency=$PEAK_CONC --duration="${DURATION}s" \
    --prefix="$RUN_ID-pap" --label="a.payorch_plain.peak" --out="$RUNS/a.payorch_plain.peak.json"
  sb_reset
  # Half of peak load: half of payorch's own peak, the same fixed arrival
  # rate for both sides, open loop. When the baseline's peak is clearly
  # higher, one more point at half of that (reported, not the target).
  read -r PEAK_P PEAK_D < <("$PY" - "$RUNS" <<'EOF'
import glob, json, sys
best = lambda k: max(json.load(open(f))["throughput_rps"] for f in glob.glob(f"{sys.argv[1]}/a.{k}.peak.*.json"))
print(int(best("payorch")), int(best("direct")))
EOF
)
  HALF=$((PEAK_P / 2))
  log "(a) added latency at half of payorch's peak: open loop at $HALF/s (peaks: payorch $PEAK_P/s, direct $PEAK_D/s)"
  for rep in $(seq "$REPS"); do
    "$DIRECT" "${COMMON_DI[@]}" --op=create --mode=open --rate=$HALF --duration="${DURATION}s" \
      --prefix="$RUN_ID-dh$rep" --label="a.direct.half.$rep" --out="$RUNS/a.direct.half.$rep.json"
    "$LOADGEN" "${COMMON_LG[@]}" --op=create --mode=open --rate=$HALF --duration="${DURATION}s" \
      --prefix="$RUN_ID-ph$rep" --label="a.payorch.half.$rep" --out="$RUNS/a.payorch.half.$rep.json"
    sb_reset
  done
  if ((PEAK_D * 10 > PEAK_P * 11)); then
    HALF_D=$((PEAK_D / 2))
    log "(a) info: the same at half of the direct peak, $HALF_D/s"
    "$DIRECT" "${COMMON_DI[@]}" --op=create --mode=open --rate=$HALF_D --duration="${DURATION}s" \
      --prefix="$RUN_ID-dhd" --label="a.direct.halfdirect" --out="$RUNS/a.direct.halfdirect.json"
    "$LOADGEN" "${COMMON_LG[@]}" --op=create --mode=open --rate=$HALF_D --duration="${DURATION}s" \
      --prefix="$RUN_ID-phd" --label="a.payorch.halfdirect" --out="$RUNS/a.payorch.halfdirect.json"
    sb_reset
  fi
fi

# ---------------------------------------------------------------- (b) replay
if want b; then
  log "(b) replay of completed trans_ids (served from Redis)"
  REPLAY_IDS=2000
  "$LOADGEN" "${COMMON_LG[@]}" --op=create --concurrency=64 --count=$REPLAY_IDS --warmup=0s \
    --duration=120s --prefix="$RUN_ID-replay" --label="b.seed" --out="$RUNS/b.seed.json"
  for conc in 64 256; do
    "$LOADGEN" "${COMMON_LG[@]}" --op=create --concurrency=$conc --channels=8 \
      --duration="${DURATION}s" --prefix="$RUN_ID-replay" --id_space=$REPLAY_IDS \
      --label="b.payorch.replay.c$conc" --out="$RUNS/b.payorch.replay.c$conc.json"
  done
  "$LOADGEN" "${PLAIN_LG[@]}" --op=create --concurrency=256 --channels=8 \
    --duration="${DURATION}s" --prefix="$RUN_ID-replay" --id_space=$REPLAY_IDS \
    --label="b.payorch_plain.replay.c256" --out="$RUNS/b.payorch_plain.replay.c256.json"
  sb_reset
fi

# ---------------------------------------------------------------- (c) GetOrder
if want c; then
  log "(c) GetOrder vs direct Query Transaction (paid orders, by trans_id)"
  PAID=50
  : >"$WORK/paid.txt"
  "$LOADGEN" "${COMMON_LG[@]}" --op=create --concurrency=8 --count=$PAID --warmup=0s --duration=60s \
    --prefix="$RUN_ID-paid" --dump="$WORK/paid.txt" --label="c.seed" --out="$RUNS/c.seed.json" >/dev/null
  while read -r _tid sid; do
    sb POST "/sandbox/sessions/$sid/pay" '{"outcome":"SUCCESS"}' >/dev/null
  done <"$WORK/paid.txt"
  for rep in $(seq "$REPS"); do
    "$DIRECT" "${COMMON_DI[@]}" --op=query --concurrency=$PEAK_CONC --duration="${DURATION}s" \
      --prefix="$RUN_ID-paid" --id_space=$PAID --label="c.direct.query.$rep" --out="$RUNS/c.direct.query.$rep.json"
    "$LOADGEN" "${COMMON_LG[@]}" --op=get_order --concurrency=$PEAK_CONC --duration="${DURATION}s" \
      --prefix="$RUN_ID-paid" --id_space=$PAID --label="c.payorch.get_order.$rep" \
      --out="$RUNS/c.payorch.get_order.$rep.json"
  done
  sb_reset
fi

# ---------------------------------------------------------------- (d) ChargeRecurring
if want d; then
  log "(d) ChargeRecurring vs direct MIT Initiate Transaction"
  : >"$WORK/rec.txt"
  "$LOADGEN" "${COMMON_LG[@]}" --op=create --recurring --concurrency=1 --count=1 --warmup=0s \
    --duration=30s --prefix="$RUN_ID-first" --dump="$WORK/rec.txt" --label="d.seed" \
    --out="$RUNS/d.seed.json" >/dev/null
  SID="$(awk '{print $2; exit}' "$WORK/rec.txt")"
  sb POST "/sandbox/sessions/$SID/pay" '{"outcome":"SUCCESS"}' >"$WORK/first_order.json"
  read -r TOKEN AGREEMENT < <("$PY" - "$WORK/first_order.json" <<'EOF'
import json, sys
def find(o, k):
    if isinstance(o, dict):
        if o.get(k): return o[k]
        for v in o.values():
            r = find(v, k)
            if r: return r
    if isinstance(o, list):
        for v in o:
            r = find(v, k)
            if r: return r
    return ""
d = json.load(open(sys.argv[1]))
print(find(d, "token") or "-", find(d, "recurring_agreement_id") or "-")
EOF
)
  echo "first recurring payment: session $SID token $TOKEN agreement $AGREEMENT"
  for rep in $(seq "$REPS"); do
    "$DIRECT" "${COMMON_DI[@]}" --op=charge --concurrency=$PEAK_CONC --duration="${DURATION}s" \
      --token="$TOKEN" --agreement="$AGREEMENT" --prefix="$RUN_ID-dc$rep" \
      --label="d.direct.charge.$rep" --out="$RUNS/d.direct.charge.$rep.json"
    "$LOADGEN" "${COMMON_LG[@]}" --op=charge --concurrency=$PEAK_CONC --duration="${DURATION}s" \
      --token="$TOKEN" --agreement="$AGREEMENT" --prefix="$RUN_ID-pc$rep" \
      --label="d.payorch.charge.$rep" --out="$RUNS/d.payorch.charge.$rep.json"
  done
  sb_reset
fi

# ---------------------------------------------------------------- (e) many in flight
# sample PID OUT: max Threads and VmRSS of PID every 100 ms while
# $WORK/sampling exists.
sample() {
  local pid=$1 out=$2 maxt=0 maxr=0 t r
  while [[ -e "$WORK/sampling" ]]; do
    t="$(proc_field "$pid" Threads)"; r="$(proc_field "$pid" VmRSS)"
    t=${t:-0}; r=${r:-0}
    ((t > maxt)) && maxt=$t
    ((r > maxr)) && maxr=$r
    sleep 0.1
  done
  printf '{"max_threads":%d,"max_rss_kb":%d,"hwm_rss_kb":%d,"threads_after":%d}\n' \
    "$maxt" "$maxr" "$(proc_field "$pid" VmHWM)" "$(proc_field "$pid" Threads)" >"$out"
}

if want e; then
  log "(e) many in flight: sandbox latency 1 s, closed loop ramped: $RAMP"
  for n in $RAMP; do
    sb_reset
    sb PUT /sandbox/faults '{"seed":1,"rules":[{"endpoint":"*","latency_ms":1000}]}' >/dev/null
    touch "$WORK/sampling"
    sample "$PAYORCHD_PID" "$RUNS/e.proc.$n.json" &
    SAMPLER=$!
    channels=$(( n / 500 < 8 ? 8 : n / 500 ))
    "$LOADGEN" "${COMMON_LG[@]}" --op=create --concurrency="$n" --channels=$channels \
      --duration="${RAMP_HOLD}s" --warmup=0s --deadline=60s --prefix="$RUN_ID-e$n" \
      --label="e.payorch.inflight.$n" --out="$RUNS/e.payorch.inflight.$n.json"
    rm -f "$WORK/sampling"
    wait "$SAMPLER" || true
    sb GET /sandbox/counters | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"max_in_flight":d.get("max_in_flight"),"requests_by_endpoint":d.get("requests_by_endpoint")}))' \
      >"$RUNS/e.sandbox.$n.json"
    echo "  payorchd: $(cat "$RUNS/e.proc.$n.json")  sandbox: $(cat "$RUNS/e.sandbox.$n.json")"
  done
  sb DELETE /sandbox/faults >/dev/null
  sb_reset
fi

# ---------------------------------------------------------------- (f) scaling
# Creates per second and CPU per create against payorchd's CPU threads (1, 2)
# and the number of calls outstanding (1, 8, 32, 128).
if want f; then
  log "(f) scaling: CreateCheckout vs --cpu_threads (1, 2) and concurrency (1, 8, 32, 128)"
  start_payorchd ONE "${MTLS_ARGS[@]}" --cpu_threads=1
  for threads in 2 1; do
    if [[ $threads == 1 ]]; then pid=$ONE_PID addr=$ONE_ADDR; else pid=$MAIN_PID addr=$MAIN_ADDR; fi
    for conc in 1 8 32 128; do
      sb_reset
      "$LOADGEN" "${COMMON_LG[@]}" --target="$addr" "--cpu_pids=payorchd:$pid,$CPU_PIDS" \
        --op=create --concurrency=$conc --duration="${SCALE_DURATION}s" \
        --prefix="$RUN_ID-f$threads-$conc" --label="f.scale.t$threads.c$conc" \
        --out="$RUNS/f.scale.t$threads.c$conc.json" >/dev/null
    done
  done
  kill "$ONE_PID" 2>/dev/null || true
  sb_reset
fi

# ---------------------------------------------------------------- profile
if [[ $PROFILE == 1 ]]; then
  log "profile: perf record (cpu-clock) on payorchd under CreateCheckout load"
  "$LOADGEN" "${COMMON_LG[@]}" --op=create --concurrency=$PEAK_CONC --duration=12s \
    --prefix="$RUN_ID-prof" --label="profile.create" --out="$RUNS/profile.create.json" >/dev/null &
  PROF_LG=$!
  sleep 1
  PROF_T0=$(date +%s.%N)
  perf record -e cpu-clock -F 499 -g -p "$PAYORCHD_PID" -o "$WORK/perf.data" -- sleep 8 \
    >/dev/null 2>&1 || echo "perf record failed"
  PROF_T1=$(date +%s.%N)
  wait "$PROF_LG" || true
  # Requests completed while recording, from the run's average throughput.
  PROF_REQS="$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["throughput_rps"]*(float(sys.argv[3])-float(sys.argv[2]))))' \
    "$RUNS/profile.create.json" "$PROF_T0" "$PROF_T1")"
  perf script -i "$WORK/perf.data" 2>/dev/null \
    | "$PY" "$ROOT/bench/perf_categories.py" 499 "$PROF_REQS" "$RUNS/profile.categories.json" \
    | tee "$WORK/profile.txt"
  {
    echo "# perf record -e cpu-clock -F 499 -g on payorchd, CreateCheckout closed loop c=$PEAK_CONC, $PROF_REQS requests"
    cat "$WORK/profile.txt"
    echo
    echo "# top symbols (self time)"
    perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort comm,dso,symbol \
      --percent-limit 0.5 2>/dev/null | grep '%' | sed -E 's/ +/ /g' | cut -c1-200 | head -60
  } >"$RESULTS/$STAMP.perf.txt"
  echo "perf report: bench/results/$STAMP.perf.txt"
  sb_reset
fi

# ---------------------------------------------------------------- report
signbench end
cat >"$WORK/meta.json" <<EOF
{"stamp":"$STAMP","quick":$QUICK,"duration_s":$DURATION,"ramp_hold_s":$RAMP_HOLD,"reps":$REPS,
 "peak_concurrency":$PEAK_CONC,"ramp":"$RAMP","loadavg_at_start":$LOAD_AT_START,
 "payorchd_args":"${PAYORCHD_ARGS[*]//$WORK/\$WORK} ${MTLS_ARGS[*]//$WORK/\$WORK}",
 "payorchd_idle_threads":${IDLE_THREADS:-0},"payorchd_idle_rss_kb":${IDLE_RSS_KB:-0},
 "payorchd_final_hwm_rss_kb":$(proc_field "$PAYORCHD_PID" VmHWM),
 "git":"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo -dirty)"}
EOF
"$PY" "$ROOT/bench/report.py" "$WORK" "$RESULTS/$STAMP"
echo "results: bench/results/$STAMP.json bench/results/$STAMP.md"
