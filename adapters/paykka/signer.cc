#include "adapters/paykka/signer.h"

#include "absl/strings/str_cat.h"
#include "common/crypto.h"

namespace payorch::paykka {

absl::StatusOr<HttpHeaders> SignPaykkaRequest(const MerchantConfig& merchant,
                                              absl::string_view path,
                                              absl::string_view body,
                                              absl::Time now) {
  const std::string timestamp = absl::StrCat(absl::ToUnixMillis(now));
  const std::string nonce = RandomHex(16);
  absl::StatusOr<std::string> sign = PaykkaSignatureHeader(
      merchant.private_key,
      PaykkaRequestStringToSign("POST", path, timestamp, nonce, body));
  if (!sign.ok()) {
    return absl::InternalError(absl::StrCat(
        "signing the PayKKa request for merchant ", merchant.merchant_id,
        " failed: ", sign.status().message()));
  }
  return HttpHeaders{
      {"x-paykka-appid", merchant.app_id},
      {"x-paykka-timestamp", timestamp},
      {"x-paykka-nonce", nonce},
      {"x-paykka-sign-alg", std::string(kSignAlgorithm)},
      {"x-paykka-sign", *std::move(sign)},
  };
}

absl::Status VerifyPaykkaResponse(const MerchantConfig& merchant,
                                  const HttpResponse& response) {
  if (!merchant.verify_response_signatures) return absl::OkStatus();
  if (!merchant.platform_public_key.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "merchant ", merchant.merchant_id,
        " verifies response signatures but has no PayKKa public key"));
  }
  const std::string timestamp = response.Header("x-paykka-timestamp");
  const std::string nonce = response.Header("x-paykka-nonce");
  const std::string sign = response.Header("x-paykka-sign");
  if (timestamp.empty() || nonce.empty() || sign.empty()) {
    return absl::UnauthenticatedError("response signature headers missing");
  }
  absl::Status status = VerifyPaykkaSignatureHeader(
      *merchant.platform_public_key,
      merchant.response_sign_recipe == ResponseSignRecipe::kBody
          ? response.body
          : PaykkaResponseStringToSign(timestamp, nonce, response.body),
      sign);
  if (!status.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("response signature invalid: ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace payorch::paykka
