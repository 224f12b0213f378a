#ifndef PAYORCH_ADAPTERS_PAYKKA_NOTIFICATION_H_
#define PAYORCH_ADAPTERS_PAYKKA_NOTIFICATION_H_

// PayKKa's payment notifications (webhooks) as payorch receives them
// (docs/paykka.md 7): the timestamp, nonce and signature check (signing.h's
// recipe, the same as for PayKKa's answers) and the answers PayKKa expects.
// The body is read by webhook_input.h; what to do with a notification is the
// service's business (service/webhooks.h).

#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/http_server.h"
#include "payorch/v1/payorch.pb.h"

namespace payorch::paykka {

// What became of a notification; each has its answer to PayKKa.
enum class NotificationVerdict {
  kAccepted,         // 200 000000 Success (also for duplicates)
  kNotPost,          // 405 010000
  kTooLarge,         // 413 010000
  kMalformed,        // 400 010000
  kExpired,          // 401 206004: timestamp outside the window
  kUnauthenticated,  // 401 206003: bad or missing signature or nonce
  kTryLater,         // 503 010000: payorch cannot tell now; PayKKa retries
};

// kAccepted when the request carries a bounded x-paykka-nonce, its
// x-paykka-timestamp is within `window` of `now` and its signature verifies
// with PayKKa's `key`; kUnauthenticated (nonce or signature) or kExpired
// otherwise.
NotificationVerdict VerifyNotification(const HttpServerRequest& request,
                                       const RsaPublicKey& key, absl::Time now,
                                       absl::Duration window);

// The request's header `lower_name` ("" when absent).
std::string NotificationHeader(const HttpServerRequest& request,
                               absl::string_view lower_name);

// The HTTP answer PayKKa expects for `verdict`: its status and a
// {"ret_code", "ret_msg"} JSON body.
HttpServerResponse NotificationAnswer(NotificationVerdict verdict);

// The kind of event a notification's notify_type announces: REFUND* is a
// refund; an empty type or one naming a payment or transaction is a payment;
// anything else is EVENT_TYPE_OTHER.
v1::EventType NotifyEventType(absl::string_view notify_type);

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_NOTIFICATION_H_
