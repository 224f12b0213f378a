#ifndef PAYORCH_SANDBOX_AUTH_H_
#define PAYORCH_SANDBOX_AUTH_H_

// PayKKa request authentication (README "Authentication"): the five
// x-paykka-* headers, the app id, the timestamp window, the merchant's
// SHA256withRSA signature and nonce replay. Not thread-safe (loop thread).

#include <deque>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/time/time.h"
#include "sandbox/http_frontend.h"
#include "sandbox/store.h"

namespace payorch::sandbox {

// {"ret_code": code, "ret_msg": msg}.
Json PaykkaEnvelope(const char* code, const std::string& msg);

class RequestAuthenticator {
 public:
  explicit RequestAuthenticator(Store* store) : store_(store) {}
  // HTTP 200 with `*merchant` set, or the error to answer. The checks run in
  // the README's order; a nonce is only remembered once the signature is
  // valid.
  ApiResponse Authenticate(const Request& req, const Merchant** merchant);

 private:
  // The index of the merchant's first unretired key that verifies the
  // signature header, or -1.
  static int VerifyingKey(const Merchant& merchant, const std::string& to_sign,
                          const std::string& sign_header);
  // Whether the nonce is new for the app id (it is remembered for 10 min).
  bool FreshNonce(const std::string& app_id, const std::string& nonce);

  Store* store_;
  // Nonces seen per app id, with when they were first seen (real time).
  std::unordered_map<std::string, absl::Time> nonces_;
  std::deque<std::pair<absl::Time, std::string>> nonce_order_;
};

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_AUTH_H_
