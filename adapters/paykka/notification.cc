#include "adapters/paykka/notification.h"

#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "adapters/paykka/signing.h"
#include "adapters/paykka/webhook_input.h"

namespace payorch::paykka {

std::string NotificationHeader(const HttpServerRequest& request,
                               absl::string_view lower_name) {
  auto it = request.headers.find(lower_name);
  return it == request.headers.end() ? "" : it->second;
}

NotificationVerdict VerifyNotification(const HttpServerRequest& request,
                                       const RsaPublicKey& key, absl::Time now,
                                       absl::Duration window) {
  SignatureHeaders headers{NotificationHeader(request, kTimestampHeader),
                           NotificationHeader(request, kNonceHeader),
                           NotificationHeader(request, kSignHeader)};
  if (headers.nonce.empty() || headers.nonce.size() > kMaxNotificationField) {
    return NotificationVerdict::kUnauthenticated;
  }
  int64_t ms = 0;
  if (!absl::SimpleAtoi(headers.timestamp, &ms) ||
      absl::AbsDuration(now - absl::FromUnixMillis(ms)) > window) {
    return NotificationVerdict::kExpired;
  }
  return VerifySignedBody(key, headers, request.body).ok()
             ? NotificationVerdict::kAccepted
             : NotificationVerdict::kUnauthenticated;
}

HttpServerResponse NotificationAnswer(NotificationVerdict verdict) {
  struct Answer {
    int http;
    const char* ret_code;
    const char* ret_msg;
  };
  // clang-format off
  Answer a{401, "206003", "signature error"};  // kUnauthenticated
  switch (verdict) {
    case NotificationVerdict::kAccepted:  a = {200, "000000", "Success"}; break;
    case NotificationVerdict::kNotPost:   a = {405, "010000", "POST only"}; break;
    case NotificationVerdict::kTooLarge:  a = {413, "010000", "body too large"}; break;
    case NotificationVerdict::kMalformed: a = {400, "010000", "body is not a notification"}; break;
    case NotificationVerdict::kExpired:   a = {401, "206004", "signature expired"}; break;
    case NotificationVerdict::kTryLater:  a = {503, "010000", "try again later"}; break;
    case NotificationVerdict::kUnauthenticated: break;
  }
  // clang-format on
  nlohmann::json body = {{"ret_code", a.ret_code}, {"ret_msg", a.ret_msg}};
  return HttpServerResponse{a.http, "application/json", body.dump(), {}};
}

v1::EventType NotifyEventType(absl::string_view notify_type) {
  const std::string upper = absl::AsciiStrToUpper(notify_type);
  if (absl::StartsWith(upper, "REFUND")) return v1::EVENT_TYPE_REFUND;
  if (upper.empty() || absl::StrContains(upper, "PAY") ||
      absl::StrContains(upper, "TRANS")) {
    return v1::EVENT_TYPE_PAYMENT;
  }
  return v1::EVENT_TYPE_OTHER;
}

}  // namespace payorch::paykka
