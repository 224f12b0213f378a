#ifndef PAYORCH_ADAPTERS_PAYKKA_PAYKKA_CLIENT_H_
#define PAYORCH_ADAPTERS_PAYKKA_PAYKKA_CLIENT_H_

// The seam between payorch's service logic and PayKKa's v3 REST API.
// Requests and results are payorch.v1 messages: mapping them to and from
// PayKKa's JSON happens in one place, adapters/paykka/mapping.cc.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/paykka/signing.h"
#include "common/crypto.h"
#include "payorch/v1/payorch.pb.h"

namespace payorch::paykka {

// One merchant's PayKKa credentials and endpoint (from payorch's config file;
// see merchant_config.h). Immutable once loaded; shared between threads.
struct MerchantConfig {
  std::string merchant_id;    // PayKKa merchant_id, sent in every body
  std::string app_id;         // x-paykka-appid
  RsaPrivateKey private_key;  // signs requests (never logged)
  // PayKKa's platform public key: verifies response signatures when
  // verify_response_signatures is set.
  std::optional<RsaPublicKey> platform_public_key;
  bool verify_response_signatures = false;
  std::string client_key;  // returned to apps for the Drop-in
  std::string base_url;    // scheme://host[:port], no trailing slash
  // Per-environment protocol settings (merchant_config.h), confirmed with
  // `payorchctl probe`; the defaults are what payorch assumed before.
  std::string query_session_path = "/v3/payment/acq/session/query";
  ResponseSignRecipe response_sign_recipe =
      ResponseSignRecipe::kTimestampNonceBody;
  // The ret_codes with which PayKKa refuses a create whose trans_id it
  // already holds: the fast path of response_mapping.h (such a refusal is
  // never stored while PayKKa's object may still become visible). Any other
  // refusal still goes through the lookup by trans_id first.
  std::vector<std::string> duplicate_trans_id_codes = {"010000"};
};

// Which order Query Transaction should find.
struct OrderLookup {
  enum class Kind { kOrderId, kSessionId, kTransId };
  Kind kind = Kind::kOrderId;
  std::string value;
};

// Which session Query Session should find.
struct SessionLookup {
  enum class Kind { kSessionId, kTransId };
  Kind kind = Kind::kSessionId;
  std::string value;
};

// Which refund Refund Query should find.
struct RefundLookup {
  enum class Kind { kRefundTransId, kRefundOrderId };
  Kind kind = Kind::kRefundTransId;
  std::string value;
};

template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

// PayKKa's v3 operations payorch uses. Implementations are thread-safe; each
// call returns at once and runs `done` exactly once, on an I/O or CPU-pool
// thread, never inside the call itself (keep it short). `deadline` bounds the
// whole call including retries.
//
// Errors report what happened as a reason (common/errors.h; its gRPC code is
// common/errors.cc's CodeOf, not the adapter's choice), with metadata
// "psp_ret_code", "psp_ret_msg", "psp_http_status" where known:
// - ORDER_NOT_FOUND (PayKKa 206024) / SESSION_NOT_FOUND (206011).
// - PSP_OUTCOME_UNKNOWN: a mutating call (CreateSession, InitiateRecurring)
//   whose request may have reached PayKKa without a definitive answer
//   (timeout or reset after sending, HTTP 5xx, a 4xx without a PayKKa
//   envelope, ret_code 206003 (a replayed nonce), unparsable or wrongly
//   signed response). Never returned by queries.
// - PSP_UNAVAILABLE: the request was certainly not processed (connection
//   refused, DNS, HTTP 408/425), or a query failed transiently.
// - PSP_RATE_LIMITED: HTTP 429 (not processed).
// - PSP_AUTH_FAILED: PayKKa rejected payorch's credentials or signature
//   (HTTP 401/403, ret_code 2060xx).
// - PSP_REJECTED: a PayKKa envelope with a refusal ret_code (e.g. 010000
//   parameter error, a trans_id it already holds, recurring rule codes).
// - PSP_BAD_RESPONSE: a query's response was unparsable or its signature did
//   not verify.
// - DEADLINE_EXCEEDED: the deadline passed before anything was sent.
// A card decline is NOT an error: OK with Order.status FAILURE.
class PaykkaClient {
 public:
  virtual ~PaykkaClient() = default;

  // Create Session. The response has session_id, session_url, expire_time,
  // status and the merchant's client_key.
  virtual void CreateSession(const MerchantConfig& merchant,
                             const v1::CreateCheckoutRequest& request,
                             absl::Time deadline,
                             Callback<v1::CreateCheckoutResponse> done) = 0;

  // Query Session (by session_id or trans_id). Retried on transient errors.
  virtual void QuerySession(const MerchantConfig& merchant,
                            SessionLookup lookup, absl::Time deadline,
                            Callback<v1::GetSessionStatusResponse> done) = 0;

  // Query Transaction. Retried on transient errors.
  virtual void QueryTransaction(const MerchantConfig& merchant,
                                OrderLookup lookup, absl::Time deadline,
                                Callback<v1::Order> done) = 0;

  // Initiate Transaction for a merchant-initiated recurring charge (mit=true,
  // token, shopper_reference, recurring_agreement_id).
  virtual void InitiateRecurring(const MerchantConfig& merchant,
                                 const v1::ChargeRecurringRequest& request,
                                 absl::Time deadline,
                                 Callback<v1::Order> done) = 0;

  // --- After the payment (docs/paykka.md 5.5-5.8) ---
  // Mutating, like CreateSession: never retried, unknown outcomes reported
  // as PSP_OUTCOME_UNKNOWN. A refund PayKKa declines is OK with status
  // FAILURE.
  virtual void Refund(const MerchantConfig& merchant,
                      const v1::RefundRequest& request, absl::Time deadline,
                      Callback<v1::Refund> done) = 0;
  // Refund Query; ORDER_NOT_FOUND when PayKKa has no such refund. Retried on
  // transient errors.
  virtual void QueryRefund(const MerchantConfig& merchant, RefundLookup lookup,
                           absl::Time deadline, Callback<v1::Refund> done) = 0;
  // Capture, Void and Cancel Recurring Agreement answer only PayKKa's
  // envelope: OK means PayKKa accepted the operation.
  virtual void Capture(const MerchantConfig& merchant,
                       const v1::CaptureRequest& request, absl::Time deadline,
                       Callback<std::monostate> done) = 0;
  virtual void Void(const MerchantConfig& merchant,
                    const v1::VoidRequest& request, absl::Time deadline,
                    Callback<std::monostate> done) = 0;
  virtual void CancelRecurring(const MerchantConfig& merchant,
                               const v1::CancelRecurringRequest& request,
                               absl::Time deadline,
                               Callback<std::monostate> done) = 0;
};

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_PAYKKA_CLIENT_H_
