#ifndef PAYORCH_TESTS_SERVICE_TEST_REQUESTS_H_
#define PAYORCH_TESTS_SERVICE_TEST_REQUESTS_H_

// Valid requests and a test merchant shared by the service tests.

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "adapters/paykka/paykka_client.h"
#include "payorch/v1/payorch.pb.h"
#include "service/payment_service.h"

namespace payorch::testing {

inline constexpr char kMerchantId[] = "M100";
inline constexpr char kClientKey[] = "ck_test_123";

// A merchant with a throwaway key (generated once; the fake never signs).
inline std::shared_ptr<const paykka::MerchantConfig> TestMerchant() {
  static const RsaPrivateKey* key =
      new RsaPrivateKey(RsaPrivateKey::Generate(1024).value());
  auto m = std::make_shared<paykka::MerchantConfig>(
      paykka::MerchantConfig{kMerchantId, "app-1", *key, std::nullopt, false,
                             kClientKey, "http://127.0.0.1:1"});
  return m;
}

// TestMerchant()'s configuration, for Fingerprint().
inline paykka::MerchantConfig FingerprintMerchant() { return *TestMerchant(); }

inline service::MerchantRegistry TestRegistry() {
  service::MerchantRegistry registry;
  registry[kMerchantId] = TestMerchant();
  return registry;
}

// A complete, valid DROP_IN purchase expiring 1 h after `now`.
inline v1::CreateCheckoutRequest ValidCheckout(absl::Time now,
                                               std::string trans_id = "T-1") {
  v1::CreateCheckoutRequest r;
  r.set_merchant_id(kMerchantId);
  r.set_trans_id(std::move(trans_id));
  r.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
  r.set_authorisation_type(v1::AUTHORISATION_TYPE_FINAL_AUTH);
  r.set_capture_method(v1::CAPTURE_METHOD_AUTOMATIC);
  r.set_amount(1999);
  r.set_currency("USD");
  r.mutable_expire_time()->set_seconds(
      absl::ToUnixSeconds(now + absl::Hours(1)));
  r.set_session_mode(v1::SESSION_MODE_DROP_IN);
  r.set_display_locale("en-US");
  r.set_return_url("https://shop.example/return?o=1");
  r.set_notify_url("https://shop.example:8443/paykka/notify");
  r.set_cancel_url("http://shop.example/cancel");
  auto* g = r.add_goods();
  g->set_id("sku-1");
  g->set_name("Coffee");
  g->set_price(1999);
  g->set_quantity(1);
  g->set_link("https://shop.example/p/1");
  g->set_picture_url("https://cdn.shop.example/p/1.png");
  r.mutable_bill()->set_first_name("Ada");
  r.mutable_bill()->set_country("US");
  r.mutable_bill()->set_email("ada@example.com");
  r.mutable_bill()->set_area_code("+1");
  r.mutable_bill()->set_phone_number("5551234567");
  r.mutable_shipping()->set_country("GB");
  r.mutable_customer()->set_id("cust-9");
  r.mutable_customer()->set_email("ada@example.com");
  return r;
}

// A valid first recurring payment.
inline v1::CreateCheckoutRequest ValidRecurringCheckout(absl::Time now) {
  v1::CreateCheckoutRequest r = ValidCheckout(now, "T-REC-1");
  r.set_payment_type(v1::PAYMENT_TYPE_RECURRING);
  r.mutable_payment()->set_store_payment_method(true);
  r.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_SUBSCRIPTION);
  r.mutable_payment()->set_shopper_reference("shopper-42");
  return r;
}

inline v1::ChargeRecurringRequest ValidCharge(std::string trans_id = "C-1") {
  v1::ChargeRecurringRequest r;
  r.set_merchant_id(kMerchantId);
  r.set_trans_id(std::move(trans_id));
  r.set_amount(999);
  r.set_currency("EUR");
  r.set_recurring_agreement_id("RA123456");
  r.mutable_payment()->set_token("TK987654");
  r.mutable_payment()->set_shopper_reference("shopper-42");
  return r;
}

// Captures a PaymentService outcome; `outcome` is empty while pending.
template <typename Response>
struct Capture {
  std::optional<service::Outcome<Response>> outcome;
  service::OutcomeCallback<Response> Callback() {
    return [this](service::Outcome<Response> o) { outcome = std::move(o); };
  }
};

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_SERVICE_TEST_REQUESTS_H_
