#include "service/fingerprint.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "adapters/paykka/mapping.h"
#include "common/crypto.h"

namespace payorch::service {
namespace {

std::string Hash(absl::string_view family, absl::string_view merchant_id,
                 absl::string_view body) {
  return absl::StrCat(family, ":",
                      Sha256Hex(absl::StrCat(family, "\n", merchant_id.size(),
                                             ":", merchant_id, "\n", body)));
}

}  // namespace

std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::CreateCheckoutRequest& request) {
  return Hash(kCheckoutFamily, request.merchant_id(),
              paykka::CreateSessionBody(merchant.merchant_id, request));
}

std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::ChargeRecurringRequest& request) {
  return Hash(kChargeFamily, request.merchant_id(),
              paykka::InitiateRecurringBody(merchant.merchant_id, request));
}

std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::RefundRequest& request) {
  return Hash(kRefundFamily, request.merchant_id(),
              paykka::RefundBody(merchant.merchant_id, request));
}

std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::CaptureRequest& request) {
  return Hash(kCaptureFamily, request.merchant_id(),
              paykka::CaptureBody(merchant.merchant_id, request));
}

std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::VoidRequest& request) {
  return Hash(kVoidFamily, request.merchant_id(),
              paykka::VoidBody(merchant.merchant_id, request));
}

std::string Fingerprint(const paykka::MerchantConfig& merchant,
                        const v1::CancelRecurringRequest& request) {
  return Hash(kCancelRecurringFamily, request.merchant_id(),
              paykka::CancelRecurringBody(merchant.merchant_id, request));
}

}  // namespace payorch::service
