// libFuzzer target: a PayKKa notification as the public webhook port reads it.
// Input: "<x-paykka-sign value>\n<body>". The body goes through the bounded
// reader (size, depth, string-only fields), the metric-label mapping and the
// signature check against a key generated once.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "adapters/paykka/signing.h"
#include "adapters/paykka/webhook_input.h"
#include "common/crypto.h"

namespace {

const payorch::RsaPublicKey& Key() {
  static const payorch::RsaPublicKey* key = [] {
    auto priv = payorch::RsaPrivateKey::Generate(1024);
    return new payorch::RsaPublicKey(
        *payorch::RsaPublicKey::Parse(priv->PublicKeyPem()));
  }();
  return *key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::string_view header;
  absl::string_view body = input;
  if (size_t nl = input.find('\n'); nl != absl::string_view::npos) {
    header = input.substr(0, nl);
    body = input.substr(nl + 1);
  }
  payorch::paykka::JsonNestingDepth(body,
                                    payorch::paykka::kMaxNotificationDepth);
  auto fields = payorch::paykka::ReadNotificationFields(body);
  if (fields.ok()) {
    payorch::paykka::NotifyTypeLabel(fields->notify_type);
  }
  std::string to_sign =
      payorch::paykka::PaykkaResponseStringToSign("1700000000", "nonce", body);
  (void)payorch::paykka::VerifyPaykkaSignatureHeader(Key(), to_sign, header);
  return 0;
}
