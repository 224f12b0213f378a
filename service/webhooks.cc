#include "service/webhooks.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
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

HttpServerResponse Answer(int status, absl::string_view ret_code,
                          absl::string_view ret_msg) {
  nlohmann::json body = {{"ret_code", std::string(ret_code)},
                         {"ret_msg", std::string(ret_msg)}};
  return HttpServerResponse{status, "application/json", body.dump(), {}};
}

// One answer per reason; unauthenticated and replayed answer alike, and an
// unknown merchant is unauthenticated.
HttpServerResponse RefusalAnswer(absl::string_view reason) {
  if (reason == kMethod) return Answer(405, "010000", "POST only");
  if (reason == kTooLarge) return Answer(413, "010000", "body too large");
  if (reason == kMalformed) {
    return Answer(400, "010000", "body is not a notification");
  }
  if (reason == kExpired) return Answer(401, "206004", "signature expired");
  if (reason == kStoreUnavailable) {
    return Answer(503, "010000", "try again later");
  }
  return Answer(401, "206003", "signature error");
}

// As a JSON string; invalid UTF-8 is replaced, never thrown on.
std::string Quoted(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false,
                                nlohmann::json::error_handler_t::replace);
}

std::string Header(const HttpServerRequest& r, const char* name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

}  // namespace

WebhookHandler::WebhookHandler(Merchants merchants,
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

const paykka::MerchantConfig* WebhookHandler::FindMerchant(
    const std::string& app_id, const std::string& merchant_id) const {
  if (auto it = merchants_.find(merchant_id); it != merchants_.end()) {
    if (app_id.empty() || it->second->app_id == app_id) return it->second.get();
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
  std::string ts = Header(request, "x-paykka-timestamp");
  std::string nonce = Header(request, paykka::kNotificationNonceHeader);
  if (nonce.empty() || nonce.size() > paykka::kMaxNotificationField) {
    return kUnauthenticated;
  }
  int64_t ms = 0;
  if (!absl::SimpleAtoi(ts, &ms) ||
      absl::AbsDuration(clock_->Now() - absl::FromUnixMillis(ms)) >
          options_.window) {
    return kExpired;
  }
  absl::Status verified = VerifyPaykkaSignatureHeader(
      *merchant->platform_public_key,
      PaykkaResponseStringToSign(ts, nonce, request.body),
      Header(request, "x-paykka-sign"));
  return verified.ok() ? "" : kUnauthenticated;
}

void WebhookHandler::Handle(HttpServerRequest request, HttpResponder respond) {
  if (request.method != "POST") return Refuse(kMethod, std::move(respond));
  if (request.body.size() > paykka::kMaxNotificationBody) {
    return Refuse(kTooLarge, std::move(respond));
  }
  absl::StatusOr<paykka::NotificationFields> n =
      paykka::ReadNotificationFields(request.body);
  if (!n.ok()) return Refuse(kMalformed, std::move(respond));
  const paykka::MerchantConfig* merchant = FindMerchant(
      Header(request, paykka::kNotificationAppIdHeader), n->merchant_id);
  if (const char* refused = Authenticate(request, merchant); *refused != 0) {
    return Refuse(refused, std::move(respond));
  }
  std::string nonce = Header(request, paykka::kNotificationNonceHeader);
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
  std::move(respond)(Answer(200, "000000", "Success"));
}

}  // namespace payorch::service
