# Shell helpers shared by bench/run.sh and bench/cluster.sh (sourced, not run).
# They use the caller's PY, WORK, BIN and PIDS (every process started is
# appended to PIDS, for the caller's cleanup trap).

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_line FILE REGEX SECONDS: prints the first matching line.
wait_line() {
  local file=$1 re=$2 secs=$3
  for _ in $(seq $((secs * 10))); do
    if grep -qE "$re" "$file" 2>/dev/null; then grep -m1 -E "$re" "$file"; return 0; fi
    sleep 0.1
  done
  echo "bench: timed out waiting for '$re' in $file" >&2
  return 1
}

# Fresh RSA-2048 merchant keys in $WORK.
make_keys() {
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/merchant.pem" 2>/dev/null
  openssl pkey -in "$WORK/merchant.pem" -pubout -out "$WORK/merchant_pub.pem"
  chmod 600 "$WORK/merchant.pem"
}

# Starts paykka-sandbox on a free port; sets SB (its URL) and SANDBOX_PID, and
# writes $WORK/merchants.json for payorchd pointing at it. With SANDBOX_TLS=1
# it also serves HTTPS (a throw-away CA in $WORK/tls, trusted through
# $WORK/tls/ca.pem): SB_TLS is that URL, merchant M100001 uses it and
# M100002 (same keys) the plain-HTTP one, so both are measured side by side.
start_sandbox() {
  local tls_args=()
  if [[ ${SANDBOX_TLS:-0} == 1 ]]; then
    bash "$ROOT/tests/testing/make_test_certs.sh" "$WORK/tls"
    tls_args=(--tls-listen=127.0.0.1:0 "--tls-cert=$WORK/tls/server.pem"
      "--tls-key=$WORK/tls/server.key")
  fi
  cat >"$WORK/sandbox.json" <<EOF
{"merchants":[{"merchant_id":"M100001","app_id":"APP100001","public_key_file":"$WORK/merchant_pub.pem","client_key":"ck_bench"},
 {"merchant_id":"M100002","app_id":"APP100002","public_key_file":"$WORK/merchant_pub.pem","client_key":"ck_bench"}]}
EOF
  "$BIN/paykka-sandbox" --listen=127.0.0.1:0 --config="$WORK/sandbox.json" "${tls_args[@]}" \
    --platform-public-key-out="$WORK/platform_pub.pem" \
    </dev/null >"$WORK/sandbox.out" 2>"$WORK/sandbox.err" &
  PIDS+=($!)
  SANDBOX_PID=$!
  SB="http://127.0.0.1:$(wait_line "$WORK/sandbox.out" '^listening ' 20 | sed -E 's/.*:([0-9]+)$/\1/')"
  SB_TLS=""
  if [[ ${SANDBOX_TLS:-0} == 1 ]]; then
    SB_TLS="https://$(wait_line "$WORK/sandbox.out" '^https listening ' 20 | awk '{print $3}')"
  fi
  for _ in $(seq 50); do [[ -s "$WORK/platform_pub.pem" ]] && break; sleep 0.1; done
  local m='"private_key_file":"'"$WORK"'/merchant.pem","paykka_public_key_file":"'"$WORK"'/platform_pub.pem","verify_response_signatures":true,"client_key":"ck_bench"'
  cat >"$WORK/merchants.json" <<EOF
{"merchants":[{"merchant_id":"M100001","app_id":"APP100001",$m,"base_url":"${SB_TLS:-$SB}"},
 {"merchant_id":"M100002","app_id":"APP100002",$m,"base_url":"$SB"}]}
EOF
}

sb() {  # sb METHOD PATH [BODY]: the sandbox's control API
  curl -sS --max-time 10 -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} "$SB$2"
}
sb_reset() { sb POST /sandbox/reset >/dev/null; }

# Stops every process in PIDS: SIGTERM, up to 5 s each to exit, then SIGKILL.
stop_pids() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
