#!/usr/bin/env bash
# Prints the classpath of Debian's grpc-java 1.41 and protobuf-java jars (and JUnit 4 with
# --test). Packages (scripts/setup.sh): default-jdk-headless libgrpc-java
# protobuf-compiler-grpc-java-plugin libprotobuf-java libnetty-java libguava-java libperfmark-java
# libgeronimo-annotation-1.3-spec-java libjsr305-java liberror-prone-java junit4
# libnetty-tcnative-java libnetty-tcnative-jni (TLS: OpenSSL for netty; see build.sh).
set -euo pipefail
jars=(grpc-api grpc-context grpc-core grpc-stub grpc-protobuf grpc-protobuf-lite grpc-netty
  protobuf guava error_prone_annotations jsr305 geronimo-annotation-1.3-spec perfmark-api
  netty-common netty-buffer netty-transport netty-resolver netty-codec netty-codec-http
  netty-codec-http2 netty-codec-socks netty-handler netty-handler-proxy netty-tcnative)
[ "${1:-}" = --test ] && jars+=(junit4 hamcrest-core)
cp=""
for j in "${jars[@]}"; do
  [ -f "/usr/share/java/$j.jar" ] || { echo "classpath.sh: /usr/share/java/$j.jar missing" >&2; exit 1; }
  cp+="/usr/share/java/$j.jar:"
done
echo "${cp%:}"
