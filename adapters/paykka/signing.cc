#include "adapters/paykka/signing.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace payorch::paykka {

std::string PaykkaRequestStringToSign(absl::string_view method,
                                      absl::string_view path,
                                      absl::string_view timestamp,
                                      absl::string_view nonce,
                                      absl::string_view body) {
  return absl::StrCat(method, "\n", path, "\n", timestamp, "\n", nonce, "\n",
                      body);
}

std::string PaykkaResponseStringToSign(absl::string_view timestamp,
                                       absl::string_view nonce,
                                       absl::string_view body) {
  return absl::StrCat(timestamp, "\n", nonce, "\n", body);
}

std::string ResponseStringToSign(ResponseSignRecipe recipe,
                                 absl::string_view timestamp,
                                 absl::string_view nonce,
                                 absl::string_view body) {
  if (recipe == ResponseSignRecipe::kBody) return std::string(body);
  return PaykkaResponseStringToSign(timestamp, nonce, body);
}

absl::StatusOr<std::string> PaykkaSignatureHeader(const RsaPrivateKey& key,
                                                  absl::string_view s) {
  absl::StatusOr<std::string> sig = key.SignSha256(s);
  if (!sig.ok()) return sig.status();
  return PercentEncode(Base64Encode(*sig));
}

absl::Status VerifyPaykkaSignatureHeader(const RsaPublicKey& key,
                                         absl::string_view s,
                                         absl::string_view header_value) {
  std::string b64(header_value);
  if (absl::StrContains(header_value, "%")) {
    absl::StatusOr<std::string> decoded = PercentDecode(header_value);
    if (!decoded.ok()) return decoded.status();
    b64 = *std::move(decoded);
  }
  absl::StatusOr<std::string> sig = Base64Decode(b64);
  if (!sig.ok()) return sig.status();
  if (sig->empty()) return absl::InvalidArgumentError("empty signature");
  return key.VerifySha256(s, *sig);
}

absl::Status VerifySignedBody(const RsaPublicKey& key,
                              const SignatureHeaders& headers,
                              absl::string_view body,
                              ResponseSignRecipe recipe) {
  if (headers.timestamp.empty() || headers.nonce.empty() ||
      headers.sign.empty()) {
    return absl::UnauthenticatedError("signature headers missing");
  }
  absl::Status status = VerifyPaykkaSignatureHeader(
      key, ResponseStringToSign(recipe, headers.timestamp, headers.nonce, body),
      headers.sign);
  if (!status.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("signature invalid: ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace payorch::paykka
