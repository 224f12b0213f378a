#!/usr/bin/env bash
# Writes throw-away mTLS material for payorchd's gRPC port into DIR:
#   ca.pem / ca.key          the CA (signs the server and the callers)
#   server.pem, server.key   payorchd's certificate for 127.0.0.1 / localhost
#   client-NAME.pem/.key     one caller per NAME argument; NAME=spiffe://... gives a
#                            URI SAN (file name: the last path segment), else subject CN=NAME
# ECDSA P-256, valid 2 days. Test and quick-start use only; the CA key stays in DIR so
# that more callers can be issued later: ./make_mtls_certs.sh DIR --add NAME...
set -euo pipefail
dir=${1:?usage: make_mtls_certs.sh DIR [--add] NAME...}
shift
mkdir -p "$dir"
cd "$dir"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
if [[ ${1:-} == --add ]]; then
  shift
else
  ec ca.key
  openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=payorch throw-away CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  ec server.key
  openssl req -new -key server.key -out server.csr -subj "/CN=payorchd" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 2 -extfile server.ext 2>/dev/null
  rm -f server.csr server.ext
fi
for name in "$@"; do
  if [[ $name == *://* ]]; then
    file=${name##*/}; subj="/CN=$file"; san="subjectAltName=URI:$name"
  else
    file=$name; subj="/CN=$name"; san=""
  fi
  ec "client-$file.key"
  openssl req -new -key "client-$file.key" -out "client-$file.csr" -subj "$subj" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" ${san:+"$san"} > "client-$file.ext"
  openssl x509 -req -in "client-$file.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out "client-$file.pem" -days 2 -extfile "client-$file.ext" 2>/dev/null
  rm -f "client-$file.csr" "client-$file.ext"
done
rm -f ca.srl
chmod 600 ./*.key
