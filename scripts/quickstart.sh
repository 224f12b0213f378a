#!/usr/bin/env bash
# Quick start: sets up a Debian 12 machine, builds payorch, starts a local Redis, the
# local PayKKa sandbox and payorchd on embedded defaults (loopback only), and runs one
# checkout end to end: CreateCheckout -> the shopper pays in the sandbox -> GetOrder.
# Then it keeps everything running until Ctrl-C (or exits after the demo with --demo-only).
#
# Options: --demo-only   stop everything after the demo
#          --no-build    use an existing build (PAYORCH_BUILD_DIR, default ./build)
# Ports (env): PAYORCH_GRPC_PORT (50051), PAYORCH_HTTP_PORT (8080); Redis and the sandbox
# take free ports. Keys are generated into .run/ (git-ignored) on every start.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO_ONLY=0; BUILD=1
for a in "$@"; do
  case "$a" in
    --demo-only) DEMO_ONLY=1 ;;
    --no-build) BUILD=0 ;;
    *) echo "usage: $0 [--demo-only] [--no-build]" >&2; exit 2 ;;
  esac
done

if ((BUILD)); then
  ./scripts/setup.sh
  ./scripts/build.sh -DBUILD_TESTING=OFF
fi
BIN=${PAYORCH_BUILD_DIR:-$ROOT/build}/bin
GRPC_PORT=${PAYORCH_GRPC_PORT:-50051}
HTTP_PORT=${PAYORCH_HTTP_PORT:-8080}
RUN=$ROOT/.run
rm -rf "$RUN"; mkdir -p "$RUN"; chmod 700 "$RUN"

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_for_line() {  # file prefix
  for _ in $(seq 100); do
    grep -m1 "^$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "quickstart: timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

echo "== keys (generated now, never committed)"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$RUN/merchant_private.pem" 2>/dev/null
openssl pkey -in "$RUN/merchant_private.pem" -pubout -out "$RUN/merchant_public.pem"
MERCHANT=M100001; APP=APP100001; CLIENT_KEY=ck_sandbox_demo
echo "== mTLS: a throw-away CA, payorchd's certificate and one caller's (spiffe://payorch.local/demo)"
./scripts/make_mtls_certs.sh "$RUN/tls" spiffe://payorch.local/demo
cat >"$RUN/policy.json" <<JSON
{"callers":[{"identity":"spiffe://payorch.local/demo","merchants":["$MERCHANT"],"methods":["*"]}]}
JSON

echo "== redis"
REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RUN" --save '' --appendonly no \
  --logfile "$RUN/redis.log" </dev/null >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "== paykka-sandbox"
cat >"$RUN/sandbox.json" <<JSON
{"merchants":[{"merchant_id":"$MERCHANT","app_id":"$APP","public_key_file":"$RUN/merchant_public.pem","client_key":"$CLIENT_KEY"}]}
JSON
"$BIN/paykka-sandbox" --listen=127.0.0.1:0 --config="$RUN/sandbox.json" \
  --platform-public-key-out="$RUN/paykka_public.pem" >"$RUN/sandbox.out" 2>"$RUN/sandbox.log" </dev/null &
PIDS+=($!)
SANDBOX=$(wait_for_line "$RUN/sandbox.out" listening | awk '{print $2}')
echo "sandbox on http://$SANDBOX"

echo "== payorchd"
cat >"$RUN/merchants.json" <<JSON
{"merchants":[{"merchant_id":"$MERCHANT","app_id":"$APP",
  "private_key_file":"merchant_private.pem","paykka_public_key_file":"paykka_public.pem",
  "verify_response_signatures":true,"client_key":"$CLIENT_KEY","base_url":"http://$SANDBOX"}]}
JSON
"$BIN/payorchd" --grpc_listen="127.0.0.1:$GRPC_PORT" --http_listen="127.0.0.1:$HTTP_PORT" \
  --redis_url="redis://127.0.0.1:$REDIS_PORT" --merchants_config="$RUN/merchants.json" \
  --paykka_allow_http \
  --tls_cert_file="$RUN/tls/server.pem" --tls_key_file="$RUN/tls/server.key" \
  --tls_client_ca_file="$RUN/tls/ca.pem" --caller_policy="$RUN/policy.json" --reflection \
  >"$RUN/payorchd.out" 2>"$RUN/payorchd.log" </dev/null &
PIDS+=($!)
wait_for_line "$RUN/payorchd.out" "listening grpc" >/dev/null
echo "payorchd gRPC (mTLS) on 127.0.0.1:$GRPC_PORT, HTTP (metrics, health) on 127.0.0.1:$HTTP_PORT"

echo "== demo: a Drop-in checkout, paid, then read back"
CTL=("$BIN/payorchctl" --target="127.0.0.1:$GRPC_PORT" --ca="$RUN/tls/ca.pem"
  --cert="$RUN/tls/client-demo.pem" --key="$RUN/tls/client-demo.key")
TRANS="demo-$(date +%s)"
EXPIRE=$(date -u -d '+30 min' +%Y-%m-%dT%H:%M:%SZ)
"${CTL[@]}" create-checkout "{\"merchant_id\":\"$MERCHANT\",\"trans_id\":\"$TRANS\",
  \"payment_type\":\"PAYMENT_TYPE_PURCHASE\",\"session_mode\":\"SESSION_MODE_DROP_IN\",
  \"amount\":\"1999\",\"currency\":\"USD\",\"expire_time\":\"$EXPIRE\",
  \"return_url\":\"https://shop.example/return\"}" | tee "$RUN/checkout.json"
SESSION=$(/usr/bin/python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["session_id"])' "$RUN/checkout.json")
echo "-- the shopper pays in the sandbox (test card 4242 4242 4242 4242)"
curl -sf -X POST "http://$SANDBOX/sandbox/sessions/$SESSION/pay" \
  -H 'content-type: application/json' -d '{"outcome":"SUCCESS","card_no":"4242424242424242"}' >/dev/null
echo "-- GetOrder by session_id"
"${CTL[@]}" order --merchant_id="$MERCHANT" --session_id="$SESSION" | tee "$RUN/order.json"
grep -q '"ORDER_STATUS_SUCCESS"' "$RUN/order.json"
echo "-- the same CreateCheckout again is replayed from Redis (same session_id)"
"${CTL[@]}" create-checkout "$(cat <<JSON
{"merchant_id":"$MERCHANT","trans_id":"$TRANS","payment_type":"PAYMENT_TYPE_PURCHASE",
 "session_mode":"SESSION_MODE_DROP_IN","amount":"1999","currency":"USD","expire_time":"$EXPIRE",
 "return_url":"https://shop.example/return"}
JSON
)" | grep -q "\"$SESSION\""
echo "-- without a client certificate the call is refused"
if "$BIN/payorchctl" --target="127.0.0.1:$GRPC_PORT" --ca="$RUN/tls/ca.pem" --timeout=5s \
    order --merchant_id="$MERCHANT" --session_id="$SESSION" >/dev/null 2>&1; then
  echo "quickstart: a call without a client certificate was accepted" >&2; exit 1
fi
echo "quickstart: demo passed"

if ((DEMO_ONLY)); then exit 0; fi
cat <<TXT

Everything is running (Ctrl-C stops it):
  payorchctl:  $BIN/payorchctl --target=127.0.0.1:$GRPC_PORT --ca=$RUN/tls/ca.pem \
                 --cert=$RUN/tls/client-demo.pem --key=$RUN/tls/client-demo.key order --merchant_id=$MERCHANT --trans_id=$TRANS
  checkout:    http://$SANDBOX/checkout/$SESSION
  metrics:     curl http://127.0.0.1:$HTTP_PORT/metrics
  logs:        $RUN/*.log
TXT
wait
