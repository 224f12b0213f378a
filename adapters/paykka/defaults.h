#ifndef PAYORCH_ADAPTERS_PAYKKA_DEFAULTS_H_
#define PAYORCH_ADAPTERS_PAYKKA_DEFAULTS_H_

// PayKKa's defaults (docs/paykka.md 5): what payorch sends where a request
// implies a value. mapping.cc builds PayKKa bodies with them, and so the
// idempotency fingerprint (service/fingerprint.cc, a hash of that body)
// follows them too.

#include "absl/strings/string_view.h"
#include "payorch/v1/payorch.pb.h"

namespace payorch::paykka {

// PayKKa's card payment method: sent when storing a card, and for a
// recurring charge that names no method.
inline constexpr absl::string_view kBankCard = "BANKCARD";

// A recurring charge (ChargeRecurring): always payment_type RECURRING and
// merchant-initiated, token_usage SUBSCRIPTION unless the request says.
inline constexpr v1::PaymentType kChargePaymentType =
    v1::PAYMENT_TYPE_RECURRING;
inline constexpr bool kChargeIsMerchantInitiated = true;
inline constexpr v1::TokenUsage kDefaultChargeTokenUsage =
    v1::TOKEN_USAGE_SUBSCRIPTION;

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_DEFAULTS_H_
