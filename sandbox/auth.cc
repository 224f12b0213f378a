#include "sandbox/auth.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "adapters/paykka/signing.h"
#include "common/crypto.h"

namespace payorch::sandbox {

Json PaykkaEnvelope(const char* code, const std::string& msg) {
  return Json{{"ret_code", code}, {"ret_msg", msg}};
}

ApiResponse RequestAuthenticator::Authenticate(const Request& req,
                                               const Merchant** merchant) {
  const char* names[] = {"x-paykka-appid", "x-paykka-timestamp",
                         "x-paykka-nonce", "x-paykka-sign",
                         "x-paykka-sign-alg"};
  std::string values[5];
  for (int i = 0; i < 5; ++i) {
    const std::string* v = req.Header(names[i]);
    if (v == nullptr || v->empty()) {
      return {401, PaykkaEnvelope("206002", absl::StrCat("signature not found: "
                                                         "missing header ",
                                                         names[i]))};
    }
    values[i] = *v;
  }
  const std::string& app_id = values[0];
  const std::string& ts = values[1];
  if (values[4] != "SHA256_WITH_RSA") {
    return {401, PaykkaEnvelope("206003",
                                "signature error: x-paykka-sign-alg must "
                                "be SHA256_WITH_RSA")};
  }
  *merchant = store_->FindMerchantByAppId(app_id);
  if (*merchant == nullptr) {
    return {401, PaykkaEnvelope("206005",
                                "merchant does not exist: unknown "
                                "x-paykka-appid")};
  }
  int64_t ts_ms = 0;
  if (!absl::SimpleAtoi(ts, &ts_ms) ||
      std::llabs(absl::ToUnixMillis(absl::Now()) - ts_ms) > 5 * 60 * 1000) {
    return {401, PaykkaEnvelope("206004",
                                "signature expired: x-paykka-timestamp "
                                "is not within 5 minutes")};
  }
  std::string to_sign = paykka::PaykkaRequestStringToSign(
      "POST", req.target, ts, values[2], req.body);
  const int key = VerifyingKey(**merchant, to_sign, values[3]);
  if (key < 0) return {401, PaykkaEnvelope("206003", "signature error")};
  if (!FreshNonce(app_id, values[2])) {
    return {401, PaykkaEnvelope("206003",
                                "signature error: x-paykka-nonce was "
                                "already used")};
  }
  store_->NoteVerified(**merchant, key);
  return {200, Json()};
}

int RequestAuthenticator::VerifyingKey(const Merchant& merchant,
                                       const std::string& to_sign,
                                       const std::string& sign_header) {
  for (size_t i = 0; i < merchant.keys.size(); ++i) {
    if (merchant.keys[i].retired) continue;
    if (paykka::VerifyPaykkaSignatureHeader(merchant.keys[i].key, to_sign,
                                            sign_header)
            .ok()) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool RequestAuthenticator::FreshNonce(const std::string& app_id,
                                      const std::string& nonce) {
  // Replay protection: nonces are kept 10 minutes (twice the window).
  absl::Time now = absl::Now();
  while (!nonce_order_.empty() &&
         now - nonce_order_.front().first > absl::Minutes(10)) {
    nonces_.erase(nonce_order_.front().second);
    nonce_order_.pop_front();
  }
  std::string key = absl::StrCat(app_id, "\n", nonce);
  if (!nonces_.emplace(key, now).second) return false;
  nonce_order_.emplace_back(now, std::move(key));
  return true;
}

}  // namespace payorch::sandbox
