#include "adapters/paykka/instrumented_transport.h"

#include <utility>

#include "absl/strings/match.h"
#include "adapters/paykka/mapping.h"
#include "common/trace_context.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace payorch::paykka {

namespace {

struct Metrics {
  explicit Metrics(prometheus::Registry& registry)
      : duration(prometheus::BuildHistogram()
                     .Name("payorch_paykka_request_duration_seconds")
                     .Help("PayKKa HTTP calls (each attempt) by endpoint and "
                           "outcome: latency from send to answer or failure.")
                     .Register(registry)),
        in_flight(prometheus::BuildGauge()
                      .Name("payorch_paykka_requests_in_flight")
                      .Help("PayKKa HTTP calls sent and not yet answered.")
                      .Register(registry)
                      .Add({})) {}

  static const prometheus::Histogram::BucketBoundaries& Buckets() {
    // PayKKa answers in 0.4-1.5 s; timeouts reach --paykka_timeout (15 s).
    static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20};
    return *buckets;
  }

  prometheus::Family<prometheus::Histogram>& duration;
  prometheus::Gauge& in_flight;
};

}  // namespace

struct InstrumentedTransport::State {
  std::unique_ptr<Metrics> metrics;  // null without a registry
  Observer observer;

  void Finish(PaykkaCallRecord& record,
              const absl::StatusOr<HttpResponse>& result) const {
    record.outcome = PaykkaOutcomeOf(result);
    if (result.ok()) {
      record.http_status = result->status;
    } else {
      record.error = std::string(result.status().message());
    }
    if (metrics != nullptr) {
      metrics->in_flight.Decrement();
      metrics->duration
          .Add({{"endpoint", record.endpoint}, {"outcome", record.outcome}},
               Metrics::Buckets())
          .Observe(absl::ToDoubleSeconds(record.latency));
    }
    if (observer) observer(record);
  }
};

std::string PaykkaEndpointOf(const std::string& url) {
  absl::string_view path = url;
  if (size_t q = path.find('?'); q != absl::string_view::npos) {
    path = path.substr(0, q);
  }
  // Longest first: the query paths extend the create paths.
  for (absl::string_view known :
       {kQuerySessionPath, kCreateSessionPath, kQueryTransactionPath,
        kInitiateTransactionPath}) {
    if (absl::EndsWith(path, known)) return std::string(known);
  }
  return "other";
}

std::string PaykkaOutcomeOf(const absl::StatusOr<HttpResponse>& result) {
  if (result.ok()) {
    int s = result->status;
    if (s >= 200 && s < 300) return "ok";
    if (s >= 400 && s < 500) return "http_4xx";
    if (s >= 500 && s < 600) return "http_5xx";
    return "http_other";
  }
  switch (result.status().code()) {
    case absl::StatusCode::kDeadlineExceeded:
      return "timeout";
    case absl::StatusCode::kCancelled:
      return "cancelled";
    default:
      return SendStateOf(result.status()) == SendState::kNotSent ? "not_sent"
                                                                 : "error";
  }
}

InstrumentedTransport::InstrumentedTransport(HttpTransport* inner,
                                             prometheus::Registry* registry,
                                             Observer observer)
    : inner_(inner),
      state_(std::make_shared<const State>(State{
          registry != nullptr ? std::make_unique<Metrics>(*registry) : nullptr,
          std::move(observer)})) {}

InstrumentedTransport::~InstrumentedTransport() = default;

void InstrumentedTransport::Send(HttpRequest request, absl::Time deadline,
                                 HttpCallback done) {
  if (CurrentTrace().valid()) {
    request.headers.emplace_back("traceparent",
                                 CurrentTrace().Child().ToTraceparent());
  }
  PaykkaCallRecord record;
  record.endpoint = PaykkaEndpointOf(request.url);
  if (state_->metrics != nullptr) state_->metrics->in_flight.Increment();
  HttpCallback finish =
      [state = state_, start = absl::Now(), record = std::move(record),
       done = std::move(done)](absl::StatusOr<HttpResponse> result) mutable {
        record.latency = absl::Now() - start;
        state->Finish(record, result);
        std::move(done)(std::move(result));
      };
  inner_->Send(std::move(request), deadline, BindTrace(std::move(finish)));
}

}  // namespace payorch::paykka
