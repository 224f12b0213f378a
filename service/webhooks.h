#ifndef PAYORCH_SERVICE_WEBHOOKS_H_
#define PAYORCH_SERVICE_WEBHOOKS_H_

// PayKKa's payment notifications (POST /webhooks/paykka on payorchd's public
// webhook listener, --webhook_listen). payorch treats a notification as a
// hint, never as the truth: callers learn an order's state from GetOrder
// (PayKKa Query Transaction).
//
// The port faces the internet, so the handler fails closed:
// - the body is read as hostile input (adapters/paykka/webhook_input.h:
//   64 KiB, nesting depth, bounded string fields);
// - a signature is required: a merchant without PayKKa's public key only
//   accepts unsigned notifications when `allow_unsigned` is set (the local
//   sandbox's --webhook_allow_unsigned);
// - an unknown merchant gets exactly the answer of a bad signature (401
//   206003), so merchant ids cannot be enumerated;
// - the timestamp must be within the window and the nonce new across every
//   replica (cache::NonceStore, kept as long as the window); when the nonce
//   store cannot tell, 503 (PayKKa retries);
// - only verified notifications reach payorch_webhooks_total, whose labels
//   come from closed sets; refusals are counted by reason alone.
// A verified notification is logged without card data, recorded as an event
// when an event log is configured (service/event_stream.h: a query, then an
// append to the merchant's log), and only then acknowledged with HTTP 200
// {"ret_code":"000000","ret_msg":"Success"}; when recording fails, 503, so
// PayKKa delivers it again (the append is idempotent).

#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "adapters/paykka/paykka_client.h"
#include "adapters/paykka/webhook_input.h"
#include "cache/nonce_store.h"
#include "common/event_loop.h"
#include "common/http_server.h"
#include "service/event_stream.h"
#include "service/merchant_directory.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus

namespace payorch::service {

struct WebhookOptions {
  // Accept unsigned notifications for merchants without PayKKa's public key
  // (local sandbox only).
  bool allow_unsigned = false;
  // Nonces seen across replicas; null: an in-process store.
  cache::NonceStore* nonces = nullptr;
  absl::Duration window = absl::Minutes(5);
  // Records a verified notification as an event before the acknowledgement
  // (null: acknowledged at once). Must outlive the handler.
  EventRecorder* events = nullptr;
};

class WebhookHandler {
 public:
  using Merchants = MerchantRegistry;

  // `merchants` is looked up per notification (a reload applies to the next
  // one). `registry` may be null (no metrics). `clock` must outlive the
  // handler.
  WebhookHandler(MerchantDirectory merchants, prometheus::Registry* registry,
                 const Clock* clock = &RealClock::Get(),
                 WebhookOptions options = {});

  // Thread-safe. Answers: 200 + ack for a verified (or duplicate)
  // notification; 405 for another method; 413 for a body over 64 KiB; 400
  // for a body that is not a bounded notification; 401 206004 for a
  // timestamp outside the window; 401 206003 for a bad or missing
  // signature, an unknown merchant or a replayed nonce; 503 when the nonce
  // store is unreachable or the event could not be recorded.
  void Handle(HttpServerRequest request, HttpResponder respond);

  // How many distinct notifications were accepted (tests).
  int accepted() const;

 private:
  std::shared_ptr<const paykka::MerchantConfig> FindMerchant(
      const std::string& app_id, const std::string& merchant_id) const;
  // The refusal reason, or "" when the signature and timestamp verify.
  const char* Authenticate(const HttpServerRequest& request,
                           const paykka::MerchantConfig* merchant) const;
  void Accept(const paykka::NotificationFields& n, HttpResponder respond);
  void Acknowledge(const paykka::NotificationFields& n, HttpResponder respond);
  void Refuse(const char* reason, HttpResponder respond);
  // True the first time (order_id, notify_type, status) is seen.
  bool FirstTime(const std::string& key);

  const MerchantDirectory merchants_;
  const Clock* clock_;
  WebhookOptions options_;
  std::unique_ptr<cache::NonceStore> own_nonces_;
  prometheus::Family<prometheus::Counter>* counter_ = nullptr;
  prometheus::Family<prometheus::Counter>* rejected_ = nullptr;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> seen_order_ ABSL_GUARDED_BY(mu_);
  int accepted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_WEBHOOKS_H_
