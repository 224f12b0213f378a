#ifndef PAYORCH_ADAPTERS_PAYKKA_HTTP_PAYKKA_CLIENT_H_
#define PAYORCH_ADAPTERS_PAYKKA_HTTP_PAYKKA_CLIENT_H_

// PaykkaClient over an HttpTransport. Each call:
//   map request (mapping.h) -> sign on the WorkerPool (signer.h) -> send on
//   the loop (transport) -> verify the response signature on the WorkerPool
//   -> classify (response_mapping.h) -> map `data` back -> done, on the
//   EventLoop thread.
// Queries are retried per RetryPolicy, scheduled with EventLoop::RunAfter
// (no thread sleeps). Mutating calls are sent at most once.

#include <memory>

#include "absl/status/statusor.h"
#include "adapters/paykka/http_transport.h"
#include "adapters/paykka/paykka_client.h"
#include "adapters/paykka/retry_policy.h"
#include "common/event_loop.h"

namespace payorch::paykka {

struct HttpPaykkaClientOptions {
  RetryOptions retry;
  // Jitter source for the retry policy (uniform in [0, 1)); default random.
  RetryPolicy::RandomSource random;
  // Reads "now" for x-paykka-timestamp and deadline checks; not owned;
  // nullptr = RealClock.
  const Clock* clock = nullptr;
};

// `loop`, `workers` and `transport` are not owned and must outlive the
// client; destroy the client only when no call is in flight. kInvalidArgument
// for null arguments or max_attempts < 1.
absl::StatusOr<std::unique_ptr<PaykkaClient>> MakeHttpPaykkaClient(
    EventLoop* loop, WorkerPool* workers, HttpTransport* transport,
    HttpPaykkaClientOptions options = {});

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_HTTP_PAYKKA_CLIENT_H_
