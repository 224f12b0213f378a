#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds payorch with warnings as errors, checks
# formatting and that the repository is self-contained (scripts/check_repo_refs.py), lints proto/
# and checks it for breaking changes (buf), and runs every test: unit and integration tests (ctest
# starts its own redis-server, paykka-sandbox and payorchd on free loopback ports; the Go, Node.js
# and Java clients' tests run against them), the container image built and run with podman,
# the Helm chart checks, and the quick-start demo end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

./scripts/setup.sh

echo "== repository references (self-contained; every docs/ citation resolves)"
/usr/bin/python3 scripts/check_repo_refs.py

echo "== build (warnings are errors)"
BUILD_DIR=${BUILD_DIR:-build} BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} \
  ./scripts/build.sh -DPAYORCH_WERROR=ON -DBUILD_TESTING=ON
BUILD_DIR=${BUILD_DIR:-build}

echo "== clang-format"
mapfile -t sources < <(git ls-files '*.cc' '*.h')
if ((${#sources[@]})); then
  clang-format --dry-run -Werror "${sources[@]}"
fi
echo "clang-format: ${#sources[@]} files clean"

echo "== proto: buf lint and breaking-change check"
./scripts/proto_check.sh

echo "== ctest"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 300 -j"$(nproc)")

echo "== fuzz (libFuzzer + ASan/UBSan, clang++; 20 s per target from the committed seeds)"
./scripts/fuzz.sh 20

echo "== container image (podman: read-only root, uid 65532, sandbox + checkout + SIGTERM)"
bash tests/image/image_test.sh "$ROOT/$BUILD_DIR/bin"

echo "== helm chart"
PAYORCH_BIN_DIR="$ROOT/$BUILD_DIR/bin" bash helm/test.sh

echo "== quick start demo"
PAYORCH_BUILD_DIR="$ROOT/$BUILD_DIR" ./scripts/quickstart.sh --demo-only --no-build
