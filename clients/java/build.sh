#!/usr/bin/env bash
# Generates the Java stubs from proto/ (protoc + grpc_java_plugin; google/rpc from Debian's
# googleapis protos) and compiles the client and its integration test with javac (no Maven or
# Gradle needed): clients/java/build.sh OUT_DIR  ->  OUT_DIR/classes, OUT_DIR/native
#
# TLS: Debian's netty (4.1.48) ships without the JDK ALPN negotiator, so grpc-java can only do TLS
# (and so mTLS) with OpenSSL through netty-tcnative. netty loads it as libnetty_tcnative.so and the
# library checks its own file name, while Debian installs libnetty-tcnative.so: a copy under the
# expected name goes to OUT_DIR/native, for -Djava.library.path (test.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
GOOGLEAPIS=/usr/share/gocode/src/github.com/gogo/googleapis
rm -rf "$OUT/gen" "$OUT/classes" "$OUT/native"
mkdir -p "$OUT/gen" "$OUT/classes" "$OUT/native"
TCNATIVE=$(ls /usr/lib/*/jni/libnetty-tcnative.so 2>/dev/null | head -n 1)
[ -n "$TCNATIVE" ] || { echo "build.sh: libnetty-tcnative.so missing (apt-get install libnetty-tcnative-jni)" >&2; exit 1; }
cp "$TCNATIVE" "$OUT/native/libnetty_tcnative.so"
protoc -I "$SRC/proto" -I "$GOOGLEAPIS" --java_out="$OUT/gen" --grpc-java_out="$OUT/gen" \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin \
  payorch/v1/payorch.proto google/rpc/status.proto google/rpc/error_details.proto
mapfile -t sources < <(find "$OUT/gen" "$HERE/src" -name '*.java' | sort)
javac -nowarn -encoding UTF-8 --release 17 -cp "$("$HERE/classpath.sh" --test)" \
  -d "$OUT/classes" "${sources[@]}"
