#ifndef PAYORCH_ADAPTERS_PAYKKA_MAPPING_H_
#define PAYORCH_ADAPTERS_PAYKKA_MAPPING_H_

// THE place where PayKKa's JSON fields are mapped to and from payorch.v1
// messages (docs/paykka.md section 5). Request bodies are built here; response
// `data` objects are read here. Nothing here throws: nlohmann's exceptions
// are caught at this boundary.
//
// Request rules: enums become PayKKa's strings; amounts are JSON integers
// (minor units); times are RFC 3339 in UTC with a "+00:00" offset; empty
// optional fields are omitted.
// Response rules: unknown enum values are kept as raw text (status_text,
// OTHER); amounts may be numbers or digit strings; times may use "+08:00",
// "+0800" or "Z"; fields may sit in `data` or at the top level.

#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/paykka/paykka_client.h"
#include "payorch/v1/payorch.pb.h"

namespace payorch::paykka {

inline constexpr absl::string_view kCreateSessionPath =
    "/v3/payment/acq/session";
inline constexpr absl::string_view kQuerySessionPath =
    "/v3/payment/acq/session/query";
inline constexpr absl::string_view kInitiateTransactionPath = "/v3/payment/acq";
inline constexpr absl::string_view kQueryTransactionPath =
    "/v3/payment/acq/query";
// After the payment (docs/paykka.md 5.5-5.8).
inline constexpr absl::string_view kRefundPath = "/v3/payment/acq/refund";
inline constexpr absl::string_view kQueryRefundPath =
    "/v3/payment/acq/refund/query";
// UNCONFIRMED: PayKKa's reference lists Capture under "Capture and Void"
// without a readable path or fields. payorch assumes Void's sibling path and
// body (merchant_id, order_id) plus amount and currency, as Refund sends
// them. Confirm with PayKKa: this constant and CaptureBody() are the whole
// change.
inline constexpr absl::string_view kCapturePath = "/v3/payment/acq/capture";
inline constexpr absl::string_view kVoidPath = "/v3/payment/acq/void";
inline constexpr absl::string_view kCancelRecurringPath =
    "/v3/payment/acq/recurring/cancel";
// PayKKa's "recurring agreement not active" (docs/paykka.md 5.4, 2016).
inline constexpr absl::string_view kAgreementNotActiveCode = "2016";

// --- Requests (the exact bytes that are signed and sent) ---

// Create Session body. `merchant_id` is the configured PayKKa merchant id.
std::string CreateSessionBody(absl::string_view merchant_id,
                              const v1::CreateCheckoutRequest& request);
// Initiate Transaction body for a merchant-initiated recurring charge.
std::string InitiateRecurringBody(absl::string_view merchant_id,
                                  const v1::ChargeRecurringRequest& request);
// Query Transaction body: merchant_id plus the one lookup field.
std::string QueryTransactionBody(absl::string_view merchant_id,
                                 const OrderLookup& lookup);
// Query Session body: merchant_id plus session_id or trans_id.
std::string QuerySessionBody(absl::string_view merchant_id,
                             const SessionLookup& lookup);

// Refund body: merchant_id, refund_trans_id, ori_order_id, refund_amount,
// currency, reason, notify_url.
std::string RefundBody(absl::string_view merchant_id,
                       const v1::RefundRequest& request);
// Refund Query body: merchant_id plus refund_trans_id or refund_order_id.
std::string QueryRefundBody(absl::string_view merchant_id,
                            const RefundLookup& lookup);
// Capture body: merchant_id, order_id, amount, currency (see kCapturePath).
std::string CaptureBody(absl::string_view merchant_id,
                        const v1::CaptureRequest& request);
// Void body: merchant_id, order_id, reason.
std::string VoidBody(absl::string_view merchant_id,
                     const v1::VoidRequest& request);
// Cancel Recurring Agreement body: merchant_id, recurring_agreement_id.
std::string CancelRecurringBody(absl::string_view merchant_id,
                                const v1::CancelRecurringRequest& request);

// RFC 3339 in UTC with an explicit "+00:00" offset, whole seconds.
std::string FormatPaykkaTime(absl::Time t);
// Parses "2025-05-08T15:34:14+08:00", "...+0800", "...Z" (fractional
// seconds allowed). kInvalidArgument otherwise.
absl::StatusOr<absl::Time> ParsePaykkaTime(absl::string_view text);

// --- Responses ---

// A string field, or a number's text; "" when `obj` is not an object or the
// field is absent, null or another type.
std::string FieldText(const nlohmann::json& obj, const char* key);

// The object holding the answer's fields: `data` when it is an object, with
// top-level fields (other than ret_code/ret_msg/data) added where `data`
// lacks them; the whole body when there is no `data`.
nlohmann::json EffectiveData(const nlohmann::json& body);

// Each returns kInvalidArgument (naming the field, never the body) when a
// required field is missing or a field has an unusable type; the caller
// turns that into BadResponse() (response_mapping.h).
absl::StatusOr<v1::CreateCheckoutResponse> ParseCreateSessionData(
    const nlohmann::json& data, const MerchantConfig& merchant,
    const v1::CreateCheckoutRequest& request);
absl::StatusOr<v1::GetSessionStatusResponse> ParseSessionData(
    const nlohmann::json& data);
absl::StatusOr<v1::Order> ParseOrderData(const nlohmann::json& data);

// A refund (Refund's answer, Refund Query, the refund webhook): needs
// refund_order_id or status. `ori_order_id` is read as order_id, `amount` or
// `refund_amount` as amount.
absl::StatusOr<v1::Refund> ParseRefundData(const nlohmann::json& data);
// Envelope-only answers (Capture, Void, Cancel Recurring).
absl::StatusOr<std::monostate> ParseNoData(const nlohmann::json& data);

v1::SessionStatus SessionStatusFromPaykka(absl::string_view text);
v1::OrderStatus OrderStatusFromPaykka(absl::string_view text);
v1::RefundStatus RefundStatusFromPaykka(absl::string_view text);

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_MAPPING_H_
