#ifndef PAYORCH_TESTS_INTEGRATION_TEST_UTIL_H_
#define PAYORCH_TESTS_INTEGRATION_TEST_UTIL_H_

// Small helpers shared by the integration tests: request builders and
// google.rpc.Status parsing.

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/time/time.h"
#include "google/protobuf/util/time_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "payorch/v1/payorch.pb.h"
#include "tests/integration/stack.h"

namespace payorch::testing {

inline void SetDeadline(grpc::ClientContext* ctx,
                        absl::Duration d = absl::Seconds(20)) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
}

inline google::protobuf::Timestamp TimestampIn(absl::Duration d) {
  return google::protobuf::util::TimeUtil::SecondsToTimestamp(
      absl::ToUnixSeconds(absl::Now() + d));
}

inline payorch::v1::CreateCheckoutRequest DropInCheckout(
    const std::string& trans_id, int64_t amount = 1999) {
  payorch::v1::CreateCheckoutRequest r;
  r.set_merchant_id(Stack::kMerchantId);
  r.set_trans_id(trans_id);
  r.set_payment_type(payorch::v1::PAYMENT_TYPE_PURCHASE);
  r.set_session_mode(payorch::v1::SESSION_MODE_DROP_IN);
  r.set_amount(amount);
  r.set_currency("USD");
  r.set_return_url("https://shop.example/return");
  *r.mutable_expire_time() = TimestampIn(absl::Minutes(30));
  return r;
}

inline payorch::v1::CreateCheckoutRequest RecurringCheckout(
    const std::string& trans_id, const std::string& shopper) {
  payorch::v1::CreateCheckoutRequest r = DropInCheckout(trans_id, 990);
  r.set_payment_type(payorch::v1::PAYMENT_TYPE_RECURRING);
  r.mutable_payment()->set_store_payment_method(true);
  r.mutable_payment()->set_token_usage(payorch::v1::TOKEN_USAGE_SUBSCRIPTION);
  r.mutable_payment()->set_shopper_reference(shopper);
  return r;
}

inline payorch::v1::ChargeRecurringRequest Charge(
    const std::string& trans_id, const payorch::v1::Order& first,
    int64_t amount = 990) {
  payorch::v1::ChargeRecurringRequest r;
  r.set_merchant_id(Stack::kMerchantId);
  r.set_trans_id(trans_id);
  r.set_amount(amount);
  r.set_currency("USD");
  r.set_recurring_agreement_id(first.recurring_agreement_id());
  r.mutable_payment()->set_token(first.token());
  r.mutable_payment()->set_shopper_reference(first.shopper_reference());
  return r;
}

// The ErrorInfo reason of a failed call ("" if none).
inline std::string ReasonOf(const grpc::Status& status) {
  google::rpc::Status rpc;
  if (!rpc.ParseFromString(status.error_details())) return "";
  for (const auto& any : rpc.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

template <typename T>
bool DetailOf(const grpc::Status& status, T* out) {
  google::rpc::Status rpc;
  if (!rpc.ParseFromString(status.error_details())) return false;
  for (const auto& any : rpc.details()) {
    if (any.UnpackTo(out)) return true;
  }
  return false;
}

// payorchd's health services (README "Health"): readiness, and the
// mutating RPCs (readiness and the idempotency store).
constexpr const char* kReadyHealth = "payorch.v1.PaymentOrchestrator";
constexpr const char* kMutatingHealth =
    "payorch.v1.PaymentOrchestrator/mutating";

// gRPC health of `service` on a replica (UNKNOWN when the check fails).
inline grpc::health::v1::HealthCheckResponse::ServingStatus HealthOf(
    const Stack& stack, int replica = 0,
    const std::string& service = kReadyHealth) {
  auto health = grpc::health::v1::Health::NewStub(stack.Channel(replica));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  if (!health->Check(&ctx, req, &resp).ok())
    return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return resp.status();
}

// A unique trans_id per test run.
inline std::string NewTransId(const std::string& prefix) {
  static int n = 0;
  return absl::StrCat(prefix, "-", absl::ToUnixMicros(absl::Now()), "-", ++n);
}

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_INTEGRATION_TEST_UTIL_H_
