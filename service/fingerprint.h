#ifndef PAYORCH_SERVICE_FINGERPRINT_H_
#define PAYORCH_SERVICE_FINGERPRINT_H_

// The fingerprint of a mutating request: what the idempotency store compares
// to tell "the same request again" (replay) from "the same trans_id with
// different content" (TRANS_ID_REUSED).

#include <string>

#include "adapters/paykka/paykka_client.h"
#include "payorch/v1/payorch.pb.h"

namespace payorch::service {

// RPC families: the first part of the idempotency key and of the fingerprint.
inline constexpr char kCheckoutFamily[] = "checkout";
inline constexpr char kChargeFamily[] = "charge";
// After the payment. Refunds have their own id namespace (refund_trans_id);
// Capture, Void and CancelRecurring share one (request_id).
inline constexpr char kRefundFamily[] = "refund";
inline constexpr char kCaptureFamily[] = "capture";
inline constexpr char kVoidFamily[] = "void";
inline constexpr char kCancelRecurringFamily[] = "cancel_recurring";

// "<family>:" + lower-case hex SHA-256 over the family, the merchant and
// the exact PayKKa request body payorch would send for the request
// (adapters/paykka/mapping.h), so two requests share a fingerprint iff
// PayKKa would receive the same thing from the same merchant. Deterministic
// across processes and replicas running the same mapping.
std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::CreateCheckoutRequest& request);
std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::ChargeRecurringRequest& request);
std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::RefundRequest& request);
std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::CaptureRequest& request);
std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::VoidRequest& request);
std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::CancelRecurringRequest& request);

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_FINGERPRINT_H_
