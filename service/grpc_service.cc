#include "service/grpc_service.h"

#include <grpc/grpc_security_constants.h>

#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/errors.h"
#include "common/trace_context.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "service/grpc_status.h"

namespace payorch::service {

namespace {

// The caller's deadline, or now + `fallback` when it set none.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context,
                      absl::Time now, absl::Duration fallback) {
  std::chrono::system_clock::time_point tp = context.deadline();
  if (tp == std::chrono::system_clock::time_point::max()) return now + fallback;
  absl::Time deadline = absl::FromChrono(tp);
  // gRPC reports "no deadline" as a far-future time point.
  if (deadline > now + absl::Hours(24 * 365)) return now + fallback;
  return deadline;
}

// The caller's W3C traceparent continued with payorch's own span, or a new
// trace when the caller sent none (or a malformed one, as the spec asks).
TraceContext TraceOf(grpc::CallbackServerContext& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("traceparent");
  if (it != md.end()) {
    auto parent = TraceContext::Parse(
        absl::string_view(it->second.data(), it->second.size()));
    if (parent.has_value()) return parent->Child();
  }
  return TraceContext::NewRoot();
}

std::string RequestIdOf(grpc::CallbackServerContext& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("x-request-id");
  if (it != md.end() && !it->second.empty() && it->second.size() <= 128) {
    return std::string(it->second.data(), it->second.size());
  }
  return RandomHex(8);
}

// Stored-card fields go only to callers allowed to charge them.
template <typename Response>
void RedactStoredCard(Response*) {}
void RedactStoredCard(v1::Order* order) {
  order->clear_token();
  order->clear_recurring_agreement_id();
}
void RedactStoredCard(v1::GetOrderResponse* r) {
  RedactStoredCard(r->mutable_order());
}
void RedactStoredCard(v1::ChargeRecurringResponse* r) {
  RedactStoredCard(r->mutable_order());
}
void RedactStoredCard(v1::CaptureResponse* r) {
  RedactStoredCard(r->mutable_order());
}
void RedactStoredCard(v1::VoidResponse* r) {
  RedactStoredCard(r->mutable_order());
}

std::string FirstProperty(const grpc::AuthContext& auth, const char* name) {
  std::vector<grpc::string_ref> values = auth.FindPropertyValues(name);
  if (values.empty()) return "";
  return std::string(values.front().data(), values.front().size());
}

}  // namespace

std::string CallerIdentityOf(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  std::string uri = FirstProperty(*auth, GRPC_PEER_URI_PROPERTY_NAME);
  if (!uri.empty()) return uri;
  return FirstProperty(*auth, GRPC_X509_CN_PROPERTY_NAME);
}

class ServiceMetrics {
 public:
  explicit ServiceMetrics(prometheus::Registry& registry)
      : requests_(prometheus::BuildCounter()
                      .Name("payorch_requests_total")
                      .Help("Finished RPCs by method, gRPC code, reason and "
                            "caller.")
                      .Register(registry)),
        duration_(prometheus::BuildHistogram()
                      .Name("payorch_request_duration_seconds")
                      .Help("RPC latency at the gRPC edge.")
                      .Register(registry)),
        upstream_(prometheus::BuildHistogram()
                      .Name("payorch_upstream_duration_seconds")
                      .Help("Time per RPC spent waiting for PayKKa.")
                      .Register(registry)),
        in_flight_(prometheus::BuildGauge()
                       .Name("payorch_requests_in_flight")
                       .Help("RPCs started and not yet finished, by method.")
                       .Register(registry)),
        dropped_(prometheus::BuildCounter()
                     .Name("payorch_cpu_queue_dropped_total")
                     .Help("Calls answered by the CPU queue without any "
                           "work: full (OVERLOADED) or expired while queued "
                           "(DEADLINE_EXCEEDED).")
                     .Register(registry)) {}

  void Dropped(const char* reason) {
    dropped_.Add({{"reason", reason}}).Increment();
  }

  prometheus::Gauge& InFlight(const char* method) {
    return in_flight_.Add({{"method", method}});
  }

  void Observe(const RequestLogEntry& e) {
    requests_
        .Add({{"method", e.method},
              {"code", e.code},
              {"reason", e.reason},
              {"caller", e.caller_label}})
        .Increment();
    duration_.Add({{"method", e.method}}, Buckets()).Observe(e.total_ms / 1e3);
    if (e.upstream_calls > 0) {
      upstream_.Add({{"method", e.method}}, Buckets())
          .Observe(e.upstream_ms / 1e3);
    }
  }

 private:
  static const prometheus::Histogram::BucketBoundaries& Buckets() {
    static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30};
    return *buckets;
  }

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Histogram>& upstream_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Family<prometheus::Counter>& dropped_;
};

PaymentOrchestratorService::PaymentOrchestratorService(
    PaymentService* service, RequestLogger* logger,
    std::shared_ptr<prometheus::Registry> registry, GrpcServiceOptions options)
    : service_(service),
      logger_(logger),
      registry_(std::move(registry)),
      metrics_(registry_ ? std::make_unique<ServiceMetrics>(*registry_)
                         : nullptr),
      options_(options) {}

PaymentOrchestratorService::~PaymentOrchestratorService() = default;

absl::Status PaymentOrchestratorService::Authorize(
    const grpc::CallbackServerContext& context, RequestLogEntry* entry,
    const CallerPolicy* policy) {
  entry->caller = CallerIdentityOf(context);
  entry->caller_label = policy != nullptr && policy->Knows(entry->caller)
                            ? entry->caller
                            : "other";
  if (options_.policy == nullptr) return absl::OkStatus();
  if (entry->caller.empty()) {
    return MakeError(Reason::kCallerUnauthenticated,
                     "a client certificate is required");
  }
  if (!policy->Allows(entry->caller, entry->method, entry->merchant_id)) {
    return MakeError(Reason::kCallerNotAuthorized,
                     absl::StrCat("caller may not use ", entry->method,
                                  " for merchant ", entry->merchant_id),
                     {{"caller", entry->caller},
                      {"method", entry->method},
                      {"merchant_id", entry->merchant_id}});
  }
  return absl::OkStatus();
}

TraceContext PaymentOrchestratorService::OpenCall(
    const char* method_name, grpc::CallbackServerContext* context,
    const std::string& merchant_id, std::string trans_id,
    RequestLogEntry* entry) {
  entry->method = method_name;
  entry->request_id = RequestIdOf(*context);
  entry->merchant_id = merchant_id;
  entry->trans_id = std::move(trans_id);
  context->AddInitialMetadata("x-request-id", entry->request_id);
  const TraceContext trace = TraceOf(*context);
  entry->trace_id = trace.TraceIdHex();
  context->AddInitialMetadata("traceparent", trace.ToTraceparent());
  return trace;
}

void PaymentOrchestratorService::Record(RequestLogEntry& entry,
                                        absl::Time start) {
  entry.total_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  if (logger_ != nullptr) logger_->Log(entry);
  if (metrics_ != nullptr) metrics_->Observe(entry);
}

template <typename Request, typename Response, typename Method>
grpc::ServerUnaryReactor* PaymentOrchestratorService::Handle(
    const char* method_name, grpc::CallbackServerContext* context,
    const Request* request, Response* response, std::string trans_id,
    Method method) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  const absl::Time deadline =
      DeadlineOf(*context, start, options_.default_deadline);

  RequestLogEntry entry;
  // Everything this call starts runs under its trace (log lines, PayKKa's
  // traceparent header); the caller gets payorch's span back.
  const TraceContext trace =
      OpenCall(method_name, context, request->merchant_id(),
               std::move(trans_id), &entry);
  ScopedTrace trace_scope(trace);
  // One policy snapshot per call, even if a reload lands meanwhile.
  std::shared_ptr<const CallerPolicy> policy =
      options_.policy != nullptr ? options_.policy->Current() : nullptr;
  if (absl::Status denied = Authorize(*context, &entry, policy.get());
      !denied.ok()) {
    entry.code = absl::StatusCodeToString(denied.code());
    entry.reason = std::string(ReasonName(*ReasonOf(denied)));
    Record(entry, start);
    reactor->Finish(ToGrpcStatus(denied));
    return reactor;
  }
  const bool may_charge =
      policy == nullptr ||
      policy->Allows(entry.caller, "ChargeRecurring", entry.merchant_id);
  if (options_.shedder != nullptr) {
    if (absl::Status admitted = options_.shedder->Admit(request->merchant_id());
        !admitted.ok()) {
      // Shed: no Redis, no PayKKa, nothing kept for this call.
      entry.code = absl::StatusCodeToString(admitted.code());
      entry.reason = std::string(ReasonName(Reason::kOverloaded));
      Record(entry, start);
      reactor->Finish(ToGrpcStatus(admitted));
      return reactor;
    }
  }
  Dispatch(request, deadline, method,
           Completion(reactor, response, start, may_charge, std::move(entry)));
  return reactor;
}

template <typename Response>
OutcomeCallback<Response> PaymentOrchestratorService::Completion(
    grpc::ServerUnaryReactor* reactor, Response* response, absl::Time start,
    bool may_charge, RequestLogEntry entry) {
  prometheus::Gauge* in_flight =
      metrics_ != nullptr ? &metrics_->InFlight(entry.method.c_str()) : nullptr;
  if (in_flight != nullptr) in_flight->Increment();
  return [this, reactor, response, start, in_flight, may_charge,
          entry = std::move(entry)](Outcome<Response> outcome) mutable {
    grpc::Status status;
    if (outcome.result.ok()) {
      *response = std::move(*outcome.result);
      if (!may_charge) RedactStoredCard(response);
      status = grpc::Status::OK;
    } else if (outcome.rpc_status.has_value()) {
      status = GrpcStatusFromRpcStatusBytes(*outcome.rpc_status);
    } else {
      status = ToGrpcStatus(outcome.result.status());
    }
    entry.code = absl::StatusCodeToString(
        static_cast<absl::StatusCode>(status.error_code()));
    if (!outcome.result.ok()) {
      entry.reason = std::string(ReasonName(
          ReasonOf(outcome.result.status()).value_or(Reason::kInternal)));
    }
    entry.replayed = outcome.info.replayed;
    entry.upstream_calls = outcome.info.upstream_calls;
    entry.upstream_ms =
        absl::ToDoubleMilliseconds(outcome.info.upstream_latency);
    entry.store_error = std::move(outcome.info.store_error);
    // Logged and counted first: once Finish() ran, the server may shut
    // down and main may destroy the logger and the registry (and this
    // service) while this lambda still runs.
    Record(entry, start);
    if (in_flight != nullptr) in_flight->Decrement();
    if (options_.shedder != nullptr) options_.shedder->Release();
    reactor->Finish(std::move(status));
  };
}

template <typename Request, typename Response, typename Method>
void PaymentOrchestratorService::Dispatch(const Request* request,
                                          absl::Time deadline, Method method,
                                          OutcomeCallback<Response> done) {
  if (options_.cpu == nullptr) {
    (service_->*method)(*request, deadline, std::move(done));
    return;
  }
  options_.cpu->Admit(
      deadline, [this, request, deadline, method, done = std::move(done)](
                    WorkerPool::Admission admission) mutable {
        if (admission == WorkerPool::Admission::kRun) {
          (service_->*method)(*request, deadline, std::move(done));
          return;
        }
        // Answered here: no Redis claim, no PayKKa request.
        Outcome<Response> outcome;
        if (admission == WorkerPool::Admission::kQueueFull) {
          if (metrics_ != nullptr) metrics_->Dropped("full");
          outcome.result = WithRetryDelay(
              MakeError(Reason::kOverloaded,
                        "the CPU queue is full, or waits too long for the "
                        "call's deadline",
                        {{"limit", "cpu_queue"}}),
              options_.overload_retry_delay);
        } else {
          if (metrics_ != nullptr) metrics_->Dropped("expired");
          outcome.result = MakeError(
              Reason::kDeadlineExceeded,
              "the deadline passed while the call waited for a CPU worker");
        }
        std::move(done)(std::move(outcome));
      });
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::CreateCheckout(
    grpc::CallbackServerContext* context,
    const v1::CreateCheckoutRequest* request,
    v1::CreateCheckoutResponse* response) {
  return Handle("CreateCheckout", context, request, response,
                request->trans_id(), &PaymentService::CreateCheckout);
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::GetSessionStatus(
    grpc::CallbackServerContext* context,
    const v1::GetSessionStatusRequest* request,
    v1::GetSessionStatusResponse* response) {
  return Handle("GetSessionStatus", context, request, response,
                request->trans_id(), &PaymentService::GetSessionStatus);
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::GetOrder(
    grpc::CallbackServerContext* context, const v1::GetOrderRequest* request,
    v1::GetOrderResponse* response) {
  return Handle("GetOrder", context, request, response, request->trans_id(),
                &PaymentService::GetOrder);
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::ChargeRecurring(
    grpc::CallbackServerContext* context,
    const v1::ChargeRecurringRequest* request,
    v1::ChargeRecurringResponse* response) {
  return Handle("ChargeRecurring", context, request, response,
                request->trans_id(), &PaymentService::ChargeRecurring);
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::Refund(
    grpc::CallbackServerContext* context, const v1::RefundRequest* request,
    v1::RefundResponse* response) {
  return Handle("Refund", context, request, response,
                request->refund_trans_id(), &PaymentService::Refund);
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::GetRefund(
    grpc::CallbackServerContext* context, const v1::GetRefundRequest* request,
    v1::GetRefundResponse* response) {
  return Handle("GetRefund", context, request, response,
                request->refund_trans_id(), &PaymentService::GetRefund);
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::Capture(
    grpc::CallbackServerContext* context, const v1::CaptureRequest* request,
    v1::CaptureResponse* response) {
  return Handle("Capture", context, request, response, request->request_id(),
                &PaymentService::Capture);
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::Void(
    grpc::CallbackServerContext* context, const v1::VoidRequest* request,
    v1::VoidResponse* response) {
  return Handle("Void", context, request, response, request->request_id(),
                &PaymentService::Void);
}

grpc::ServerUnaryReactor* PaymentOrchestratorService::CancelRecurring(
    grpc::CallbackServerContext* context,
    const v1::CancelRecurringRequest* request,
    v1::CancelRecurringResponse* response) {
  return Handle("CancelRecurring", context, request, response,
                request->request_id(), &PaymentService::CancelRecurring);
}

}  // namespace payorch::service
