#!/usr/bin/env bash
# The runtime image, built by scripts/image.sh and run with podman the way the Helm chart runs it:
# read-only root, the image's non-root uid, host network (loopback ports only), mTLS on the gRPC
# port with the certificate, key and callers' CA mounted read-only, the caller policy from a
# mounted directory, and the plaintext health-only listener for probes. The sandbox runs from the
# same image; Redis is a host redis-server on a free port. Checks: the process uid is 65532, the
# health listener turns "SERVING" (as the kubelet's probe sees it), the image's payorchctl gets
# SERVING over mTLS with a client certificate mounted where the chart's `helm test` pod has it (and
# not in plaintext), one Drop-in checkout is paid end to end and read back as SUCCESS, and SIGTERM
# during an in-flight call lets that call finish and exits 0.
#   tests/image/image_test.sh [BIN_DIR]     (CI: a step of scripts/test.sh; needs root and podman)
# Prints the image size, start-to-SERVING time and its own wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=$(realpath "${1:-$ROOT/build/bin}")
if [ "$(id -u)" -ne 0 ]; then
  echo "image test: needs root (rootful podman); not run"
  exit 0
fi
T0=$(date +%s.%N)
ID=payorch-imgtest-$$
TAG=localhost/payorch/payorchd:test-$$
WORK=$(mktemp -d)
chmod 755 "$WORK"
# shellcheck source=scripts/image/podman.sh
. scripts/image/podman.sh
payorch_podman_conf "$WORK"
REDIS_PID=""
cleanup() {
  podman rm -f -t 0 "$ID-payorchd" "$ID-sandbox" >/dev/null 2>&1 || true
  podman rmi -f "$TAG" >/dev/null 2>&1 || true
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "image test: FAIL: $*" >&2
  for c in sandbox payorchd; do
    echo "--- $c log" >&2
    podman logs "$ID-$c" >&2 2>&1 || true
  done
  exit 1
}
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "== build the image"
./scripts/image.sh --tag "$TAG" --bin "$BIN"
SIZE_MB=$(($(podman image inspect --format '{{.Size}}' "$TAG") / 1000000))
[ "$(podman image inspect --format '{{.Config.User}}' "$TAG")" = 65532:65532 ] ||
  fail "image user is not 65532:65532"

echo "== config and keys (generated now; readable by the image's uid only where secret)"
CFG=$WORK/cfg SHARED=$WORK/shared
mkdir -p "$CFG" "$SHARED"
chmod 755 "$CFG"
chown 65532:65532 "$SHARED"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$CFG/merchant_private.pem" 2>/dev/null
openssl pkey -in "$CFG/merchant_private.pem" -pubout -out "$CFG/merchant_public.pem"
chown 65532:65532 "$CFG/merchant_private.pem"
chmod 400 "$CFG/merchant_private.pem"
MERCHANT=M100001 APP=APP100001 CLIENT_KEY=ck_sandbox_imagetest
SB_PORT=$(free_port) GRPC_PORT=$(free_port) HTTP_PORT=$(free_port) REDIS_PORT=$(free_port)
HEALTH_PORT=$(free_port)
# mTLS: a throw-away CA, payorchd's certificate for 127.0.0.1, one caller; the keys readable by
# the image's uid only. The caller policy in its own directory, as the chart mounts its ConfigMap.
TLS=$WORK/tls POLICY=$WORK/policy CALLER=spiffe://payorch.test/image-test
./scripts/make_mtls_certs.sh "$TLS" "$CALLER" >/dev/null
chmod 755 "$TLS" && chmod 644 "$TLS"/*.pem && chown 65532:65532 "$TLS"/*.key
mkdir -p "$POLICY" && chmod 755 "$POLICY"
echo "{\"callers\":[{\"identity\":\"$CALLER\",\"merchants\":[\"*\"],\"methods\":[\"*\"]}]}" \
  >"$POLICY/caller_policy.json"
chmod 644 "$POLICY/caller_policy.json"
CLIENT=(--ca="$TLS/ca.pem" --cert="$TLS/client-image-test.pem" --key="$TLS/client-image-test.key")
cat >"$CFG/sandbox.json" <<JSON
{"merchants":[{"merchant_id":"$MERCHANT","app_id":"$APP","public_key_file":"/cfg/merchant_public.pem","client_key":"$CLIENT_KEY"}]}
JSON
cat >"$CFG/merchants.json" <<JSON
{"merchants":[{"merchant_id":"$MERCHANT","app_id":"$APP",
  "private_key_file":"merchant_private.pem","paykka_public_key_file":"/shared/paykka_public.pem",
  "verify_response_signatures":true,"client_key":"$CLIENT_KEY","base_url":"http://127.0.0.1:$SB_PORT"}]}
JSON
chmod 644 "$CFG"/*.json "$CFG/merchant_public.pem"

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK" --save '' --appendonly no \
  --logfile "$WORK/redis.log" </dev/null >/dev/null 2>&1 &
REDIS_PID=$!

RUN=(podman run -d --network=host --read-only)
echo "== sandbox container"
"${RUN[@]}" --name "$ID-sandbox" -v "$CFG:/cfg:ro" -v "$SHARED:/shared" \
  --entrypoint /usr/local/bin/paykka-sandbox "$TAG" \
  --listen="127.0.0.1:$SB_PORT" --config=/cfg/sandbox.json \
  --platform-public-key-out=/shared/paykka_public.pem >/dev/null
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$SB_PORT/sandbox/clock" >/dev/null && [ -s "$SHARED/paykka_public.pem" ] && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$SB_PORT/sandbox/clock" >/dev/null || fail "sandbox did not come up"

echo "== payorchd container"
CTL=("$BIN/payorchctl" --target="127.0.0.1:$GRPC_PORT" --timeout=10s "${CLIENT[@]}")
PROBE=("$BIN/payorchctl" --target="127.0.0.1:$HEALTH_PORT" --plaintext) # what the kubelet's probe asks
START=$(now)
"${RUN[@]}" --name "$ID-payorchd" -v "$CFG:/cfg:ro" -v "$SHARED:/shared:ro" \
  -v "$TLS:/var/run/secrets/payorch/tls:ro" -v "$POLICY:/etc/payorch-policy:ro" "$TAG" \
  --grpc_listen="127.0.0.1:$GRPC_PORT" --http_listen="127.0.0.1:$HTTP_PORT" \
  --health_listen="127.0.0.1:$HEALTH_PORT" \
  --tls_cert_file=/var/run/secrets/payorch/tls/server.pem \
  --tls_key_file=/var/run/secrets/payorch/tls/server.key \
  --tls_client_ca_file=/var/run/secrets/payorch/tls/ca.pem \
  --caller_policy=/etc/payorch-policy/caller_policy.json \
  --redis_url="redis://127.0.0.1:$REDIS_PORT" --merchants_config=/cfg/merchants.json \
  --drain_grace=10s --paykka_allow_http >/dev/null
SERVING=""
for _ in $(seq 300); do
  if [[ "$("${PROBE[@]}" --timeout=1s health 2>/dev/null)" == *'"SERVING"'* ]]; then SERVING=$(now); break; fi
  [ "$(podman inspect --format '{{.State.Running}}' "$ID-payorchd")" = true ] || fail "payorchd exited"
  sleep 0.05
done
[ -n "$SERVING" ] || fail "health never SERVING"
TO_SERVING=$(elapsed "$START" "$SERVING")
# payorchctl inside the image (the chart's `helm test` pod runs it, with its client certificate
# mounted at /var/run/secrets/payorch/client) sees the same over mTLS; in plaintext it is refused.
IN_IMAGE=(podman run --rm --network=host --read-only -v "$TLS:/var/run/secrets/payorch/client:ro"
  --entrypoint /usr/local/bin/payorchctl "$TAG" --target="127.0.0.1:$GRPC_PORT" --timeout=5s)
C=/var/run/secrets/payorch/client
[[ "$("${IN_IMAGE[@]}" --ca=$C/ca.pem --cert=$C/client-image-test.pem --key=$C/client-image-test.key \
  health)" == *'"SERVING"'* ]] || fail "payorchctl in the image, over mTLS"
if [[ "$("${IN_IMAGE[@]}" --plaintext health 2>&1)" == *'"SERVING"'* ]]; then
  fail "the gRPC port answered a plaintext client"
fi
PID=$(podman inspect --format '{{.State.Pid}}' "$ID-payorchd")
UID_LINE=$(awk '/^Uid:/ {print $2, $3}' "/proc/$PID/status")
[ "$UID_LINE" = "65532 65532" ] || fail "payorchd runs as uid '$UID_LINE', not 65532"

echo "== a Drop-in checkout, paid in the sandbox, read back"
EXPIRE=$(date -u -d '+30 min' +%Y-%m-%dT%H:%M:%SZ)
checkout() {
  "${CTL[@]}" create-checkout "{\"merchant_id\":\"$MERCHANT\",\"trans_id\":\"$1\",
    \"payment_type\":\"PAYMENT_TYPE_PURCHASE\",\"session_mode\":\"SESSION_MODE_DROP_IN\",
    \"amount\":\"1999\",\"currency\":\"USD\",\"expire_time\":\"$EXPIRE\",
    \"return_url\":\"https://shop.example/return\"}"
}
checkout "img-$$-1" >"$WORK/checkout.json" || fail "CreateCheckout"
SESSION=$(/usr/bin/python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["session_id"])' "$WORK/checkout.json")
curl -sf -X POST "http://127.0.0.1:$SB_PORT/sandbox/sessions/$SESSION/pay" -H 'content-type: application/json' \
  -d '{"outcome":"SUCCESS","card_no":"4242424242424242"}' >/dev/null || fail "pay in the sandbox"
"${CTL[@]}" order --merchant_id="$MERCHANT" --session_id="$SESSION" >"$WORK/order.json" || fail "GetOrder"
grep -q '"ORDER_STATUS_SUCCESS"' "$WORK/order.json" || fail "order not SUCCESS: $(cat "$WORK/order.json")"
# (grep reads a file: `curl | grep -q` fails under pipefail when grep exits first)
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >"$WORK/metrics.txt" || fail "GET /metrics"
grep -q '^payorch_requests_total{.*CreateCheckout' "$WORK/metrics.txt" ||
  fail "/metrics does not count the call"

echo "== SIGTERM with a call in flight: the call finishes, the process exits 0"
curl -sf -X PUT "http://127.0.0.1:$SB_PORT/sandbox/faults" -H 'content-type: application/json' \
  -d '{"rules":[{"endpoint":"/v3/payment/acq/session","latency_ms":2000}]}' >/dev/null || fail "faults"
checkout "img-$$-2" >"$WORK/inflight.json" 2>&1 &
INFLIGHT=$!
in_flight() { [[ "$(curl -sf "http://127.0.0.1:$SB_PORT/sandbox/counters")" == *'"in_flight":1'* ]]; }
for _ in $(seq 100); do in_flight && break; sleep 0.05; done
in_flight || fail "call not in flight"
podman kill --signal TERM "$ID-payorchd" >/dev/null
wait "$INFLIGHT" || fail "in-flight call failed during drain: $(cat "$WORK/inflight.json")"
grep -q '"session_id"' "$WORK/inflight.json" || fail "in-flight call: $(cat "$WORK/inflight.json")"
CODE=$(timeout 30 podman wait "$ID-payorchd") || fail "payorchd did not exit after SIGTERM"
[ "$CODE" = 0 ] || fail "payorchd exited $CODE after SIGTERM"

awk -v s="$SIZE_MB" -v t="$TO_SERVING" -v a="$T0" -v b="$(now)" 'BEGIN {
  printf "image test: passed (image %d MB, start to SERVING %.2f s, test %.0f s)\n", s, t, b - a }'
