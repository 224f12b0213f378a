#!/usr/bin/env bash
# Installs what payorch needs to build, test and run on Debian 12 (bookworm).
# Idempotent: only missing packages are installed. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang-format
  clang  # libFuzzer (scripts/fuzz.sh)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev grpc-proto
  golang-github-gogo-googleapis-dev
  libcurl4-openssl-dev libhiredis-dev libevent-dev libssl-dev openssl
  libgoogle-perftools-dev  # tcmalloc_minimal, linked into payorchd
  prometheus-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools curl ca-certificates python3 python3-grpcio python3-protobuf
  nodejs npm unzip yamllint
  prometheus  # for promtool: helm/test.sh checks and unit-tests the chart's alerts
  # Go client (clients/go): golang-github-golang-protobuf-1-5-dev must be named with grpc, or
  # apt picks protobuf 1.3 and the first RPC panics.
  golang-go golang-google-grpc-dev golang-github-golang-protobuf-1-5-dev golang-google-protobuf-dev
  protoc-gen-go protoc-gen-go-grpc
  # Java client (clients/java): grpc-java's jar dependencies are not pulled in by libgrpc-java.
  default-jdk-headless libgrpc-java protobuf-compiler-grpc-java-plugin libprotobuf-java
  libnetty-java libguava-java libperfmark-java libgeronimo-annotation-1.3-spec-java
  libjsr305-java liberror-prone-java junit4
  # TLS for the Java client: Debian's netty has no JDK ALPN negotiator, so grpc-java's mTLS needs
  # OpenSSL through netty-tcnative (clients/java/build.sh places the JNI library).
  libnetty-tcnative-java libnetty-tcnative-jni
  # Container image (scripts/image.sh, tests/image): rootful podman with runc, mmdebstrap.
  podman mmdebstrap runc
  # The hosted checkout page in a real browser (tests/browser): puppeteer-core drives this one.
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere than Debian (e.g. a preinstalled Node): accept that.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"

# npm packages, pinned by each package-lock.json: the Node.js client's dependencies, buf, and
# puppeteer-core for tests/browser (it downloads no browser: the test uses Debian's chromium).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for dir in "$ROOT/clients/node" "$ROOT/scripts/buf" "$ROOT/tests/browser"; do
  if ! (cd "$dir" && npm ls >/dev/null 2>&1); then
    echo "setup: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
