#ifndef PAYORCH_ADAPTERS_PAYKKA_SIGNING_H_
#define PAYORCH_ADAPTERS_PAYKKA_SIGNING_H_

// PayKKa's v3 signing recipe (docs/paykka.md 2.2-2.3): the header names, the
// strings to sign and the x-paykka-sign encoding, over common/crypto.h's
// generic RSA / Base64 primitives. Its own small library
// (payorch::paykka_signing) so that the sandbox links the very same recipe as
// the adapter.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto.h"

namespace payorch::paykka {

// The signature headers (lower case, as HTTP/2 and our HTTP server see them).
inline constexpr absl::string_view kAppIdHeader = "x-paykka-appid";
inline constexpr absl::string_view kTimestampHeader = "x-paykka-timestamp";
inline constexpr absl::string_view kNonceHeader = "x-paykka-nonce";
inline constexpr absl::string_view kSignAlgHeader = "x-paykka-sign-alg";
inline constexpr absl::string_view kSignHeader = "x-paykka-sign";
// The only x-paykka-sign-alg value.
inline constexpr absl::string_view kSignAlgorithm = "SHA256_WITH_RSA";

// "METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY", no trailing newline; BODY is the
// exact bytes sent.
std::string PaykkaRequestStringToSign(absl::string_view method,
                                      absl::string_view path,
                                      absl::string_view timestamp,
                                      absl::string_view nonce,
                                      absl::string_view body);

// Response (and webhook) recipe chosen by payorch and its sandbox, since
// PayKKa's is unconfirmed (docs/paykka.md 2.6): "TIMESTAMP\nNONCE\nBODY".
std::string PaykkaResponseStringToSign(absl::string_view timestamp,
                                       absl::string_view nonce,
                                       absl::string_view body);

// What PayKKa signs in a response (a per-environment setting):
// "timestamp_nonce_body" signs PaykkaResponseStringToSign (the default);
// "body" signs the body alone.
enum class ResponseSignRecipe { kTimestampNonceBody, kBody };

// The string PayKKa signs in a response under `recipe`.
std::string ResponseStringToSign(ResponseSignRecipe recipe,
                                 absl::string_view timestamp,
                                 absl::string_view nonce,
                                 absl::string_view body);

// The x-paykka-sign header value: PercentEncode(Base64(SignSha256(s))).
absl::StatusOr<std::string> PaykkaSignatureHeader(const RsaPrivateKey& key,
                                                  absl::string_view s);

// Verifies an x-paykka-sign header value over `s`. Accepts the URL-encoded
// form and raw Base64. kUnauthenticated when it does not verify,
// kInvalidArgument when the header is not Base64 at all.
absl::Status VerifyPaykkaSignatureHeader(const RsaPublicKey& key,
                                         absl::string_view s,
                                         absl::string_view header_value);

// The signature headers of a signed PayKKa answer or notification.
struct SignatureHeaders {
  std::string timestamp;  // x-paykka-timestamp
  std::string nonce;      // x-paykka-nonce
  std::string sign;       // x-paykka-sign
};

// Verifies a PayKKa answer or notification: `headers` over
// ResponseStringToSign(recipe, timestamp, nonce, body) with PayKKa's `key`.
// All three headers are required whatever the recipe. kUnauthenticated when
// a header is missing or the signature is wrong.
absl::Status VerifySignedBody(
    const RsaPublicKey& key, const SignatureHeaders& headers,
    absl::string_view body,
    ResponseSignRecipe recipe = ResponseSignRecipe::kTimestampNonceBody);

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_SIGNING_H_
