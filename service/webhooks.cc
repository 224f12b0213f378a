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
constexpr absl::Duration kTimestampWindow = absl::Minutes(5);

HttpServerResponse Answer(int status, absl::string_view ret_code,
                          absl::string_view ret_msg) {
  nlohmann::json body = {{"ret_code", std::string(ret_code)},
                         {"ret_msg", std::string(ret_msg)}};
  return HttpServerResponse{status, "application/json", body.dump(), {}};
}

std::string Field(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string Header(const HttpServerRequest& r, const char* name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

}  // namespace

WebhookHandler::WebhookHandler(Merchants merchants,
                               prometheus::Registry* registry,
                               const Clock* clock)
    : merchants_(std::move(merchants)), clock_(clock) {
  if (registry != nullptr) {
    counter_ = &prometheus::BuildCounter()
                    .Name("payorch_webhooks_total")
                    .Help("PayKKa notifications received, by type and result")
                    .Register(*registry);
  }
}

const paykka::MerchantConfig* WebhookHandler::FindMerchant(
    const std::string& app_id, const std::string& merchant_id) const {
  if (auto it = merchants_.find(merchant_id); it != merchants_.end()) {
    if (app_id.empty() || it->second->app_id == app_id) return it->second.get();
    return nullptr;
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

void WebhookHandler::Handle(HttpServerRequest request, HttpResponder respond) {
  auto count = [this](const std::string& type, const char* result) {
    if (counter_ != nullptr)
      counter_->Add({{"notify_type", type}, {"result", result}}).Increment();
  };
  if (request.method != "POST") {
    count("", "bad_request");
    std::move(respond)(Answer(405, "010000", "POST only"));
    return;
  }
  nlohmann::json body =
      nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    count("", "bad_request");
    std::move(respond)(Answer(400, "010000", "body is not a JSON object"));
    return;
  }
  std::string merchant_id = Field(body, "merchant_id");
  std::string type = Field(body, "notify_type");
  if (type.empty()) type = Field(body, "event_type");
  const paykka::MerchantConfig* merchant =
      FindMerchant(Header(request, "x-paykka-appid"), merchant_id);
  if (merchant == nullptr) {
    count(type, "unknown_merchant");
    std::move(respond)(Answer(404, "206005", "merchant does not exist"));
    return;
  }
  if (merchant->platform_public_key.has_value()) {
    std::string ts = Header(request, "x-paykka-timestamp");
    std::string nonce = Header(request, "x-paykka-nonce");
    int64_t ms = 0;
    if (!absl::SimpleAtoi(ts, &ms) ||
        absl::AbsDuration(clock_->Now() - absl::FromUnixMillis(ms)) >
            kTimestampWindow) {
      count(type, "expired");
      std::move(respond)(Answer(401, "206004", "signature expired"));
      return;
    }
    absl::Status verified = VerifyPaykkaSignatureHeader(
        *merchant->platform_public_key,
        PaykkaResponseStringToSign(ts, nonce, request.body),
        Header(request, "x-paykka-sign"));
    if (!verified.ok()) {
      count(type, "bad_signature");
      std::move(respond)(Answer(401, "206003", "signature error"));
      return;
    }
  }
  std::string order_id = Field(body, "order_id");
  std::string status = Field(body, "status");
  bool first = FirstTime(
      absl::StrCat(merchant_id, "|", order_id, "|", type, "|", status));
  count(type, first ? "accepted" : "duplicate");
  // One line, no card data, no body.
  std::fprintf(
      stderr,
      "{\"event\":\"paykka_webhook\",\"merchant_id\":%s,\"notify_type\":%s,"
      "\"order_id\":%s,\"trans_id\":%s,\"status\":%s,\"duplicate\":%s}\n",
      nlohmann::json(merchant_id).dump().c_str(),
      nlohmann::json(type).dump().c_str(),
      nlohmann::json(order_id).dump().c_str(),
      nlohmann::json(Field(body, "trans_id")).dump().c_str(),
      nlohmann::json(status).dump().c_str(), first ? "false" : "true");
  std::move(respond)(Answer(200, "000000", "Success"));
}

}  // namespace payorch::service
