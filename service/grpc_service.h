#ifndef PAYORCH_SERVICE_GRPC_SERVICE_H_
#define PAYORCH_SERVICE_GRPC_SERVICE_H_

// The gRPC edge of payorch.v1.PaymentOrchestrator on gRPC's callback API.
// Each handler reads the caller's deadline once, starts PaymentService's
// asynchronous work and returns its reactor at once; the reactor is
// Finish()ed from PaymentService's completion callback with ToGrpcStatus()
// (or a stored rejection's exact bytes). No thread waits per call. One log
// line (RequestLogger) and the metrics are written when the call finishes.

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/event_loop.h"
#include "common/trace_context.h"
#include "payorch/v1/payorch.grpc.pb.h"
#include "service/caller_policy.h"
#include "service/event_stream.h"
#include "service/grpc_streams.h"
#include "service/load_shedder.h"
#include "service/payment_service.h"
#include "service/request_logger.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace payorch::service {

struct GrpcServiceOptions {
  // Deadline used when the caller sets none.
  absl::Duration default_deadline = absl::Seconds(30);
  // Admission before any work (null: every call is admitted). Must outlive
  // the service.
  LoadShedder* shedder = nullptr;
  // Who may call what (service/caller_policy.h); must outlive the service.
  // Null only for --insecure_plaintext without a policy: every call allowed.
  const CallerPolicyWatcher* policy = nullptr;
  // The CPU pool every admitted call starts on (validation, fingerprint,
  // request mapping), through its bounded admission queue: when it is full
  // the call is answered OVERLOADED + RetryInfo (`overload_retry_delay`),
  // and a call whose deadline passed while it waited is answered
  // DEADLINE_EXCEEDED; neither touches Redis or PayKKa. Null: calls start
  // on gRPC's thread. Must outlive the service.
  WorkerPool* cpu = nullptr;
  absl::Duration overload_retry_delay = absl::Milliseconds(200);
  // Events (WatchOrder, WatchMerchantEvents); null: payorchd runs without
  // an event log and both answer EVENT_LOG_UNAVAILABLE. Must outlive the
  // service.
  EventHub* events = nullptr;
};

// The caller's identity from its verified client certificate: the first URI
// SAN (e.g. a SPIFFE ID), else the subject CN; empty without one.
std::string CallerIdentityOf(const grpc::ServerContextBase& context);

class ServiceMetrics;

// Thread-safe. `service` and `logger` must outlive the gRPC server.
class PaymentOrchestratorService final
    : public v1::PaymentOrchestrator::CallbackService {
 public:
  // `registry` may be null (no metrics). Registers payorch_requests_total
  // {method,code,reason,caller} (caller: a policy identity, else "other"),
  // payorch_request_duration_seconds{method} and
  // payorch_upstream_duration_seconds{method}.
  PaymentOrchestratorService(PaymentService* service, RequestLogger* logger,
                             std::shared_ptr<prometheus::Registry> registry,
                             GrpcServiceOptions options = {});
  ~PaymentOrchestratorService() override;

  grpc::ServerUnaryReactor* CreateCheckout(
      grpc::CallbackServerContext* context,
      const v1::CreateCheckoutRequest* request,
      v1::CreateCheckoutResponse* response) override;
  grpc::ServerUnaryReactor* GetSessionStatus(
      grpc::CallbackServerContext* context,
      const v1::GetSessionStatusRequest* request,
      v1::GetSessionStatusResponse* response) override;
  grpc::ServerUnaryReactor* GetOrder(grpc::CallbackServerContext* context,
                                     const v1::GetOrderRequest* request,
                                     v1::GetOrderResponse* response) override;
  grpc::ServerUnaryReactor* ChargeRecurring(
      grpc::CallbackServerContext* context,
      const v1::ChargeRecurringRequest* request,
      v1::ChargeRecurringResponse* response) override;

  // Events (service/grpc_streams.h).
  grpc::ServerWriteReactor<v1::WatchOrderResponse>* WatchOrder(
      grpc::CallbackServerContext* context,
      const v1::WatchOrderRequest* request) override;
  grpc::ServerWriteReactor<v1::MerchantEvent>* WatchMerchantEvents(
      grpc::CallbackServerContext* context,
      const v1::WatchMerchantEventsRequest* request) override;
  // After the payment (service/postpay.h).
  grpc::ServerUnaryReactor* Refund(grpc::CallbackServerContext* context,
                                   const v1::RefundRequest* request,
                                   v1::RefundResponse* response) override;
  grpc::ServerUnaryReactor* GetRefund(grpc::CallbackServerContext* context,
                                      const v1::GetRefundRequest* request,
                                      v1::GetRefundResponse* response) override;
  grpc::ServerUnaryReactor* Capture(grpc::CallbackServerContext* context,
                                    const v1::CaptureRequest* request,
                                    v1::CaptureResponse* response) override;
  grpc::ServerUnaryReactor* Void(grpc::CallbackServerContext* context,
                                 const v1::VoidRequest* request,
                                 v1::VoidResponse* response) override;
  grpc::ServerUnaryReactor* CancelRecurring(
      grpc::CallbackServerContext* context,
      const v1::CancelRecurringRequest* request,
      v1::CancelRecurringResponse* response) override;

 private:
  template <typename Request, typename Response, typename Method>
  grpc::ServerUnaryReactor* Handle(const char* method_name,
                                   grpc::CallbackServerContext* context,
                                   const Request* request, Response* response,
                                   std::string trans_id, Method method);
  // The end of an admitted call: log, count, release its admission,
  // Finish() the reactor.
  template <typename Response>
  OutcomeCallback<Response> Completion(grpc::ServerUnaryReactor* reactor,
                                       Response* response, absl::Time start,
                                       bool may_charge, RequestLogEntry entry);
  // Starts `method` through options_.cpu's admission queue (or at once).
  template <typename Request, typename Response, typename Method>
  void Dispatch(const Request* request, absl::Time deadline, Method method,
                OutcomeCallback<Response> done);

  // Fills the log entry's identity fields, sends x-request-id and
  // traceparent back, and returns the call's trace.
  TraceContext OpenCall(const char* method_name,
                        grpc::CallbackServerContext* context,
                        const std::string& merchant_id, std::string trans_id,
                        RequestLogEntry* entry);
  // A stream's admission (trace, authorization, then `valid`): OK and
  // `may_charge`, or the refusal. `ended` logs and counts the stream's end.
  template <typename Request>
  absl::Status OpenStream(const char* method_name,
                          grpc::CallbackServerContext* context,
                          const Request& request, absl::Status valid,
                          bool* may_charge, StreamEnded* ended);

  // Authorization for `method` on `merchant_id`: OK, or the denial to
  // answer before any Redis or PayKKa work. Sets `entry->caller`.
  absl::Status Authorize(const grpc::CallbackServerContext& context,
                         RequestLogEntry* entry, const CallerPolicy* policy);
  void Record(RequestLogEntry& entry, absl::Time start);

  PaymentService* const service_;
  RequestLogger* const logger_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<ServiceMetrics> metrics_;
  const GrpcServiceOptions options_;
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_GRPC_SERVICE_H_
