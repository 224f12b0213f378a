#ifndef PAYORCH_SERVICE_GRPC_STREAMS_H_
#define PAYORCH_SERVICE_GRPC_STREAMS_H_

// The server-streaming RPCs WatchOrder and WatchMerchantEvents on gRPC's
// callback API: one ServerWriteReactor per stream, its state confined to the
// EventHub's loop thread, no thread parked per stream. Per stream, memory is
// bounded: at most EventHubOptions::page events are queued; a stream that
// falls further behind drops its queue and re-reads the log from its own
// position (Redis) once the reader catches up; a reader that takes no
// message for slow_consumer_timeout is ended with CONSUMER_TOO_SLOW.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "payorch/v1/payorch.grpc.pb.h"
#include "service/event_stream.h"
#include "service/grpc_status.h"
#include "service/payment_service.h"

namespace payorch::service {

// What the edge learns when a stream ends (on the hub's loop thread).
using StreamEnded = std::function<void(const absl::Status&)>;

// A stream that only answers `status` (told to `ended` at once).
template <typename Response>
grpc::ServerWriteReactor<Response>* RefusedStream(const absl::Status& status,
                                                  const StreamEnded& ended) {
  class Reactor : public grpc::ServerWriteReactor<Response> {
   public:
    void OnDone() override { delete this; }
  };
  ended(status);
  auto* reactor = new Reactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Validation of the requests (INVALID_FIELD with field paths).
absl::Status ValidateWatchOrder(const v1::WatchOrderRequest& request);
absl::Status ValidateWatchMerchantEvents(
    const v1::WatchMerchantEventsRequest& request);

// Start a stream. `hub` (null: no event log, EVENT_LOG_UNAVAILABLE) and
// `payments` must outlive it. `may_charge`: stored-card fields are kept.
// The request was validated and authorized by the caller.
grpc::ServerWriteReactor<v1::WatchOrderResponse>* StartWatchOrder(
    EventHub* hub, PaymentService* payments,
    const v1::WatchOrderRequest& request, bool may_charge, StreamEnded ended);
grpc::ServerWriteReactor<v1::MerchantEvent>* StartWatchMerchantEvents(
    EventHub* hub, const v1::WatchMerchantEventsRequest& request,
    bool may_charge, StreamEnded ended);

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_GRPC_STREAMS_H_
