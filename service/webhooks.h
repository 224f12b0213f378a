#ifndef PAYORCH_SERVICE_WEBHOOKS_H_
#define PAYORCH_SERVICE_WEBHOOKS_H_

// PayKKa's payment notifications (POST /webhooks/paykka on payorchd's side
// HTTP port). payorch treats a notification as a hint, never as the truth:
// callers learn an order's state from GetOrder (PayKKa Query Transaction).
// The handler verifies the signature (when the merchant has PayKKa's public
// key configured), checks the timestamp window, drops duplicates, counts the
// event in metrics, logs it without card data, and acknowledges with HTTP 200
// {"ret_code":"000000","ret_msg":"Success"} so that PayKKa stops retrying.

#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "adapters/paykka/paykka_client.h"
#include "common/event_loop.h"
#include "common/http_server.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus

namespace payorch::service {

class WebhookHandler {
 public:
  using Merchants =
      absl::flat_hash_map<std::string,
                          std::shared_ptr<const paykka::MerchantConfig>>;

  // `registry` may be null (no metrics). `clock` must outlive the handler.
  WebhookHandler(Merchants merchants, prometheus::Registry* registry,
                 const Clock* clock = &RealClock::Get());

  // Thread-safe. Answers: 200 + ack for a valid (or duplicate) notification;
  // 400 for a body that is not a notification; 401 when the signature or
  // timestamp does not verify; 404 for an unknown merchant.
  void Handle(HttpServerRequest request, HttpResponder respond);

  // How many distinct notifications were accepted (tests).
  int accepted() const;

 private:
  const paykka::MerchantConfig* FindMerchant(
      const std::string& app_id, const std::string& merchant_id) const;
  // True the first time (order_id, notify_type, status) is seen.
  bool FirstTime(const std::string& key);

  Merchants merchants_;
  const Clock* clock_;
  prometheus::Family<prometheus::Counter>* counter_ = nullptr;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> seen_order_ ABSL_GUARDED_BY(mu_);
  int accepted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_WEBHOOKS_H_
