#!/usr/bin/env bash
# Generates the Java stubs from proto/ (protoc + grpc_java_plugin; google/rpc from Debian's
# googleapis protos) and compiles the client and its integration test with javac (no Maven or
# Gradle needed): clients/java/build.sh OUT_DIR  ->  OUT_DIR/classes
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
GOOGLEAPIS=/usr/share/gocode/src/github.com/gogo/googleapis
rm -rf "$OUT/gen" "$OUT/classes"
mkdir -p "$OUT/gen" "$OUT/classes"
protoc -I "$SRC/proto" -I "$GOOGLEAPIS" --java_out="$OUT/gen" --grpc-java_out="$OUT/gen" \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin \
  payorch/v1/payorch.proto google/rpc/status.proto google/rpc/error_details.proto
mapfile -t sources < <(find "$OUT/gen" "$HERE/src" -name '*.java' | sort)
javac -nowarn -encoding UTF-8 --release 17 -cp "$("$HERE/classpath.sh" --test)" \
  -d "$OUT/classes" "${sources[@]}"
