#ifndef PAYORCH_SERVICE_VALIDATION_H_
#define PAYORCH_SERVICE_VALIDATION_H_

// Request validation: everything payorch can check before anything leaves the
// process. Each function returns OK, or INVALID_ARGUMENT / INVALID_FIELD
// (common/errors.h InvalidFields) listing EVERY violation, each with its field
// path in the request message ("payment.shopper_reference", "goods[2].price",
// "bill.email"), in field order. Pure functions; thread-safe.

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "payorch/v1/payorch.pb.h"

namespace payorch::service {

// Upper bound on any amount or price, in minor units: far above any real
// payment, low enough that sums cannot overflow.
inline constexpr int64_t kMaxAmountMinor = 1'000'000'000'000;
// A checkout session lives at most this long (PayKKa's limit).
inline constexpr absl::Duration kMaxSessionLifetime = absl::Hours(24);
inline constexpr int kMaxGoods = 100;
inline constexpr int kMaxUrlLength = 2048;

// `now` decides whether expire_time is in the future and at most 24 h ahead.
absl::Status ValidateCreateCheckout(const v1::CreateCheckoutRequest& request,
                                    absl::Time now);
// The two halves of ValidateCreateCheckout: everything that does not depend
// on the time, and expire_time's window relative to `now`. The service checks
// the window only before creating a session, so that a retry of a completed
// request is replayed even after its expire_time has passed.
absl::Status ValidateCreateCheckoutContent(
    const v1::CreateCheckoutRequest& request);
absl::Status ValidateExpireTimeWindow(const v1::CreateCheckoutRequest& request,
                                      absl::Time now);
absl::Status ValidateChargeRecurring(const v1::ChargeRecurringRequest& request);
absl::Status ValidateGetOrder(const v1::GetOrderRequest& request);
absl::Status ValidateGetSessionStatus(
    const v1::GetSessionStatusRequest& request);

// After the payment: ids ("refund_trans_id", "request_id") follow trans_id's
// rules, PayKKa ids (order_id, recurring_agreement_id) are required.
absl::Status ValidateRefund(const v1::RefundRequest& request);
absl::Status ValidateGetRefund(const v1::GetRefundRequest& request);
absl::Status ValidateCapture(const v1::CaptureRequest& request);
absl::Status ValidateVoid(const v1::VoidRequest& request);
absl::Status ValidateCancelRecurring(const v1::CancelRecurringRequest& request);

// True for an active ISO 4217 currency code usable for payments
// ("USD", "JPY"); false for funds, metals, test codes and retired codes.
bool IsActiveCurrency(absl::string_view code);

// True for an absolute http(s) URL with a host, no whitespace or control
// characters, at most kMaxUrlLength bytes.
bool IsHttpUrl(absl::string_view url);

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_VALIDATION_H_
