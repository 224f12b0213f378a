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

absl::string_view ReasonName(Reason reason) {
  switch (reason) {
    case Reason::kInvalidField:
      return "INVALID_FIELD";
    case Reason::kTransIdReused:
      return "TRANS_ID_REUSED";
    case Reason::kRequestInProgress:
      return "REQUEST_IN_PROGRESS";
    case Reason::kOrderNotFound:
      return "ORDER_NOT_FOUND";
    case Reason::kSessionNotFound:
      return "SESSION_NOT_FOUND";
    case Reason::kSessionExpired:
      return "SESSION_EXPIRED";
    case Reason::kPspOutcomeUnknown:
      return "PSP_OUTCOME_UNKNOWN";
    case Reason::kPspUnavailable:
      return "PSP_UNAVAILABLE";
    case Reason::kPspRateLimited:
      return "PSP_RATE_LIMITED";
    case Reason::kPspAuthFailed:
      return "PSP_AUTH_FAILED";
    case Reason::kPspRejected:
      return "PSP_REJECTED";
    case Reason::kPspBadResponse:
      return "PSP_BAD_RESPONSE";
    case Reason::kIdempotencyStoreUnavailable:
      return "IDEMPOTENCY_STORE_UNAVAILABLE";
    case Reason::kMerchantNotConfigured:
      return "MERCHANT_NOT_CONFIGURED";
    case Reason::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case Reason::kInternal:
      return "INTERNAL";
  }
  return "INTERNAL";
}

std::vector<Reason> AllReasons() {
  std::vector<Reason> out;
  for (int r = static_cast<int>(Reason::kInvalidField);
       r <= static_cast<int>(Reason::kInternal); ++r) {
    out.push_back(static_cast<Reason>(r));
  }
  return out;
}

absl::Status MakeError(absl::StatusCode code, Reason reason,
                       absl::string_view message, const Metadata& metadata) {
  absl::Status status(code, message);
  status.SetPayload(kReasonUrl, absl::Cord(ReasonName(reason)));
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
  absl::Status status = MakeError(absl::StatusCode::kInvalidArgument,
                                  Reason::kInvalidField, message);
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
