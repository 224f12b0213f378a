# syntax=docker/dockerfile:1
# payorch image: payorchd (the gRPC server), paykka-sandbox (the PayKKa simulator) and payorchctl
# (the CLI; the Helm chart's `helm test` pod uses it to check gRPC health), on Debian 12.
#   docker build -t payorch/payorchd:0.1.0 .
#   docker run --rm -p 50051:50051 -p 8080:8080 payorch/payorchd:0.1.0 --help
# Entrypoint is payorchd; run the simulator with --entrypoint /usr/local/bin/paykka-sandbox.
# Every dependency comes from Debian's apt repositories; nothing is vendored.
# Without a registry, scripts/image.sh builds the same `runtime` stage from local parts: it
# replaces the `runtime-base` stage with a rootfs made by mmdebstrap and the `build` stage with
# the binaries built in the tree (podman build --build-context NAME=...).

ARG DEBIAN_RELEASE=bookworm

# ---- build ---------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev grpc-proto \
      libcurl4-openssl-dev libhiredis-dev libssl-dev libevent-dev libgoogle-perftools-dev \
      prometheus-cpp-dev nlohmann-json3-dev golang-github-gogo-googleapis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build build --target payorchd paykka-sandbox payorchctl \
 && install -D -m 0755 -s build/bin/payorchd /out/usr/local/bin/payorchd \
 && install -D -m 0755 -s build/bin/paykka-sandbox /out/usr/local/bin/paykka-sandbox \
 && install -D -m 0755 -s build/bin/payorchctl /out/usr/local/bin/payorchctl

# ---- runtime base: Debian slim plus only the shared libraries the binaries link -----------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime-base
COPY scripts/image/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && grep -v -e '^#' -e '^$' /tmp/runtime-packages.txt \
  | DEBIAN_FRONTEND=noninteractive xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt

# ---- runtime -------------------------------------------------------------------------------------
FROM runtime-base AS runtime
COPY --from=build /out/ /
# Fail the build here, not in production, if a runtime library is missing.
RUN ! ldd /usr/local/bin/payorchd /usr/local/bin/paykka-sandbox /usr/local/bin/payorchctl | grep -F 'not found'
# Non-root (the Helm chart runs uid/gid 65532 with a read-only root filesystem; only /tmp is written,
# and the chart mounts an emptyDir there).
USER 65532:65532
WORKDIR /tmp
EXPOSE 50051 8080
# SIGTERM makes payorchd report NOT_SERVING and drain (--drain_grace) before exiting.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/payorchd"]
CMD ["--grpc_listen=0.0.0.0:50051", "--http_listen=0.0.0.0:8080"]
