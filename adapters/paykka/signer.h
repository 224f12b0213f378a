#ifndef PAYORCH_ADAPTERS_PAYKKA_SIGNER_H_
#define PAYORCH_ADAPTERS_PAYKKA_SIGNER_H_

// PayKKa v3 request signing and response verification (docs/paykka.md 2),
// for one merchant, with signing.h's recipe.
// Both run RSA: call them on the WorkerPool, never on the event loop thread.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/paykka/http_transport.h"
#include "adapters/paykka/paykka_client.h"
#include "adapters/paykka/signing.h"

namespace payorch::paykka {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// The five x-paykka-* headers for `POST path` with exactly `body`:
// x-paykka-appid, x-paykka-timestamp (ms since epoch of `now`),
// x-paykka-nonce (RandomHex(16), fresh per call), x-paykka-sign-alg and
// x-paykka-sign over PaykkaRequestStringToSign("POST", path, ts, nonce,
// body). kInternal if signing fails (the message never holds key material).
absl::StatusOr<HttpHeaders> SignPaykkaRequest(const MerchantConfig& merchant,
                                              absl::string_view path,
                                              absl::string_view body,
                                              absl::Time now);

// The whole signed request: POST merchant.base_url + path with `body`, the
// SignPaykkaRequest() headers, content-type and accept application/json.
absl::StatusOr<HttpRequest> SignedPaykkaRequest(const MerchantConfig& merchant,
                                                absl::string_view path,
                                                std::string body,
                                                absl::Time now,
                                                bool at_most_once);

// OK when the merchant does not verify response signatures, or when the
// response's x-paykka-timestamp / x-paykka-nonce / x-paykka-sign verify with
// the platform public key over PaykkaResponseStringToSign(ts, nonce, body).
// kUnauthenticated when a header is missing or the signature is wrong;
// kFailedPrecondition when verification is on but no platform key is set.
absl::Status VerifyPaykkaResponse(const MerchantConfig& merchant,
                                  const HttpResponse& response);

// The check itself: `response`'s x-paykka-timestamp / x-paykka-nonce /
// x-paykka-sign against `platform_key` under `recipe`. kUnauthenticated when
// a header is missing or the signature is wrong.
absl::Status VerifyResponseSignature(const RsaPublicKey& platform_key,
                                     ResponseSignRecipe recipe,
                                     const HttpResponse& response);

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_SIGNER_H_
