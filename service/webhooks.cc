#include "service/webhooks.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/notification.h"
#include "nlohmann/json.hpp"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"

namespace payorch::service {
namespace {

constexpr size_t kMaxRemembered = 100000;

// Refusal reasons: the closed set of payorch_webhooks_rejected_total labels.
constexpr const char* kMethod = "method";
constexpr const char* kTooLarge = "too_large";
constexpr const char* kMalformed = "malformed";
constexpr const char* kUnauthenticated = "unauthenticated";
constexpr const char* kExpired = "expired";
constexpr const char* kReplayed = "replayed";
constexpr const char* kStoreUnavailable = "nonce_store_unavailable";
constexpr const char* kNotRecorded = "event_not_recorded";

// One answer per reason; unauthenticated and replayed answer alike, and an
// unknown merchant is unauthenticated.
HttpServerResponse RefusalAnswer(absl::string_view reason) {
  using paykka::NotificationVerdict;
  NotificationVerdict verdict = NotificationVerdict::kUnauthenticated;
  if (reason == kMethod) verdict = NotificationVerdict::kNotPost;
  if (reason == kTooLarge) verdict = NotificationVerdict::kTooLarge;
  if (reason == kMalformed) verdict = NotificationVerdict::kMalformed;
  if (reason == kExpired) verdict = NotificationVerdict::kExpired;
  if (reason == kStoreUnavailable || reason == kNotRecorded) {
    verdict = NotificationVerdict::kTryLater;
  }
  return paykka::NotificationAnswer(verdict);
}

// As a JSON string; invalid UTF-8 is replaced, never thrown on.
std::string Quoted(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false,
                                nlohmann::json::error_handler_t::replace);
}

}  // namespace

WebhookHandler::WebhookHandler(MerchantDirectory merchants,
                               prometheus::Registry* registry,
                               const Clock* clock, WebhookOptions options)
    : merchants_(std::move(merchants)), clock_(clock), options_(options) {
  if (options_.nonces == nullptr) {
    own_nonces_ = std::make_unique<cache::InMemoryNonceStore>(clock);
    options_.nonces = own_nonces_.get();
  }
  if (registry != nullptr) {
    counter_ = &prometheus::BuildCounter()
                    .Name("payorch_webhooks_total")
                    .Help(
                        "Verified PayKKa notifications, by type (closed "
                        "set) and result")
                    .Register(*registry);
    rejected_ = &prometheus::BuildCounter()
                     .Name("payorch_webhooks_rejected_total")
                     .Help("Refused webhook requests, by reason (closed set)")
                     .Register(*registry);
  }
}

std::shared_ptr<const paykka::MerchantConfig> WebhookHandler::FindMerchant(
    const std::string& app_id, const std::string& merchant_id) const {
  auto merchant = merchants_.Find(merchant_id);
  if (merchant != nullptr && (app_id.empty() || merchant->app_id == app_id)) {
    return merchant;
  }
  return nullptr;
}

bool WebhookHandler::FirstTime(const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (!seen_.insert(key).second) return false;
  seen_order_.push_back(key);
  if (seen_order_.size() > kMaxRemembered) {
    seen_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  ++accepted_;
  return true;
}

int WebhookHandler::accepted() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

void WebhookHandler::Refuse(const char* reason, HttpResponder respond) {
  if (rejected_ != nullptr) rejected_->Add({{"reason", reason}}).Increment();
  std::move(respond)(RefusalAnswer(reason));
}

const char* WebhookHandler::Authenticate(
    const HttpServerRequest& request,
    const paykka::MerchantConfig* merchant) const {
  if (merchant == nullptr) return kUnauthenticated;
  if (!merchant->platform_public_key.has_value()) {
    return options_.allow_unsigned ? "" : kUnauthenticated;
  }
  switch (paykka::VerifyNotification(request, *merchant->platform_public_key,
                                     clock_->Now(), options_.window)) {
    case paykka::NotificationVerdict::kAccepted:
      return "";
    case paykka::NotificationVerdict::kExpired:
      return kExpired;
    default:
      return kUnauthenticated;
  }
}

void WebhookHandler::Handle(HttpServerRequest request, HttpResponder respond) {
  if (request.method != "POST") return Refuse(kMethod, std::move(respond));
  if (request.body.size() > paykka::kMaxNotificationBody) {
    return Refuse(kTooLarge, std::move(respond));
  }
  absl::StatusOr<paykka::NotificationFields> n =
      paykka::ReadNotificationFields(request.body);
  if (!n.ok()) return Refuse(kMalformed, std::move(respond));
  std::shared_ptr<const paykka::MerchantConfig> merchant = FindMerchant(
      paykka::NotificationHeader(request, paykka::kNotificationAppIdHeader),
      n->merchant_id);
  if (const char* refused = Authenticate(request, merchant.get());
      *refused != 0) {
    return Refuse(refused, std::move(respond));
  }
  std::string nonce =
      paykka::NotificationHeader(request, paykka::kNotificationNonceHeader);
  if (nonce.empty()) return Accept(*n, std::move(respond));  // unsigned
  options_.nonces->Claim(
      n->merchant_id, nonce, 2 * options_.window,
      [this, n = *std::move(n),
       respond = std::move(respond)](absl::StatusOr<bool> first) mutable {
        if (!first.ok()) return Refuse(kStoreUnavailable, std::move(respond));
        if (!*first) return Refuse(kReplayed, std::move(respond));
        Accept(n, std::move(respond));
      });
}

void WebhookHandler::Accept(const paykka::NotificationFields& n,
                            HttpResponder respond) {
  if (options_.events == nullptr) return Acknowledge(n, std::move(respond));
  options_.events->Record(
      n, [this, n, respond = std::move(respond)](absl::Status s) mutable {
        if (s.ok()) return Acknowledge(n, std::move(respond));
        std::fprintf(stderr,
                     "{\"event\":\"paykka_webhook_not_recorded\","
                     "\"merchant_id\":%s,\"order_id\":%s,\"error\":%s}\n",
                     Quoted(n.merchant_id).c_str(), Quoted(n.order_id).c_str(),
                     Quoted(std::string(s.message())).c_str());
        Refuse(kNotRecorded, std::move(respond));
      });
}

void WebhookHandler::Acknowledge(const paykka::NotificationFields& n,
                                 HttpResponder respond) {
  bool first = FirstTime(absl::StrCat(n.merchant_id, "|", n.order_id, "|",
                                      n.notify_type, "|", n.status));
  if (counter_ != nullptr) {
    counter_
        ->Add({{"notify_type",
                std::string(paykka::NotifyTypeLabel(n.notify_type))},
               {"result", first ? "accepted" : "duplicate"}})
        .Increment();
  }
  // One line, no card data, no body.
  std::fprintf(
      stderr,
      "{\"event\":\"paykka_webhook\",\"merchant_id\":%s,\"notify_type\":%s,"
      "\"order_id\":%s,\"trans_id\":%s,\"status\":%s,\"duplicate\":%s}\n",
      Quoted(n.merchant_id).c_str(), Quoted(n.notify_type).c_str(),
      Quoted(n.order_id).c_str(), Quoted(n.trans_id).c_str(),
      Quoted(n.status).c_str(), first ? "false" : "true");
  std::move(respond)(
      paykka::NotificationAnswer(paykka::NotificationVerdict::kAccepted));
}

}  // namespace payorch::service
