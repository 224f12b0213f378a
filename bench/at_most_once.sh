#!/usr/bin/env bash
# The cost of each "a create is written to the wire at most once" mechanism,
# measured the way production reaches PayKKa: HTTPS (a throw-away CA and
# server certificate made here) across an emulated round-trip time
# (rtt-relay, every read and write delayed, connection setup and TLS
# handshakes included). Writes bench/results/at_most_once.json.
#   BUILD_DIR=build RTT=25ms COUNT=200 bench/at_most_once.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/bin
RTT=${RTT:-25ms}
COUNT=${COUNT:-200}
OUT=${OUT:-bench/results/at_most_once.json}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
bash tests/testing/make_test_certs.sh "$work/tls"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/m.pem" 2>/dev/null
openssl pkey -in "$work/m.pem" -pubout -out "$work/m_pub.pem"
cat > "$work/sandbox.json" <<JSON
{"merchants":[{"merchant_id":"M1","app_id":"A1","public_key_file":"$work/m_pub.pem","client_key":"ck"}]}
JSON
"$BIN/paykka-sandbox" --listen=127.0.0.1:0 --config="$work/sandbox.json" \
  --tls-listen=127.0.0.1:0 --tls-cert="$work/tls/server.pem" \
  --tls-key="$work/tls/server.key" >"$work/sandbox.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "https listening" "$work/sandbox.out" && break; sleep 0.1; done
tls=$(sed -n 's/^https listening //p' "$work/sandbox.out" | head -1)
"$BIN/rtt-relay" --target="$tls" --rtt="$RTT" >"$work/relay.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "^listening" "$work/relay.out" && break; sleep 0.1; done
relay=$(sed -n 's/^listening //p' "$work/relay.out" | head -1)
url="https://$relay/v3/payment/acq/query"
{
  echo "{\"rtt\":\"$RTT\",\"tls\":true,\"runs\":["
  first=1
  for m in keepalive noseek fresh; do
    line=$("$BIN/at-most-once-bench" --url="$url" --ca_file="$work/tls/ca.pem" \
      --mechanism="$m" --count="$COUNT")
    [[ $first == 1 ]] || echo ","
    first=0
    echo "$line"
  done
  echo "]}"
} >"$OUT"
cat "$OUT"
