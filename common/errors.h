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

// The closed list of ErrorInfo reasons. The README's "Errors" table documents
// each one's gRPC code and what a caller should do; keep them in step.
enum class Reason {
  kInvalidField,       // INVALID_ARGUMENT
  kTransIdReused,      // ALREADY_EXISTS
  kRequestInProgress,  // ABORTED + RetryInfo
  kOrderNotFound,      // NOT_FOUND
  kSessionNotFound,    // NOT_FOUND
  kSessionExpired,     // NOT_FOUND (expired unpaid: no order will come)
  kPspOutcomeUnknown,  // UNAVAILABLE + RetryInfo
  kPspUnavailable,     // UNAVAILABLE + RetryInfo
  kPspRateLimited,     // RESOURCE_EXHAUSTED + RetryInfo
  kPspAuthFailed,      // INTERNAL (PayKKa rejected our credentials)
  kPspRejected,        // FAILED_PRECONDITION (PayKKa refused the request)
  kPspBadResponse,     // INTERNAL / UNAVAILABLE (unparsable or unsigned)
  kIdempotencyStoreUnavailable,  // UNAVAILABLE + RetryInfo
  kMerchantNotConfigured,        // FAILED_PRECONDITION
  kDeadlineExceeded,  // DEADLINE_EXCEEDED (nothing was sent upstream)
  kInternal,          // INTERNAL (a payorch bug)
};

// "INVALID_FIELD", "TRANS_ID_REUSED", ...
absl::string_view ReasonName(Reason reason);
// Every reason, in declaration order (for docs and tests).
std::vector<Reason> AllReasons();

// A violation of one request field; `field` is the path in the request
// message, e.g. "payment.shopper_reference" or "goods[2].price".
struct FieldViolation {
  std::string field;
  std::string description;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

// An error with `code`, `reason` and ErrorInfo metadata. `message` is for
// humans and must never contain secrets, card data or whole PayKKa bodies.
absl::Status MakeError(absl::StatusCode code, Reason reason,
                       absl::string_view message,
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
