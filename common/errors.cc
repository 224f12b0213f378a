#include "common/errors.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace payorch {
namespace {

// Payload type URLs. Values are line-oriented text: "key\tvalue\n".
constexpr absl::string_view kReasonUrl = "payorch/reason";
constexpr absl::string_view kMetadataUrl = "payorch/metadata";
constexpr absl::string_view kViolationsUrl = "payorch/field_violations";
constexpr absl::string_view kRetryUrl = "payorch/retry_delay_ms";

struct ReasonRow {
  Reason reason;
  absl::string_view name;
  absl::StatusCode code;
};

// THE reason -> gRPC code table, in declaration order of Reason. The README's
// "Errors" table lists the same rows (checked by errors_test).
// clang-format off
constexpr ReasonRow kReasons[] = {
    {Reason::kInvalidField,                "INVALID_FIELD",                 absl::StatusCode::kInvalidArgument},
    {Reason::kTransIdReused,               "TRANS_ID_REUSED",               absl::StatusCode::kAlreadyExists},
    {Reason::kRequestInProgress,           "REQUEST_IN_PROGRESS",           absl::StatusCode::kAborted},
    {Reason::kOrderNotFound,               "ORDER_NOT_FOUND",               absl::StatusCode::kNotFound},
    {Reason::kSessionNotFound,             "SESSION_NOT_FOUND",             absl::StatusCode::kNotFound},
    {Reason::kSessionExpired,              "SESSION_EXPIRED",               absl::StatusCode::kNotFound},
    {Reason::kPspOutcomeUnknown,           "PSP_OUTCOME_UNKNOWN",           absl::StatusCode::kUnavailable},
    {Reason::kPspUnavailable,              "PSP_UNAVAILABLE",               absl::StatusCode::kUnavailable},
    {Reason::kPspRateLimited,              "PSP_RATE_LIMITED",              absl::StatusCode::kResourceExhausted},
    {Reason::kPspAuthFailed,               "PSP_AUTH_FAILED",               absl::StatusCode::kInternal},
    {Reason::kPspRejected,                 "PSP_REJECTED",                  absl::StatusCode::kFailedPrecondition},
    {Reason::kPspBadResponse,              "PSP_BAD_RESPONSE",              absl::StatusCode::kUnavailable},
    {Reason::kIdempotencyStoreUnavailable, "IDEMPOTENCY_STORE_UNAVAILABLE", absl::StatusCode::kUnavailable},
    {Reason::kMerchantNotConfigured,       "MERCHANT_NOT_CONFIGURED",       absl::StatusCode::kFailedPrecondition},
    {Reason::kDeadlineExceeded,            "DEADLINE_EXCEEDED",             absl::StatusCode::kDeadlineExceeded},
    {Reason::kOverloaded,                  "OVERLOADED",                    absl::StatusCode::kResourceExhausted},
    {Reason::kCallerUnauthenticated,       "CALLER_UNAUTHENTICATED",        absl::StatusCode::kUnauthenticated},
    {Reason::kCallerNotAuthorized,         "CALLER_NOT_AUTHORIZED",         absl::StatusCode::kPermissionDenied},
    {Reason::kEventLogUnavailable,         "EVENT_LOG_UNAVAILABLE",         absl::StatusCode::kUnavailable},
    {Reason::kResumeTokenExpired,          "RESUME_TOKEN_EXPIRED",          absl::StatusCode::kOutOfRange},
    {Reason::kConsumerTooSlow,             "CONSUMER_TOO_SLOW",             absl::StatusCode::kResourceExhausted},
    {Reason::kRefundNotFound,              "REFUND_NOT_FOUND",              absl::StatusCode::kNotFound},
    {Reason::kRefundAmountExceeded,        "REFUND_AMOUNT_EXCEEDED",        absl::StatusCode::kFailedPrecondition},
    {Reason::kCaptureAmountExceeded,       "CAPTURE_AMOUNT_EXCEEDED",       absl::StatusCode::kFailedPrecondition},
    {Reason::kOrderNotCapturable,          "ORDER_NOT_CAPTURABLE",          absl::StatusCode::kFailedPrecondition},
    {Reason::kOrderNotVoidable,            "ORDER_NOT_VOIDABLE",            absl::StatusCode::kFailedPrecondition},
    {Reason::kCurrencyMismatch,            "CURRENCY_MISMATCH",             absl::StatusCode::kFailedPrecondition},
    {Reason::kInternal,                    "INTERNAL",                      absl::StatusCode::kInternal},
};
// clang-format on

constexpr bool TableFollowsDeclarationOrder() {
  for (size_t i = 0; i < sizeof(kReasons) / sizeof(kReasons[0]); ++i) {
    if (static_cast<size_t>(kReasons[i].reason) != i) return false;
  }
  return static_cast<size_t>(Reason::kInternal) + 1 ==
         sizeof(kReasons) / sizeof(kReasons[0]);
}
static_assert(TableFollowsDeclarationOrder(),
              "kReasons must list every Reason once, in declaration order");

const ReasonRow& RowOf(Reason reason) {
  const auto i = static_cast<size_t>(reason);
  return i < sizeof(kReasons) / sizeof(kReasons[0])
             ? kReasons[i]
             : kReasons[static_cast<size_t>(Reason::kInternal)];
}

// Tabs and newlines separate entries, so they are replaced in values.
std::string Clean(absl::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\t' || c == '\n') c = ' ';
  }
  return out;
}

absl::Cord EncodePairs(
    const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string text;
  for (const auto& [k, v] : pairs)
    absl::StrAppend(&text, Clean(k), "\t", Clean(v), "\n");
  return absl::Cord(text);
}

std::vector<std::pair<std::string, std::string>> DecodePairs(
    const absl::Cord& cord) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view line :
       absl::StrSplit(std::string(cord), '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(line, absl::MaxSplits('\t', 1));
    out.push_back(std::move(kv));
  }
  return out;
}

}  // namespace

absl::string_view ReasonName(Reason reason) { return RowOf(reason).name; }

absl::StatusCode CodeOf(Reason reason) { return RowOf(reason).code; }

std::vector<Reason> AllReasons() {
  std::vector<Reason> out;
  for (const ReasonRow& row : kReasons) out.push_back(row.reason);
  return out;
}

absl::Status MakeError(Reason reason, absl::string_view message,
                       const Metadata& metadata) {
  const ReasonRow& row = RowOf(reason);
  absl::Status status(row.code, message);
  status.SetPayload(kReasonUrl, absl::Cord(row.name));
  if (!metadata.empty()) status.SetPayload(kMetadataUrl, EncodePairs(metadata));
  return status;
}

absl::Status InvalidFields(std::vector<FieldViolation> violations) {
  std::string message = "invalid request:";
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& v : violations) {
    absl::StrAppend(&message, " ", v.field, ": ", v.description, ";");
    pairs.emplace_back(v.field, v.description);
  }
  if (!message.empty() && message.back() == ';') message.pop_back();
  absl::Status status = MakeError(Reason::kInvalidField, message);
  status.SetPayload(kViolationsUrl, EncodePairs(pairs));
  return status;
}

absl::Status WithRetryDelay(absl::Status status, absl::Duration delay) {
  status.SetPayload(kRetryUrl,
                    absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(delay))));
  return status;
}

std::optional<Reason> ReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonUrl);
  if (!payload) return std::nullopt;
  std::string name(*payload);
  for (Reason r : AllReasons()) {
    if (ReasonName(r) == name) return r;
  }
  return std::nullopt;
}

Metadata MetadataOf(const absl::Status& status) {
  auto payload = status.GetPayload(kMetadataUrl);
  if (!payload) return {};
  return DecodePairs(*payload);
}

std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status) {
  auto payload = status.GetPayload(kViolationsUrl);
  std::vector<FieldViolation> out;
  if (!payload) return out;
  for (auto& [k, v] : DecodePairs(*payload))
    out.push_back({std::move(k), std::move(v)});
  return out;
}

std::optional<absl::Duration> RetryDelayOf(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryUrl);
  int64_t ms = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &ms))
    return std::nullopt;
  return absl::Milliseconds(ms);
}

bool HasReason(const absl::Status& status, Reason reason) {
  std::optional<Reason> r = ReasonOf(status);
  return r.has_value() && *r == reason;
}

}  // namespace payorch
