#!/usr/bin/env bash
# The chart's rendered configuration, run for real on loopback (no cluster): payorchd started with
# the Deployment's own args (paths mapped to a temp dir, listeners on 127.0.0.1, Redis "memory"),
# its TLS files laid out as the Secret volume, and the caller policy ConfigMap laid out as the
# kubelet writes a ConfigMap volume (timestamped dir, ..data symlink, file symlinks). Checks:
#   1. the `helm test` pod's script, run with the real payorchctl and the client certificate at the
#      paths the pod mounts, reports SERVING over mTLS; with a certificate from another CA it fails;
#   2. a caller without a policy line gets CALLER_NOT_AUTHORIZED; the next policy, swapped in the
#      way the kubelet updates a ConfigMap (..data renamed over), is applied by the running payorchd
#      (same PID) within a few seconds, and the caller is let through to the merchant check.
#   helm/live_test.sh HELM BIN_DIR       (called by helm/test.sh; needs node with `yaml` on NODE_PATH)
set -uo pipefail
helm=$1
bin=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
chart=$here/payorch
dir=$(mktemp -d "${TMPDIR:-/tmp}/payorch-helm-live.XXXXXX") || exit 1
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  [ -f "$dir/payorchd.log" ] && tail -n 20 "$dir/payorchd.log"
  exit 1
}

# doc FILE KIND NAME [JSONPATH]: a rendered object (or a field of it) as JSON.
doc() {
  node -e 'const Y=require("yaml"),fs=require("fs");const [f,k,n,p]=process.argv.slice(1);
    const o=Y.parseAllDocuments(fs.readFileSync(f,"utf8")).map((d)=>d.toJSON())
      .find((x)=>x&&x.kind===k&&x.metadata.name===n);
    if(!o){console.error(`no ${k} ${n}`);process.exit(1);}
    let v=o;for(const s of (p||"").split(".").filter(Boolean))v=v[s];
    process.stdout.write(typeof v==="string"?v:JSON.stringify(v));' "$@"
}

# policy_version N FILE: the kubelet's ConfigMap volume layout, then an atomic swap to version N.
policy_version() {
  local v=$dir/policy/..v$1
  mkdir -p "$v" && cp "$2" "$v/caller_policy.json" || return 1
  ln -sfn "..v$1" "$dir/policy/..data_tmp" && mv -T "$dir/policy/..data_tmp" "$dir/policy/..data" || return 1
  [ -L "$dir/policy/caller_policy.json" ] || ln -s ..data/caller_policy.json "$dir/policy/caller_policy.json"
}

# --- certificates: the Secret volume, the test client's Secret, and a stranger ------------------
"$repo/scripts/make_mtls_certs.sh" "$dir/certs" helm-test >/dev/null || fail "make_mtls_certs.sh"
"$repo/scripts/make_mtls_certs.sh" "$dir/other" helm-test >/dev/null || fail "make_mtls_certs.sh (other CA)"
mkdir -p "$dir/tls" "$dir/client" "$dir/stranger" "$dir/config" "$dir/policy"
cp "$dir/certs/server.pem" "$dir/tls/tls.crt" && cp "$dir/certs/server.key" "$dir/tls/tls.key" &&
  cp "$dir/certs/ca.pem" "$dir/tls/ca.crt" || fail "TLS Secret layout"
cp "$dir/certs/client-helm-test.pem" "$dir/client/tls.crt" && cp "$dir/certs/client-helm-test.key" "$dir/client/tls.key" &&
  cp "$dir/certs/ca.pem" "$dir/client/ca.crt" || fail "client Secret layout"
cp "$dir/other/client-helm-test.pem" "$dir/stranger/tls.crt" && cp "$dir/other/client-helm-test.key" "$dir/stranger/tls.key" &&
  cp "$dir/certs/ca.pem" "$dir/stranger/ca.crt" || fail "stranger layout"

# --- render: default values (mTLS, no callers), then a policy with the test client's line -------
"$helm" template payorch "$chart" --namespace payments --set tests.health.attempts=2 >"$dir/v1.yaml" ||
  fail "render"
"$helm" template payorch "$chart" --namespace payments \
  --set 'callerPolicy.callers[0].identity=helm-test' --set 'callerPolicy.callers[0].merchants={M1}' \
  --set 'callerPolicy.callers[0].methods={GetOrder}' >"$dir/v2.yaml" || fail "render with a policy line"
node -e 'const Y=require("yaml"),fs=require("fs");const [f,o]=process.argv.slice(1);
  const d=Y.parseAllDocuments(fs.readFileSync(f,"utf8")).map((x)=>x.toJSON());
  const cm=(n)=>d.find((x)=>x&&x.kind==="ConfigMap"&&x.metadata.name===n).data;
  fs.writeFileSync(o+"/config/merchants.json",cm("payorch")["merchants.json"]);
  fs.writeFileSync(o+"/policy-v1.json",cm("payorch-caller-policy")["caller_policy.json"]);' \
  "$dir/v1.yaml" "$dir" || fail "ConfigMaps"
node -e 'const Y=require("yaml"),fs=require("fs");const [f,o]=process.argv.slice(1);
  const d=Y.parseAllDocuments(fs.readFileSync(f,"utf8")).map((x)=>x.toJSON());
  fs.writeFileSync(o,d.find((x)=>x&&x.kind==="ConfigMap"&&x.metadata.name==="payorch-caller-policy").data["caller_policy.json"]);' \
  "$dir/v2.yaml" "$dir/policy-v2.json" || fail "policy v2"
policy_version 1 "$dir/policy-v1.json" || fail "policy layout"

# --- payorchd with the Deployment's args --------------------------------------------------------
args=$(doc "$dir/v1.yaml" Deployment payorch spec.template.spec.containers.0.args) || fail "Deployment args"
mapfile -t argv < <(node -e 'for (const a of JSON.parse(process.argv[1])) console.log(a)' "$args")
mapped=()
for a in "${argv[@]}"; do
  a=${a//0.0.0.0:[0-9]*/127.0.0.1:0}
  a=${a//\/var\/run\/secrets\/payorch\/tls/$dir/tls}
  a=${a//\/etc\/payorch-policy/$dir/policy}
  a=${a//\/etc\/payorch\//$dir/config/}
  case "$a" in --redis_url=*) a=--redis_url=memory ;; esac
  mapped+=("$a")
done
printf '%s\n' "${mapped[@]}" | grep -q -- '--insecure_plaintext' && fail "the default render runs plaintext"
"$bin/payorchd" "${mapped[@]}" >"$dir/payorchd.out" 2>"$dir/payorchd.log" </dev/null &
pid=$!
for _ in $(seq 100); do
  grep -q '^listening grpc' "$dir/payorchd.out" && grep -q '^listening health' "$dir/payorchd.out" && break
  kill -0 "$pid" 2>/dev/null || fail "payorchd exited"
  sleep 0.1
done
grpc=$(sed -n 's/^listening grpc \(.*\)$/\1/p' "$dir/payorchd.out")
health=$(sed -n 's/^listening health \(.*\)$/\1/p' "$dir/payorchd.out")
[ -n "$grpc" ] && [ -n "$health" ] || fail "payorchd did not report its gRPC and health listeners"
echo "payorchd (pid $pid) from the chart's args: grpc $grpc (mTLS), health $health (plaintext)"
"$bin/payorchctl" --plaintext --target="$health" --timeout=5s health | grep -q '"SERVING"' ||
  fail "the kubelet's probe target (health listener, plaintext) is not SERVING"

# --- 1. the helm test pod's script, with the real payorchctl --------------------------------------
node -e 'const Y=require("yaml"),fs=require("fs");const d=Y.parseAllDocuments(fs.readFileSync(process.argv[1],"utf8")).map((x)=>x.toJSON());
  const p=d.find((x)=>x&&x.kind==="Pod");fs.writeFileSync(process.argv[2],p.spec.containers[0].args[0]);' \
  "$dir/v1.yaml" "$dir/test-pod.sh" || fail "test pod script"
run_test_pod() { # run_test_pod CLIENT_DIR: the pod's script; payorchctl sees the pod's paths mapped
  mkdir -p "$dir/shim" || return 1
  cat >"$dir/shim/payorchctl" <<EOF
#!/bin/sh
# The Service name resolves to the pod in the cluster; here it is payorchd on loopback.
args=""
for a in "\$@"; do
  case "\$a" in
    --target=*) a="--target=$grpc" ;;
    *) a=\$(printf '%s' "\$a" | sed "s|/var/run/secrets/payorch/client|$1|") ;;
  esac
  args="\$args '\$a'"
done
eval exec "$bin/payorchctl" \$args
EOF
  chmod +x "$dir/shim/payorchctl"
  PATH=$dir/shim:/usr/bin:/bin /bin/sh "$dir/test-pod.sh"
}
out=$(run_test_pod "$dir/client" 2>&1) || fail "helm test script with the client certificate: $out"
grep -q '"SERVING"' <<<"$out" || fail "helm test script passed without SERVING: $out"
echo "helm test pod, client certificate from the test Secret: SERVING"
grep -q -- '--cert=' "$dir/test-pod.sh" || fail "the test pod script passes no --cert"
if out=$(run_test_pod "$dir/stranger" 2>&1); then fail "helm test passed with a certificate from another CA"; fi
echo "helm test pod, certificate from another CA: refused ($(tail -n 1 <<<"$out"))"

# --- 2. caller policy: denied, then the ConfigMap swap lets the caller through -------------------
ctl=("$bin/payorchctl" --target="$grpc" --timeout=5s --ca="$dir/client/ca.crt" --cert="$dir/client/tls.crt"
  --key="$dir/client/tls.key")
out=$("${ctl[@]}" order --merchant_id=M1 --trans_id=live-1 2>&1)
denied() { grep -q '"code": 7,' <<<"$1" && grep -q '"reason": "CALLER_NOT_AUTHORIZED"' <<<"$1"; }
denied "$out" || fail "no policy line, but not PERMISSION_DENIED: $out"
grep -q '"caller":"helm-test".*"reason":"CALLER_NOT_AUTHORIZED"' "$dir/payorchd.log" ||
  fail "payorchd did not log CALLER_NOT_AUTHORIZED for caller helm-test"
echo "caller helm-test without a policy line: PERMISSION_DENIED / CALLER_NOT_AUTHORIZED"
policy_version 2 "$dir/policy-v2.json" || fail "policy swap"
rm -rf "$dir/policy/..v1" # the kubelet removes the old version
for i in $(seq 50); do
  out=$("${ctl[@]}" order --merchant_id=M1 --trans_id=live-1 2>&1)
  denied "$out" || break
  sleep 0.1
done
denied "$out" && fail "the swapped policy was not applied within 5 s"
grep -q '"code": 9,' <<<"$out" && grep -q '"reason": "MERCHANT_NOT_CONFIGURED"' <<<"$out" &&
  grep -q '"caller":"helm-test".*"reason":"MERCHANT_NOT_CONFIGURED"' "$dir/payorchd.log" ||
  fail "after the swap, expected FAILED_PRECONDITION / MERCHANT_NOT_CONFIGURED: $out"
kill -0 "$pid" 2>/dev/null || fail "payorchd restarted or died"
grep -q '"msg":"caller policy reloaded".*"entries":1}' "$dir/payorchd.log" || fail "no reload log line"
echo "after the ..data swap: applied in $((i * 100)) ms or less by the same payorchd (pid $pid): MERCHANT_NOT_CONFIGURED"
