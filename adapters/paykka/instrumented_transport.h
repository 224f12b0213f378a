#ifndef PAYORCH_ADAPTERS_PAYKKA_INSTRUMENTED_TRANSPORT_H_
#define PAYORCH_ADAPTERS_PAYKKA_INSTRUMENTED_TRANSPORT_H_

// An HttpTransport decorator that makes PayKKa calls observable:
// - sends the current trace (common/trace_context.h) as a W3C `traceparent`
//   header with a new span id per attempt, so PayKKa-side logs can be joined;
// - runs the inner transport's callback under the caller's trace;
// - Prometheus: payorch_paykka_request_duration_seconds{endpoint,outcome}
//   (histogram; its _count is the call count) and
//   payorch_paykka_requests_in_flight (gauge);
// - hands each finished call to an observer (payorchd logs it), under the
//   call's trace.

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "adapters/paykka/http_transport.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace payorch::paykka {

struct PaykkaCallRecord {
  // The PayKKa path ("/v3/payment/acq/session", ...), or "other".
  std::string endpoint;
  // "ok" (2xx), "http_4xx", "http_5xx", "http_other", "timeout", "not_sent"
  // (failed before any byte went out), "error" (failed after), "cancelled".
  std::string outcome;
  int http_status = 0;  // 0 when no response
  absl::Duration latency;
  std::string error;  // the transport error's message, when there is one
};

// The endpoint label for `url`: one of the PayKKa paths payorch calls, or
// "other" (labels stay a small fixed set).
std::string PaykkaEndpointOf(const std::string& url);
// The outcome label of a finished call (see PaykkaCallRecord::outcome).
std::string PaykkaOutcomeOf(const absl::StatusOr<HttpResponse>& result);

class InstrumentedTransport final : public HttpTransport {
 public:
  using Observer = std::function<void(const PaykkaCallRecord&)>;

  // `inner` must outlive this. `registry` and `observer` may be null; both
  // must outlive the last callback (which may come after this is destroyed,
  // when the inner transport cancels what is still in flight).
  InstrumentedTransport(HttpTransport* inner, prometheus::Registry* registry,
                        Observer observer);
  ~InstrumentedTransport() override;

  void Send(HttpRequest request, absl::Time deadline,
            HttpCallback done) override;

 private:
  struct State;
  HttpTransport* const inner_;
  std::shared_ptr<const State> state_;  // shared with calls in flight
};

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_INSTRUMENTED_TRANSPORT_H_
