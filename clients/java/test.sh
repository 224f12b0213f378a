#!/usr/bin/env bash
# Runs the client's integration test (JUnit 4) built by build.sh OUT_DIR, against the stack named
# by PAYORCH_TARGET, PAYORCH_SANDBOX_URL, PAYORCH_MERCHANT_ID: clients/java/test.sh OUT_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
exec java -Djava.library.path="$1/native" -cp "$1/classes:$("$HERE/classpath.sh" --test)" org.junit.runner.JUnitCore \
  com.payorch.client.PayorchClientIT
