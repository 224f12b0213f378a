#!/usr/bin/env bash
# Builds the runtime image (payorchd, paykka-sandbox, payorchctl; uid 65532) without any registry:
# the base is a Debian 12 rootfs made by mmdebstrap from Debian's apt mirror and imported with
# `podman import`; the binaries are the ones built in this tree. The image itself is the Dockerfile's `runtime`
# stage, with its two inputs swapped in as build contexts (`runtime-base` = the imported rootfs,
# `build` = the local binaries), so the Dockerfile stays the one recipe.
#
#   scripts/image.sh [--tag NAME] [--bin DIR] [--refresh-base]
#     --tag           image name (default localhost/payorch/payorchd:<version>, the chart's default)
#     --bin           where the binaries are (default ${BUILD_DIR:-build}/bin)
#     --refresh-base  rebuild the base rootfs (security updates) even if one is cached
# Env: PAYORCH_DEBIAN_MIRROR (default http://deb.debian.org). Needs root (rootful podman, and
# mmdebstrap --mode=root) and the packages podman, mmdebstrap and runc (scripts/setup.sh).
#
# The base is cached in podman's storage under a tag derived from its recipe, so a machine that
# keeps /var/lib/containers rebuilds only the top layer (a few seconds); from nothing it takes
# mmdebstrap's download and unpack time on top.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=$(sed -n 's/^project(payorch VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
TAG=localhost/payorch/payorchd:$VERSION
BIN=$ROOT/${BUILD_DIR:-build}/bin
REFRESH=0
while (($#)); do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --tag=*) TAG=${1#*=}; shift ;;
    --bin) BIN=$2; shift 2 ;;
    --bin=*) BIN=${1#*=}; shift ;;
    --refresh-base) REFRESH=1; shift ;;
    *) echo "usage: $0 [--tag NAME] [--bin DIR] [--refresh-base]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "image.sh: needs root (rootful podman, mmdebstrap)" >&2; exit 1; }
for b in payorchd paykka-sandbox payorchctl; do
  [ -x "$BIN/$b" ] || { echo "image.sh: $BIN/$b not built (scripts/build.sh)" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=scripts/image/podman.sh
. scripts/image/podman.sh
payorch_podman_conf "$WORK"

# ---- base rootfs: Debian 12 "essential" + the runtime libraries, merged /usr, no docs or locales.
MIRROR=${PAYORCH_DEBIAN_MIRROR:-http://deb.debian.org}
PACKAGES=$(grep -v -e '^#' -e '^$' scripts/image/runtime-packages.txt | paste -sd, -)
MMDEBSTRAP=(mmdebstrap --variant=essential --mode=root --quiet
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --include="$PACKAGES" bookworm -
  "deb $MIRROR/debian bookworm main" "deb $MIRROR/debian bookworm-updates main"
  "deb $MIRROR/debian-security bookworm-security main")
BASE=localhost/payorch-base:bookworm-$(printf '%s\n' "${MMDEBSTRAP[@]}" | sha256sum | cut -c1-12)
t0=$(date +%s.%N)
# One builder of the base at a time (parallel checkouts on one machine share podman's storage).
exec 9>/run/lock/payorch-image-base.lock
flock 9
if ((REFRESH)) || ! podman image exists "$BASE"; then
  echo "image.sh: building base $BASE (mmdebstrap from $MIRROR)"
  if ! "${MMDEBSTRAP[@]}" 2>"$WORK/mmdebstrap.log" |
    podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null; then
    cat "$WORK/mmdebstrap.log" >&2
    echo "image.sh: building the base failed" >&2
    exit 1
  fi
else
  echo "image.sh: base $BASE cached"
fi
flock -u 9
t1=$(date +%s.%N)

# ---- the image: the Dockerfile's runtime stage on that base, with the stripped local binaries.
mkdir -p "$WORK/ctx/out/usr/local/bin"
install -m 0755 -s "$BIN/payorchd" "$BIN/paykka-sandbox" "$BIN/payorchctl" "$WORK/ctx/out/usr/local/bin/"
podman build --quiet --pull=never --layers=false --target runtime \
  --build-context runtime-base=container-image://"$BASE" \
  --build-context build="$WORK/ctx" \
  --label org.opencontainers.image.version="$VERSION" \
  --label org.opencontainers.image.revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -f Dockerfile -t "$TAG" "$WORK/ctx" >/dev/null
t2=$(date +%s.%N)
size=$(podman image inspect --format '{{.Size}}' "$TAG")
awk -v tag="$TAG" -v size="$size" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
  printf "image.sh: built %s (%d MB; base %.1f s, image %.1f s)\n", tag, size / 1e6, t1 - t0, t2 - t1 }'
