#!/usr/bin/env bash
# Generates the Go stubs from proto/ and compiles the client's integration test binary, offline:
# GOPATH mode over Debian's Go packages in /usr/share/gocode (no module proxy needed).
#   clients/go/build.sh OUT_DIR   ->  OUT_DIR/payorch-go-client.test
# Packages (scripts/setup.sh): golang-go golang-google-grpc-dev golang-github-golang-protobuf-1-5-dev
# golang-google-protobuf-dev protoc-gen-go protoc-gen-go-grpc.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
GOPATH_DIR=$OUT/gopath
GEN=$GOPATH_DIR/src
mkdir -p "$GEN/payorch.example"
rm -rf "$GEN/payorch.example/gen"
# go_package in payorch.proto is payorch.example/gen/payorch/v1.
protoc -I "$SRC/proto" --go_out="$GEN" --go-grpc_out="$GEN" payorch/v1/payorch.proto
ln -sfn "$SRC/clients/go" "$GEN/payorch.example/client"
export GO111MODULE=off GOFLAGS= GOPROXY=off GOENV=off GOPATH="$GOPATH_DIR:/usr/share/gocode" \
  GOCACHE="$OUT/gocache"
go vet payorch.example/client/payorch
go test -c -o "$OUT/payorch-go-client.test" payorch.example/client/payorch
