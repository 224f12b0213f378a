#include "service/validation.h"

#include <string>
#include <vector>

#include "common/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/service/test_requests.h"

namespace payorch::service {
namespace {

using ::payorch::testing::ValidCharge;
using ::payorch::testing::ValidCheckout;
using ::payorch::testing::ValidRecurringCheckout;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

const absl::Time kNow = absl::FromUnixSeconds(1767225600);

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> out;
  for (const auto& v : FieldViolationsOf(status)) out.push_back(v.field);
  return out;
}

std::vector<std::string> CheckoutFields(const v1::CreateCheckoutRequest& r) {
  absl::Status s = ValidateCreateCheckout(r, kNow);
  if (!s.ok()) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(HasReason(s, Reason::kInvalidField));
  }
  return Fields(s);
}

std::vector<std::string> ChargeFields(const v1::ChargeRecurringRequest& r) {
  absl::Status s = ValidateChargeRecurring(r);
  if (!s.ok()) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  }
  return Fields(s);
}

TEST(ValidationTest, ValidFullCheckoutPasses) {
  EXPECT_TRUE(ValidateCreateCheckout(ValidCheckout(kNow), kNow).ok());
  EXPECT_TRUE(ValidateCreateCheckout(ValidRecurringCheckout(kNow), kNow).ok());
  v1::CreateCheckoutRequest minimal;
  minimal.set_merchant_id("M1");
  minimal.set_trans_id("a");
  minimal.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
  minimal.set_amount(1);
  minimal.set_currency("JPY");
  minimal.set_session_mode(v1::SESSION_MODE_HOSTED);
  minimal.set_return_url("https://x.example");
  EXPECT_TRUE(ValidateCreateCheckout(minimal, kNow).ok());
}

TEST(ValidationTest, ValidChargePasses) {
  EXPECT_TRUE(ValidateChargeRecurring(ValidCharge()).ok());
  v1::ChargeRecurringRequest r = ValidCharge();
  r.set_mit(true);
  r.set_payment_type(v1::PAYMENT_TYPE_RECURRING);
  r.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_SUBSCRIPTION);
  EXPECT_TRUE(ValidateChargeRecurring(r).ok());
}

TEST(ValidationTest, EmptyCheckoutListsEveryRequiredField) {
  v1::CreateCheckoutRequest r;
  absl::Status s = ValidateCreateCheckout(r, kNow);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Fields(s),
              ElementsAre("merchant_id", "trans_id", "payment_type", "amount",
                          "currency", "session_mode", "return_url"));
}

TEST(ValidationTest, SeveralViolationsAreAllReportedWithPaths) {
  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  r.set_currency("usd");
  r.mutable_goods(0)->set_price(-1);
  r.add_goods()->set_name("b");  // quantity 0
  auto* g = r.add_goods();
  g->set_quantity(1);  // name missing
  g->set_price(-5);
  r.mutable_bill()->set_email("nobody");
  r.set_payment_type(v1::PAYMENT_TYPE_RECURRING);  // store/usage/shopper
  EXPECT_THAT(
      CheckoutFields(r),
      UnorderedElementsAreArray(std::vector<std::string>{
          "currency", "payment.store_payment_method", "payment.token_usage",
          "payment.shopper_reference", "goods[0].price", "goods[1].quantity",
          "goods[2].name", "goods[2].price", "bill.email"}));
}

TEST(ValidationTest, MerchantIdAndTransIdShape) {
  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  r.set_merchant_id(std::string(33, 'm'));
  r.set_trans_id("has space");
  EXPECT_THAT(CheckoutFields(r), ElementsAre("merchant_id", "trans_id"));
  r.set_merchant_id("m/1");
  r.set_trans_id(std::string(65, 't'));
  EXPECT_THAT(CheckoutFields(r), ElementsAre("merchant_id", "trans_id"));
  r.set_merchant_id(std::string(32, 'm'));
  r.set_trans_id(std::string(64, 't'));
  EXPECT_THAT(CheckoutFields(r), IsEmpty());
  r.set_trans_id("Ab9._:-");
  EXPECT_THAT(CheckoutFields(r), IsEmpty());
}

TEST(ValidationTest, AmountBounds) {
  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  r.set_amount(0);
  EXPECT_THAT(CheckoutFields(r), ElementsAre("amount"));
  r.set_amount(-100);
  EXPECT_THAT(CheckoutFields(r), ElementsAre("amount"));
  r.set_amount(kMaxAmountMinor + 1);
  EXPECT_THAT(CheckoutFields(r), ElementsAre("amount"));
  r.set_amount(kMaxAmountMinor);
  EXPECT_THAT(CheckoutFields(r), IsEmpty());
}

TEST(ValidationTest, CurrencyMustBeActiveIso4217) {
  EXPECT_TRUE(IsActiveCurrency("USD"));
  EXPECT_TRUE(IsActiveCurrency("JPY"));
  EXPECT_TRUE(IsActiveCurrency("EUR"));
  EXPECT_TRUE(IsActiveCurrency("AED"));
  EXPECT_TRUE(IsActiveCurrency("ZWG"));
  EXPECT_FALSE(IsActiveCurrency("usd"));
  EXPECT_FALSE(IsActiveCurrency("ABC"));  // well-formed, not a currency
  EXPECT_FALSE(IsActiveCurrency("XXX"));  // no currency
  EXPECT_FALSE(IsActiveCurrency("XAU"));  // gold
  EXPECT_FALSE(IsActiveCurrency("HRK"));  // retired 2023
  EXPECT_FALSE(IsActiveCurrency("US"));
  v1::ChargeRecurringRequest c = ValidCharge();
  c.set_currency("ABC");
  EXPECT_THAT(ChargeFields(c), ElementsAre("currency"));
}

TEST(ValidationTest, ExpireTimeInTheFutureAndAtMost24Hours) {
  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  r.mutable_expire_time()->set_seconds(absl::ToUnixSeconds(kNow));
  EXPECT_THAT(CheckoutFields(r), ElementsAre("expire_time"));
  r.mutable_expire_time()->set_seconds(
      absl::ToUnixSeconds(kNow + absl::Hours(24) + absl::Seconds(1)));
  EXPECT_THAT(CheckoutFields(r), ElementsAre("expire_time"));
  r.mutable_expire_time()->set_seconds(
      absl::ToUnixSeconds(kNow + absl::Hours(24)));
  EXPECT_THAT(CheckoutFields(r), IsEmpty());
  r.mutable_expire_time()->set_nanos(-1);  // not a valid Timestamp
  EXPECT_THAT(CheckoutFields(r), ElementsAre("expire_time"));
  r.clear_expire_time();
  EXPECT_THAT(CheckoutFields(r), IsEmpty());
}

TEST(ValidationTest, UrlsAreAbsoluteHttp) {
  EXPECT_TRUE(IsHttpUrl("https://a.example"));
  EXPECT_TRUE(IsHttpUrl("HTTP://a.example:8080/x?y=1#z"));
  EXPECT_TRUE(IsHttpUrl("http://127.0.0.1:9/cb"));
  EXPECT_TRUE(IsHttpUrl("https://[::1]:8443/cb"));
  EXPECT_FALSE(IsHttpUrl("ftp://a.example"));
  EXPECT_FALSE(IsHttpUrl("/relative/path"));
  EXPECT_FALSE(IsHttpUrl("https://"));
  EXPECT_FALSE(IsHttpUrl("https://a .example"));
  EXPECT_FALSE(IsHttpUrl("https://a.example/\x01"));
  EXPECT_FALSE(IsHttpUrl("https://a.example:99999/"));
  EXPECT_FALSE(IsHttpUrl("https://user:pw@a.example/"));
  EXPECT_FALSE(IsHttpUrl("https://a.example/" + std::string(2048, 'x')));

  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  r.set_return_url("");
  r.set_notify_url("javascript:alert(1)");
  r.set_cancel_url("https:// bad");
  r.mutable_goods(0)->set_link("shop.example/p/1");
  r.mutable_goods(0)->set_picture_url("data:image/png;base64,xx");
  EXPECT_THAT(CheckoutFields(r),
              ElementsAre("return_url", "notify_url", "goods[0].link",
                          "goods[0].picture_url", "cancel_url"));
}

TEST(ValidationTest, EnumsRequiredAndKnown) {
  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  r.set_payment_type(v1::PAYMENT_TYPE_UNSPECIFIED);
  r.set_session_mode(static_cast<v1::SessionMode>(42));
  r.set_authorisation_type(static_cast<v1::AuthorisationType>(7));
  r.set_capture_method(static_cast<v1::CaptureMethod>(9));
  r.mutable_payment()->set_token_usage(static_cast<v1::TokenUsage>(5));
  EXPECT_THAT(
      CheckoutFields(r),
      ElementsAre("payment_type", "authorisation_type", "capture_method",
                  "session_mode", "payment.token_usage"));
}

TEST(ValidationTest, DisplayLocaleIsBcp47ish) {
  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  for (const char* ok : {"en", "en-US", "zh-CN", "zh-Hant-TW", "pt_BR"}) {
    r.set_display_locale(ok);
    EXPECT_THAT(CheckoutFields(r), IsEmpty()) << ok;
  }
  for (const char* bad : {"e", "en-", "1en", "en US", "en-US-abcdefghijk"}) {
    r.set_display_locale(bad);
    EXPECT_THAT(CheckoutFields(r), ElementsAre("display_locale")) << bad;
  }
}

TEST(ValidationTest, NestedLengthsAndShapes) {
  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  r.mutable_bill()->set_first_name(std::string(65, 'a'));
  r.mutable_bill()->set_country("usa");
  r.mutable_shipping()->set_postal_code(std::string(33, '1'));
  r.mutable_shipping()->set_email("@");
  r.mutable_customer()->set_id(std::string(65, 'c'));
  r.mutable_customer()->set_email(std::string(120, 'e') + "@x.example");
  r.mutable_goods(0)->set_description(std::string(1025, 'd'));
  EXPECT_THAT(CheckoutFields(r),
              ElementsAre("goods[0].description", "bill.first_name",
                          "bill.country", "shipping.postal_code",
                          "shipping.email", "customer.id", "customer.email"));
  // Limits count characters, not bytes.
  v1::CreateCheckoutRequest u = ValidCheckout(kNow);
  std::string city;
  for (int i = 0; i < 64; ++i) city += "\xC3\xA9";  // 64 x "é"
  u.mutable_bill()->set_city(city);
  EXPECT_THAT(CheckoutFields(u), IsEmpty());
}

TEST(ValidationTest, GoodsLimits) {
  v1::CreateCheckoutRequest r = ValidCheckout(kNow);
  r.clear_goods();
  for (int i = 0; i < kMaxGoods; ++i) {
    auto* g = r.add_goods();
    g->set_name("x");
    g->set_quantity(1);
  }
  EXPECT_THAT(CheckoutFields(r), IsEmpty());
  auto* g = r.add_goods();
  g->set_name("x");
  g->set_quantity(1);
  EXPECT_THAT(CheckoutFields(r), ElementsAre("goods"));
}

TEST(ValidationTest, CheckoutRecurringCombinations) {
  v1::CreateCheckoutRequest r = ValidRecurringCheckout(kNow);
  r.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_CARD_ON_FILE);
  EXPECT_THAT(CheckoutFields(r), ElementsAre("payment.token_usage"));

  // PURCHASE storing the card needs token_usage and a shopper_reference.
  v1::CreateCheckoutRequest p = ValidCheckout(kNow);
  p.mutable_payment()->set_store_payment_method(true);
  EXPECT_THAT(CheckoutFields(p),
              ElementsAre("payment.token_usage", "payment.shopper_reference"));
  p.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_CARD_ON_FILE);
  p.mutable_payment()->set_shopper_reference("s-1");
  EXPECT_THAT(CheckoutFields(p), IsEmpty());

  // A checkout is shopper-initiated and carries no token or agreement.
  v1::CreateCheckoutRequest m = ValidCheckout(kNow);
  m.set_mit(true);
  m.set_recurring_agreement_id("RA1");
  m.mutable_payment()->set_token("TK1");
  EXPECT_THAT(CheckoutFields(m),
              ElementsAre("payment.token", "mit", "recurring_agreement_id"));
}

TEST(ValidationTest, ChargeRecurringRequirementsAndCombinations) {
  v1::ChargeRecurringRequest empty;
  EXPECT_THAT(ChargeFields(empty),
              ElementsAre("merchant_id", "trans_id", "amount", "currency",
                          "recurring_agreement_id", "payment.shopper_reference",
                          "payment.token"));

  v1::ChargeRecurringRequest r = ValidCharge();
  r.set_mit(false);
  r.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
  r.mutable_payment()->set_store_payment_method(true);
  r.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_CARD_ON_FILE);
  r.set_notify_url("not a url");
  r.mutable_goods()->Add()->set_quantity(1);
  EXPECT_THAT(
      ChargeFields(r),
      ElementsAre("payment.store_payment_method", "payment.token_usage",
                  "payment_type", "mit", "notify_url", "goods[0].name"));
}

TEST(ValidationTest, GetOrderNeedsExactlyOneWellFormedLookup) {
  v1::GetOrderRequest r;
  EXPECT_THAT(Fields(ValidateGetOrder(r)),
              ElementsAre("merchant_id", "lookup"));
  r.set_merchant_id("M1");
  r.set_order_id("GW123");
  EXPECT_TRUE(ValidateGetOrder(r).ok());
  r.set_session_id("");  // set but empty
  EXPECT_THAT(Fields(ValidateGetOrder(r)), ElementsAre("session_id"));
  r.set_session_id("CS 1");
  EXPECT_THAT(Fields(ValidateGetOrder(r)), ElementsAre("session_id"));
  r.set_trans_id("T-1");
  EXPECT_TRUE(ValidateGetOrder(r).ok());
  r.set_trans_id("T 1");
  EXPECT_THAT(Fields(ValidateGetOrder(r)), ElementsAre("trans_id"));
}

TEST(ValidationTest, GetSessionStatusNeedsExactlyOneLookup) {
  v1::GetSessionStatusRequest r;
  r.set_merchant_id("M1");
  EXPECT_THAT(Fields(ValidateGetSessionStatus(r)), ElementsAre("lookup"));
  r.set_session_id("CS123");
  EXPECT_TRUE(ValidateGetSessionStatus(r).ok());
  r.set_trans_id("");
  EXPECT_THAT(Fields(ValidateGetSessionStatus(r)), ElementsAre("trans_id"));
}

}  // namespace
}  // namespace payorch::service
