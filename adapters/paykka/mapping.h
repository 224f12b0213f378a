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

v1::SessionStatus SessionStatusFromPaykka(absl::string_view text);
v1::OrderStatus OrderStatusFromPaykka(absl::string_view text);

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_MAPPING_H_
