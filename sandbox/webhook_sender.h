#ifndef PAYORCH_SANDBOX_WEBHOOK_SENDER_H_
#define PAYORCH_SANDBOX_WEBHOOK_SENDER_H_

// Webhook delivery (README "Webhooks"): POSTs each notification signed with
// the platform key, retries with doubling delays until acknowledged (HTTP
// 200 and ret_code "000000") or out of attempts, and keeps a record of each
// delivery for GET /sandbox/webhooks. Loop thread only.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/event_loop.h"
#include "sandbox/store.h"

struct evhttp_request;

namespace payorch::sandbox {

class WebhookSender {
 public:
  WebhookSender(EventLoop* loop, RsaPrivateKey platform_key,
                absl::Duration retry_initial, int max_attempts)
      : loop_(loop),
        platform_key_(std::move(platform_key)),
        retry_initial_(retry_initial),
        max_attempts_(max_attempts) {}

  void Send(std::vector<WebhookEvent> events);
  // [{id,url,notify_type,order_id,attempts,last_http_status,last_error,
  //   delivered}]
  Json List() const;
  // Delivers delivery `id` once more, freshly signed, as PayKKa does when
  // it did not see an acknowledgement (e.g. it was lost). False: unknown.
  bool Redeliver(int64_t id);
  void Clear() { deliveries_.clear(); }
  // No more attempts; answers still in flight are ignored.
  void Shutdown() { shutting_down_ = true; }

 private:
  struct Delivery {
    int64_t id = 0;
    std::string url, notify_type, order_id, app_id, body;
    int attempts = 0;
    int last_http_status = 0;
    bool delivered = false;
    std::string last_error;
  };
  static void OnDone(evhttp_request* req, void* arg);
  void Attempt(int64_t id);
  void Finished(int64_t id, int status, const std::string& body);

  EventLoop* loop_;
  RsaPrivateKey platform_key_;
  absl::Duration retry_initial_;
  int max_attempts_;
  bool shutting_down_ = false;
  int64_t next_id_ = 1;
  std::map<int64_t, Delivery> deliveries_;
};

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_WEBHOOK_SENDER_H_
