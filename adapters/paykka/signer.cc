#include "adapters/paykka/signer.h"

#include "absl/strings/str_cat.h"
#include "adapters/paykka/signing.h"
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
      {std::string(kAppIdHeader), merchant.app_id},
      {std::string(kTimestampHeader), timestamp},
      {std::string(kNonceHeader), nonce},
      {std::string(kSignAlgHeader), std::string(kSignAlgorithm)},
      {std::string(kSignHeader), *std::move(sign)},
  };
}

absl::StatusOr<HttpRequest> SignedPaykkaRequest(const MerchantConfig& merchant,
                                                absl::string_view path,
                                                std::string body,
                                                absl::Time now,
                                                bool at_most_once) {
  absl::StatusOr<HttpHeaders> headers =
      SignPaykkaRequest(merchant, path, body, now);
  if (!headers.ok()) return headers.status();
  HttpRequest request;
  request.method = "POST";
  request.url = absl::StrCat(merchant.base_url, path);
  request.headers = *std::move(headers);
  request.headers.emplace_back("content-type", "application/json");
  request.headers.emplace_back("accept", "application/json");
  request.body = std::move(body);
  request.at_most_once = at_most_once;
  return request;
}

absl::Status VerifyPaykkaResponse(const MerchantConfig& merchant,
                                  const HttpResponse& response) {
  if (!merchant.verify_response_signatures) return absl::OkStatus();
  if (!merchant.platform_public_key.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "merchant ", merchant.merchant_id,
        " verifies response signatures but has no PayKKa public key"));
  }
  return VerifyResponseSignature(*merchant.platform_public_key,
                                 merchant.response_sign_recipe, response);
}

absl::Status VerifyResponseSignature(const RsaPublicKey& platform_key,
                                     ResponseSignRecipe recipe,
                                     const HttpResponse& response) {
  return VerifySignedBody(
      platform_key,
      {response.Header(kTimestampHeader), response.Header(kNonceHeader),
       response.Header(kSignHeader)},
      response.body, recipe);
}

}  // namespace payorch::paykka
