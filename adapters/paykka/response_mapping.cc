#include "adapters/paykka/response_mapping.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace payorch::paykka {
namespace {

// What a definitive ret_code means for payorch.
enum class Outcome {
  kOrderNotFound,    // ORDER_NOT_FOUND
  kSessionNotFound,  // SESSION_NOT_FOUND
  kAuthFailed,       // PSP_AUTH_FAILED: our credentials or signature
  kRejected,         // PSP_REJECTED
  // Not definitive: PSP_OUTCOME_UNKNOWN for a mutating call,
  // PSP_UNAVAILABLE for a query.
  kTransient,
};

struct RetCodeRow {
  absl::string_view ret_code;
  Outcome outcome;
};

// ret_codes with a meaning of their own (docs/paykka.md 8.1). Every other
// non-"000000" code is a definitive refusal: PSP_REJECTED.
// clang-format off
constexpr RetCodeRow kRetCodes[] = {
    {"206024", Outcome::kOrderNotFound},    // the order doesn't exist
    {"206011", Outcome::kSessionNotFound},  // the session does not exist
    {"206002", Outcome::kAuthFailed},       // signature not found
    {"206003", Outcome::kAuthFailed},       // signature error
    {"206004", Outcome::kAuthFailed},       // signature expired (clock skew)
    {"206005", Outcome::kAuthFailed},       // merchant does not exist
    {"206006", Outcome::kAuthFailed},       // merchant public key not configured
    {"206007", Outcome::kAuthFailed},       // merchant status disabled
    {"206008", Outcome::kAuthFailed},       // member status disabled
    {"010000", Outcome::kRejected},         // invalid request / parameter error
    // "system exception": PayKKa itself does not know what happened.
    {"999999", Outcome::kTransient},
};
// clang-format on

std::string Truncate(absl::string_view s) {
  if (s.size() <= kMaxRetMsgBytes) return std::string(s);
  return absl::StrCat(s.substr(0, kMaxRetMsgBytes), "...");
}

// A string or number field as text ("" when absent or another type).
std::string TextField(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return "";
}

// A failure after the request may have reached PayKKa. For a mutating call
// that is always "outcome unknown"; a query has no side effect, so it gets
// `query_reason` (retryable).
absl::Status MaybeProcessed(CallKind kind, Reason query_reason,
                            absl::string_view what, const Metadata& md) {
  if (kind == CallKind::kMutating) {
    return MakeError(Reason::kPspOutcomeUnknown,
                     absl::StrCat(what,
                                  "; the request may have been "
                                  "processed by PayKKa"),
                     md);
  }
  return MakeError(query_reason, what, md);
}

// PayKKa failed (5xx, transport): a query is PSP_UNAVAILABLE.
absl::Status Transient(CallKind kind, absl::string_view what,
                       const Metadata& md) {
  return MaybeProcessed(kind, Reason::kPspUnavailable, what, md);
}

// PayKKa's answer cannot be trusted or read: a query is PSP_BAD_RESPONSE.
absl::Status Unreadable(CallKind kind, absl::string_view what,
                        const Metadata& md) {
  return MaybeProcessed(kind, Reason::kPspBadResponse, what, md);
}

// Retry-After in seconds (the HTTP-date form is not used by API gateways in
// practice and falls back to the default).
absl::Duration RetryAfter(const HttpResponse& response) {
  int64_t seconds = 0;
  if (absl::SimpleAtoi(response.Header("retry-after"), &seconds) &&
      seconds >= 0 && seconds <= 3600) {
    return absl::Seconds(seconds);
  }
  return kDefaultRateLimitDelay;
}

// The body parsed, when it is a JSON object.
std::optional<nlohmann::json> JsonObject(const std::string& text) {
  nlohmann::json parsed =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return std::nullopt;
  return parsed;
}

// Rows 1-3 of the table: no HTTP answer.
absl::Status TransportFailure(CallKind kind, const absl::Status& error) {
  if (SendStateOf(error) == SendState::kNotSent) {
    if (error.code() == absl::StatusCode::kDeadlineExceeded) {
      return MakeError(Reason::kDeadlineExceeded,
                       absl::StrCat("PayKKa not reached before the "
                                    "deadline: ",
                                    error.message()));
    }
    return MakeError(Reason::kPspUnavailable,
                     absl::StrCat("PayKKa not reachable: ", error.message()));
  }
  return Transient(
      kind, absl::StrCat("no answer from PayKKa: ", error.message()), {});
}

// Rows 4-6 of the table, decided by the HTTP status (and 206003); nullopt
// for the rows below.
std::optional<absl::Status> HttpStatusRows(CallKind kind,
                                           const HttpResponse& response,
                                           const std::string& ret_code,
                                           const std::string& described,
                                           const Metadata& md) {
  const int http = response.status;
  // Row 4.
  if (http == 429) {
    return WithRetryDelay(
        MakeError(Reason::kPspRateLimited,
                  absl::StrCat("PayKKa rate limit: ", described), md),
        RetryAfter(response));
  }
  if (http == 408 || http == 425) {
    return MakeError(
        Reason::kPspUnavailable,
        absl::StrCat("PayKKa (or a proxy) did not process the request: ",
                     described),
        md);
  }
  // Row 5.
  if (http >= 500 && http <= 599) {
    return Transient(kind, absl::StrCat("PayKKa server error: ", described),
                     md);
  }
  // Row 6.
  if (kind == CallKind::kMutating && ret_code == "206003") {
    return Transient(
        kind,
        absl::StrCat("PayKKa refused the nonce or signature: ", described), md);
  }
  if (http == 401 || http == 403) {
    return MakeError(
        Reason::kPspAuthFailed,
        absl::StrCat("PayKKa rejected payorch's credentials: ", described), md);
  }
  return std::nullopt;
}

// Marks PayKKa's duplicate-trans_id refusal (IsDuplicateTransIdRefusal).
constexpr char kDuplicateTransIdKey[] = "psp_duplicate_trans_id";

// A definitive refusal envelope: PSP_REJECTED. On a mutating call, a code
// the merchant lists as "duplicate trans_id" is marked as such.
absl::Status Rejected(CallKind kind, const std::string& ret_code,
                      absl::string_view described, Metadata md,
                      absl::Span<const std::string> duplicate_codes) {
  const bool duplicate =
      kind == CallKind::kMutating &&
      std::find(duplicate_codes.begin(), duplicate_codes.end(), ret_code) !=
          duplicate_codes.end();
  if (!duplicate) {
    return MakeError(Reason::kPspRejected,
                     absl::StrCat("PayKKa refused the request: ", described),
                     md);
  }
  md.emplace_back(kDuplicateTransIdKey, "true");
  return MakeError(
      Reason::kPspRejected,
      absl::StrCat("PayKKa refused the trans_id as already used: ", described),
      md);
}

// Row 10 of the table: the error for a ret_code listed in kRetCodes, or
// nullopt for codes it does not list.
std::optional<absl::Status> ListedRetCode(
    CallKind kind, const std::string& ret_code, absl::string_view described,
    const Metadata& md, absl::Span<const std::string> duplicate_codes) {
  for (const RetCodeRow& row : kRetCodes) {
    if (row.ret_code != ret_code) continue;
    switch (row.outcome) {
      case Outcome::kOrderNotFound:
        return MakeError(Reason::kOrderNotFound,
                         absl::StrCat("PayKKa has no such order: ", described),
                         md);
      case Outcome::kSessionNotFound:
        return MakeError(
            Reason::kSessionNotFound,
            absl::StrCat("PayKKa has no such session: ", described), md);
      case Outcome::kAuthFailed:
        return MakeError(Reason::kPspAuthFailed,
                         absl::StrCat("PayKKa rejected payorch's "
                                      "credentials: ",
                                      described),
                         md);
      case Outcome::kRejected:
        return Rejected(kind, ret_code, described, md, duplicate_codes);
      case Outcome::kTransient:
        return Transient(kind, absl::StrCat("PayKKa system error: ", described),
                         md);
    }
  }
  return std::nullopt;
}

}  // namespace

bool IsDuplicateTransIdRefusal(const absl::Status& status) {
  if (!HasReason(status, Reason::kPspRejected)) return false;
  for (const auto& [key, value] : MetadataOf(status)) {
    if (key == kDuplicateTransIdKey && value == "true") return true;
  }
  return false;
}

bool RetCodeHasOwnMeaning(absl::string_view ret_code) {
  if (ret_code == "000000") return true;
  for (const RetCodeRow& row : kRetCodes) {
    if (row.ret_code == ret_code) return row.outcome != Outcome::kRejected;
  }
  return false;
}

// THE classification table. Rows are tried top to bottom; the first that
// matches decides. It names what happened as a reason; the gRPC code each
// reason carries is common/errors.cc's table, not this one's.
//
// clang-format off
// | # | transport / HTTP / body                  | mutating call         | query                 |
// |---|------------------------------------------|-----------------------|-----------------------|
// | 1 | not sent, deadline passed                | DEADLINE_EXCEEDED     | DEADLINE_EXCEEDED     |
// | 2 | not sent (refused, DNS, TLS)             | PSP_UNAVAILABLE       | PSP_UNAVAILABLE       |
// | 3 | maybe sent (timeout/reset/EOF after send)| PSP_OUTCOME_UNKNOWN   | PSP_UNAVAILABLE       |
// | 4 | HTTP 429                                 | PSP_RATE_LIMITED + RetryInfo (Retry-After or 1 s)     |
// | 4 | HTTP 408, 425 (not processed)            | PSP_UNAVAILABLE       | PSP_UNAVAILABLE       |
// | 5 | HTTP 5xx                                 | PSP_OUTCOME_UNKNOWN   | PSP_UNAVAILABLE       |
// | 6 | ret_code 206003 (nonce replay or bad sig)| PSP_OUTCOME_UNKNOWN   | PSP_AUTH_FAILED       |
// | 6 | HTTP 401 / 403                           | PSP_AUTH_FAILED                               |
// | 7 | signature missing or wrong               | PSP_OUTCOME_UNKNOWN   | PSP_BAD_RESPONSE      |
// | 8 | 2xx, body not a JSON object              | PSP_OUTCOME_UNKNOWN   | PSP_BAD_RESPONSE      |
// | 9 | 4xx without a PayKKa envelope (no JSON   | PSP_OUTCOME_UNKNOWN   | PSP_UNAVAILABLE       |
// |   | object with a ret_code: proxy, WAF, LB)  |                       |                       |
// |10 | ret_code listed in kRetCodes             | as listed (999999 behaves like row 5)         |
// |11 | 2xx, ret_code "000000" or absent         | OK                    | OK                    |
// |12 | other ret_code (a refusal envelope)      | PSP_REJECTED                                  |
// |13 | 4xx with ret_code "000000"               | PSP_OUTCOME_UNKNOWN   | PSP_UNAVAILABLE       |
// |14 | anything else (1xx, 3xx)                 | PSP_OUTCOME_UNKNOWN   | PSP_BAD_RESPONSE      |
// clang-format on
//
// Signature (row 7) is checked only for answers that would otherwise be
// definitive (after rows 1-6): a forged "rejected" must not end a charge's
// story. Only a PayKKa envelope with a refusal ret_code (rows 10, 12) is a
// definitive refusal that may be stored; a 4xx without one comes from
// something in front of PayKKa and says nothing about the request's fate.
// 206003 is also what PayKKa answers to a request whose nonce it has seen:
// for a create that means an earlier copy may have been processed.
absl::StatusOr<Envelope> ClassifyResponse(
    CallKind kind, const absl::StatusOr<HttpResponse>& result,
    const absl::Status& signature,
    absl::Span<const std::string> duplicate_trans_id_codes) {
  // Rows 1-3.
  if (!result.ok()) return TransportFailure(kind, result.status());
  const HttpResponse& response = *result;
  const int http = response.status;
  Metadata md = {{"psp_http_status", absl::StrCat(http)}};

  // Envelope fields, if the body is a JSON object (any HTTP status).
  std::optional<nlohmann::json> body = JsonObject(response.body);
  std::string ret_code = body ? TextField(*body, "ret_code") : "";
  std::string ret_msg = body ? Truncate(TextField(*body, "ret_msg")) : "";
  if (!ret_code.empty()) {
    md.emplace_back("psp_ret_code", ret_code);
    md.emplace_back("psp_ret_msg", ret_msg);
  }
  const std::string described =
      ret_code.empty() ? absl::StrCat("HTTP ", http)
                       : absl::StrCat("HTTP ", http, ", ret_code ", ret_code,
                                      " (", ret_msg, ")");

  // Rows 4-6.
  if (std::optional<absl::Status> by_status =
          HttpStatusRows(kind, response, ret_code, described, md)) {
    return *std::move(by_status);
  }
  // Row 7.
  if (!signature.ok()) {
    return Unreadable(kind,
                      absl::StrCat("PayKKa response signature did not verify (",
                                   described, ")"),
                      md);
  }
  const bool is_2xx = http >= 200 && http <= 299;
  const bool is_4xx = http >= 400 && http <= 499;
  // Row 9.
  if (is_4xx && ret_code.empty()) {
    return Transient(
        kind, absl::StrCat("HTTP ", http, " without a PayKKa envelope"), md);
  }
  // Row 8.
  if (!body && is_2xx) {
    return Unreadable(
        kind,
        absl::StrCat("PayKKa response is not a JSON object (HTTP ", http, ")"),
        md);
  }
  // Row 10.
  if (std::optional<absl::Status> listed = ListedRetCode(
          kind, ret_code, described, md, duplicate_trans_id_codes)) {
    return *std::move(listed);
  }
  const bool success_code = ret_code.empty() || ret_code == "000000";
  // Row 11.
  if (is_2xx && success_code && body) {
    Envelope envelope;
    envelope.http_status = http;
    envelope.ret_code = ret_code;
    envelope.ret_msg = ret_msg;
    envelope.body = *std::move(body);
    return envelope;
  }
  // Row 12.
  if (!success_code) {
    return Rejected(kind, ret_code, described, md, duplicate_trans_id_codes);
  }
  // Row 13.
  if (is_4xx) {
    return Transient(kind, absl::StrCat("no refusal code: ", described), md);
  }
  // Row 14.
  return Unreadable(kind, absl::StrCat("unexpected PayKKa answer: ", described),
                    md);
}

absl::Status BadResponse(CallKind kind, absl::string_view why,
                         int http_status) {
  return Unreadable(kind, absl::StrCat("unusable PayKKa response: ", why),
                    {{"psp_http_status", absl::StrCat(http_status)}});
}

}  // namespace payorch::paykka
