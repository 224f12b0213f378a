#ifndef PAYORCH_COMMON_ERRORS_H_
#define PAYORCH_COMMON_ERRORS_H_

// payorch's one error vocabulary. Inside the process errors are absl::Status;
// this header attaches what the gRPC edge needs to build a google.rpc.Status
// (service/grpc_status.h): exactly one ErrorInfo reason from the closed list
// below, its metadata, field violations for invalid input and a retry delay.
// The payloads are plain strings so that common/ needs no protobuf.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace payorch {

// ErrorInfo.domain of every payorch error.
inline constexpr absl::string_view kErrorDomain = "payorch";

// The closed list of ErrorInfo reasons. Each reason's gRPC code is chosen in
// ONE place, the table in errors.cc (CodeOf); the README's "Errors" table
// documents the same pairs and tests/common/errors_test.cc checks the two
// agree. Layers below the service report what happened as a reason; none of
// them picks a code.
enum class Reason {
  kInvalidField,       // the request breaks a rule
  kTransIdReused,      // trans_id used with different content
  kRequestInProgress,  // the same request is running now (+ RetryInfo)
  kOrderNotFound,      // no order for that lookup
  kSessionNotFound,    // no such session at PayKKa
  kSessionExpired,     // expired unpaid: no order will come
  kPspOutcomeUnknown,  // PayKKa may or may not have acted (+ RetryInfo)
  kPspUnavailable,     // PayKKa unreachable or failed; nothing happened
  kPspRateLimited,     // PayKKa answered 429 (+ RetryInfo)
  kPspAuthFailed,      // PayKKa rejected our credentials or signature
  kPspRejected,        // PayKKa refused the request
  kPspBadResponse,     // a query's answer was unparsable or unsigned
  kIdempotencyStoreUnavailable,  // Redis unreachable (+ RetryInfo)
  kMerchantNotConfigured,        // no configuration for merchant_id
  kDeadlineExceeded,             // the deadline passed before anything was sent
  kOverloaded,             // shed before any work: too many calls (+ RetryInfo)
  kCallerUnauthenticated,  // no verified caller identity
  kCallerNotAuthorized,    // the caller may not use this RPC/merchant
  kEventLogUnavailable,    // the event log (Redis) is unreachable
  kResumeTokenExpired,     // the resume token is older than the retention
  kConsumerTooSlow,        // a stream's reader stopped reading
  // After the payment (Refund, Capture, Void, GetRefund).
  kRefundNotFound,         // no refund for that lookup
  kRefundAmountExceeded,   // refund above the order's able_to_refund_amount
  kCaptureAmountExceeded,  // capture above able_to_capture_amount
  kOrderNotCapturable,     // the order is not an uncaptured authorisation
  kOrderNotVoidable,       // nothing left to void on the order
  kCurrencyMismatch,       // the request's currency is not the order's
  kInternal,               // a payorch bug
};

// "INVALID_FIELD", "TRANS_ID_REUSED", ...
absl::string_view ReasonName(Reason reason);
// The gRPC code every error with `reason` carries.
absl::StatusCode CodeOf(Reason reason);
// Every reason, in declaration order (for docs and tests).
std::vector<Reason> AllReasons();

// A violation of one request field; `field` is the path in the request
// message, e.g. "payment.shopper_reference" or "goods[2].price".
struct FieldViolation {
  std::string field;
  std::string description;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

// An error with `reason`, its code CodeOf(reason) and ErrorInfo metadata.
// `message` is for humans and must never contain secrets, card data or whole
// PayKKa bodies.
absl::Status MakeError(Reason reason, absl::string_view message,
                       const Metadata& metadata = {});

// INVALID_ARGUMENT / INVALID_FIELD listing every violation.
absl::Status InvalidFields(std::vector<FieldViolation> violations);

// Returns `status` with a RetryInfo delay attached.
absl::Status WithRetryDelay(absl::Status status, absl::Duration delay);

// The reason attached by MakeError; nullopt for statuses made elsewhere.
std::optional<Reason> ReasonOf(const absl::Status& status);
Metadata MetadataOf(const absl::Status& status);
std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status);
std::optional<absl::Duration> RetryDelayOf(const absl::Status& status);

// True when `status` carries `reason`.
bool HasReason(const absl::Status& status, Reason reason);

}  // namespace payorch

#endif  // PAYORCH_COMMON_ERRORS_H_
