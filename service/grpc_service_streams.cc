// PaymentOrchestratorService's streaming RPCs: admission at the edge (trace,
// caller policy, validation), then service/grpc_streams.h. One log line and
// the metrics when the stream ends.

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "service/grpc_service.h"
#include "service/grpc_streams.h"

namespace payorch::service {

namespace {

// The stream's end, as the edge logs and counts it.
StreamEnded LogStreamEnd(std::function<void(RequestLogEntry&)> record,
                         RequestLogEntry entry) {
  auto shared = std::make_shared<RequestLogEntry>(std::move(entry));
  return [record = std::move(record), shared](const absl::Status& status) {
    shared->code = absl::StatusCodeToString(status.code());
    if (!status.ok()) {
      shared->reason =
          std::string(ReasonName(ReasonOf(status).value_or(Reason::kInternal)));
    }
    record(*shared);
  };
}

}  // namespace

template <typename Request>
absl::Status PaymentOrchestratorService::OpenStream(
    const char* method_name, grpc::CallbackServerContext* context,
    const Request& request, absl::Status valid, bool* may_charge,
    StreamEnded* ended) {
  const absl::Time start = absl::Now();
  RequestLogEntry entry;
  const TraceContext trace =
      OpenCall(method_name, context, request.merchant_id(), "", &entry);
  ScopedTrace trace_scope(trace);
  std::shared_ptr<const CallerPolicy> policy =
      options_.policy != nullptr ? options_.policy->Current() : nullptr;
  absl::Status status = Authorize(*context, &entry, policy.get());
  if (status.ok()) status = std::move(valid);
  *may_charge =
      policy == nullptr ||
      policy->Allows(entry.caller, "ChargeRecurring", entry.merchant_id);
  *ended = LogStreamEnd([this, start](RequestLogEntry& e) { Record(e, start); },
                        std::move(entry));
  return status;
}

grpc::ServerWriteReactor<v1::WatchOrderResponse>*
PaymentOrchestratorService::WatchOrder(grpc::CallbackServerContext* context,
                                       const v1::WatchOrderRequest* request) {
  bool may_charge = false;
  StreamEnded ended;
  absl::Status admitted =
      OpenStream("WatchOrder", context, *request, ValidateWatchOrder(*request),
                 &may_charge, &ended);
  if (!admitted.ok()) {
    return RefusedStream<v1::WatchOrderResponse>(admitted, ended);
  }
  return StartWatchOrder(options_.events, service_, *request, may_charge,
                         std::move(ended));
}

grpc::ServerWriteReactor<v1::MerchantEvent>*
PaymentOrchestratorService::WatchMerchantEvents(
    grpc::CallbackServerContext* context,
    const v1::WatchMerchantEventsRequest* request) {
  bool may_charge = false;
  StreamEnded ended;
  absl::Status admitted =
      OpenStream("WatchMerchantEvents", context, *request,
                 ValidateWatchMerchantEvents(*request), &may_charge, &ended);
  if (!admitted.ok()) {
    return RefusedStream<v1::MerchantEvent>(admitted, ended);
  }
  return StartWatchMerchantEvents(options_.events, *request, may_charge,
                                  std::move(ended));
}

}  // namespace payorch::service
