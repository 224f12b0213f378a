#!/usr/bin/env bash
# Checks proto/ with buf (npm @bufbuild/buf, pinned in scripts/buf/package.json):
#  1. `buf lint` with buf.yaml (STANDARD, documented exceptions);
#  2. a breaking-change check of proto/payorch/v1 against the previous commit (or
#     PROTO_BREAKING_BASE), so that no change breaks a deployed client (buf's FILE rules: wire
#     and generated-code compatibility).
# A shallow clone is deepened by one commit; a clone with a single commit has nothing to compare
# against and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=scripts/buf/node_modules/.bin/buf
if [ ! -x "$BUF" ]; then
  (cd scripts/buf && npm ci --no-audit --no-fund --loglevel=error)
fi

# payorch/internal imports google/rpc/status.proto: buf.yaml's .buf-deps module (not committed).
GOOGLEAPIS=/usr/share/gocode/src/github.com/gogo/googleapis
rm -rf .buf-deps
mkdir -p .buf-deps/google/rpc
cp "$GOOGLEAPIS"/google/rpc/{status,error_details,code}.proto .buf-deps/google/rpc/
"$BUF" lint
echo "buf lint: proto/ clean"

BASE=${PROTO_BREAKING_BASE:-HEAD~1}
has_base() { git rev-parse -q --verify "$BASE^{commit}" >/dev/null; }
if ! has_base && [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  git fetch -q --deepen=1 2>/dev/null || true
fi
if ! has_base; then
  echo "buf breaking: skipped, no $BASE in this clone (it has a single commit)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/old" "$tmp/new/proto/payorch"
if ! git archive "$BASE" proto/payorch/v1 2>/dev/null | tar -x -C "$tmp/old"; then
  echo "buf breaking: skipped, $BASE has no proto/payorch/v1"
  exit 0
fi
cp -r proto/payorch/v1 "$tmp/new/proto/payorch/"
# Both sides as plain directories: the rules are buf.yaml's breaking section (FILE).
CONFIG='{"version":"v2","modules":[{"path":"proto"}],"breaking":{"use":["FILE"]}}'
BUF=$PWD/$BUF
(cd "$tmp/new" && "$BUF" breaking . --config "$CONFIG" --against ../old --against-config "$CONFIG")
echo "buf breaking: proto/payorch/v1 compatible with $(git rev-parse --short "$BASE")"
