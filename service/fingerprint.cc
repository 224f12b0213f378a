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

}  // namespace payorch::service
