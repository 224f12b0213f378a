// libFuzzer target: a PayKKa answer (status + body) through classification
// (adapters/paykka/response_mapping.h) and, when it is an OK envelope, the
// mapping of its data onto payorch.v1 (adapters/paykka/mapping.h).
// Input: one byte selects the HTTP status class, the rest is the body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "adapters/paykka/mapping.h"
#include "adapters/paykka/response_mapping.h"
#include "common/crypto.h"

namespace {

const payorch::paykka::MerchantConfig& Merchant() {
  static const payorch::paykka::MerchantConfig* merchant = [] {
    auto key = payorch::RsaPrivateKey::Generate(1024);
    auto* m = new payorch::paykka::MerchantConfig{
        "M1",
        "A1",
        *key,
        std::nullopt,
        false,
        "ck_test",
        "https://openapi-sandbox.paykka.com"};
    return m;
  }();
  return *merchant;
}

constexpr int kStatuses[] = {200, 200, 200, 200, 400, 401, 404,
                             409, 429, 500, 502, 503, 504, 302};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace payorch::paykka;
  HttpResponse response;
  response.status = kStatuses[data[0] % (sizeof(kStatuses) / sizeof(int))];
  response.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 0x80) response.headers["retry-after"] = "2";
  const CallKind kind =
      (data[0] & 0x40) ? CallKind::kQuery : CallKind::kMutating;
  absl::StatusOr<HttpResponse> result(std::move(response));
  auto envelope = ClassifyResponse(kind, result, absl::OkStatus());
  if (!envelope.ok()) return 0;
  nlohmann::json effective = EffectiveData(envelope->body);
  payorch::v1::CreateCheckoutRequest request;
  request.set_merchant_id("M1");
  request.set_trans_id("T1");
  (void)ParseCreateSessionData(effective, Merchant(), request);
  (void)ParseSessionData(effective);
  (void)ParseOrderData(effective);
  if (effective.is_object()) {
    auto it = effective.find("status");
    if (it != effective.end() && it->is_string()) {
      const std::string& s = it->get_ref<const std::string&>();
      SessionStatusFromPaykka(s);
      OrderStatusFromPaykka(s);
      (void)ParsePaykkaTime(s);
    }
  }
  return 0;
}
