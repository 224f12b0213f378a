#ifndef PAYORCH_ADAPTERS_PAYKKA_RESPONSE_MAPPING_H_
#define PAYORCH_ADAPTERS_PAYKKA_RESPONSE_MAPPING_H_

// Step one of reading a PayKKa answer: (transport result, HTTP status,
// signature check, envelope ret_code) -> OK envelope or a payorch error, in
// ONE table (response_mapping.cc). Step two, the fields of `data`, is
// mapping.h.

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "adapters/paykka/http_transport.h"

namespace payorch::paykka {

// Mutating calls (Create Session, Initiate Transaction) must never turn an
// unknown outcome into a definitive error; queries can simply be retried.
enum class CallKind { kMutating, kQuery };

// PayKKa's envelope {ret_code, ret_msg, data} of a successful answer.
struct Envelope {
  int http_status = 0;
  std::string ret_code;  // "000000", or "" when PayKKa sent none
  std::string ret_msg;
  // The whole parsed body (an object). mapping.h's EffectiveData() merges
  // `data` with top-level fields.
  nlohmann::json body;
};

// Retry-After used for a 429 without a usable Retry-After header.
inline constexpr absl::Duration kDefaultRateLimitDelay = absl::Seconds(1);
// ret_msg is truncated to this many bytes in messages and metadata.
inline constexpr size_t kMaxRetMsgBytes = 200;

// Classifies one attempt. `signature` is the response-signature check (OK
// when verified or verification is off); it only matters for answers that
// would otherwise be taken as definitive. Errors follow the contract in
// paykka_client.h, with metadata psp_http_status, psp_ret_code, psp_ret_msg
// where known. Never puts the body in a message.
//
// The duplicate fast path: a mutating call's refusal (PSP_REJECTED) whose
// ret_code is in `duplicate_trans_id_codes` (the merchant's setting) also
// carries metadata psp_duplicate_trans_id "true": PayKKa says it already
// holds the trans_id. The service still looks the trans_id up before it
// stores any refusal (the safety net for codes nobody listed).
absl::StatusOr<Envelope> ClassifyResponse(
    CallKind kind, const absl::StatusOr<HttpResponse>& result,
    const absl::Status& signature,
    absl::Span<const std::string> duplicate_trans_id_codes = {});

// True for an error ClassifyResponse marked as PayKKa's duplicate-trans_id
// refusal.
bool IsDuplicateTransIdRefusal(const absl::Status& status);

// True for "000000" and the ret_codes the table gives a meaning other than a
// refusal (not found, credentials, PayKKa's own failure): such a code cannot
// also mean "duplicate trans_id".
bool RetCodeHasOwnMeaning(absl::string_view ret_code);

// The error for a successful envelope whose `data` could not be mapped
// (missing or mistyped fields): PSP_OUTCOME_UNKNOWN for a mutating call,
// PSP_BAD_RESPONSE for a query.
absl::Status BadResponse(CallKind kind, absl::string_view why, int http_status);

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_RESPONSE_MAPPING_H_
