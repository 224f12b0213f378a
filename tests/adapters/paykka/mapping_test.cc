#include "adapters/paykka/mapping.h"

#include <nlohmann/json.hpp>
#include <string>

#include "gtest/gtest.h"
#include "tests/adapters/paykka/test_merchant.h"

namespace payorch::paykka {
namespace {

using json = nlohmann::json;
using ::payorch::paykka::testing::TestMerchant;

v1::Address FullAddress(const std::string& prefix) {
  v1::Address a;
  a.set_first_name(prefix + "First");
  a.set_last_name(prefix + "Last");
  a.set_address_line1("1 Main St");
  a.set_address_line2("Apt 2");
  a.set_country("US");
  a.set_state("CA");
  a.set_city("SF");
  a.set_postal_code("94105");
  a.set_email("a@example.com");
  a.set_area_code("1");
  a.set_phone_number("5551234");
  return a;
}

v1::CreateCheckoutRequest FullCheckout() {
  v1::CreateCheckoutRequest r;
  r.set_merchant_id("ignored-the-config-wins");
  r.set_trans_id("T-1");
  r.set_payment_type(v1::PAYMENT_TYPE_RECURRING);
  r.set_authorisation_type(v1::AUTHORISATION_TYPE_FINAL_AUTH);
  r.set_capture_method(v1::CAPTURE_METHOD_MANUAL);
  r.set_amount(1999);
  r.set_currency("USD");
  r.mutable_expire_time()->set_seconds(1767229200);  // 2026-01-01T01:00:00Z
  r.set_session_mode(v1::SESSION_MODE_DROP_IN);
  r.set_display_locale("en-US");
  r.set_return_url("https://shop.example/return");
  r.set_notify_url("https://shop.example/notify");
  r.set_cancel_url("https://shop.example/cancel");
  r.mutable_payment()->set_store_payment_method(true);
  r.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_SUBSCRIPTION);
  r.mutable_payment()->set_shopper_reference("shopper-9");
  v1::Goods* g = r.add_goods();
  g->set_id("sku1");
  g->set_name("Widget");
  g->set_description("A widget");
  g->set_category("tools");
  g->set_brand("Acme");
  g->set_link("https://shop.example/w");
  g->set_price(999);
  g->set_quantity(2);
  g->set_delivery_date("2026-01-05");
  g->set_picture_url("https://shop.example/w.png");
  *r.mutable_bill() = FullAddress("B");
  *r.mutable_shipping() = FullAddress("S");
  r.mutable_customer()->set_id("c1");
  r.mutable_customer()->set_order_ip("10.0.0.1");
  r.mutable_customer()->set_pay_ip("10.0.0.2");
  r.mutable_customer()->set_email("c@example.com");
  r.mutable_customer()->set_registration_time("2025-01-01T00:00:00+00:00");
  return r;
}

constexpr const char* kGoldenAddress =
    R"("first_name":"%sFirst","last_name":"%sLast","address_line1":"1 Main St",)"
    R"("address_line2":"Apt 2","country":"US","state":"CA","city":"SF",)"
    R"("postal_code":"94105","email":"a@example.com","area_code":"1",)"
    R"("phone_number":"5551234")";

std::string Address(const std::string& p) {
  std::string s = kGoldenAddress;
  for (size_t i; (i = s.find("%s")) != std::string::npos;) s.replace(i, 2, p);
  return "{" + s + "}";
}

TEST(MappingTest, CreateSessionBodyGolden) {
  const std::string golden =
      R"({"merchant_id":"M1","payment_type":"RECURRING",)"
      R"("authorisation_type":"FINAL_AUTH","capture_method":"MANUAL",)"
      R"("trans_id":"T-1","amount":1999,"currency":"USD",)"
      R"("session_mode":"DROP_IN","expire_time":"2026-01-01T01:00:00+00:00",)"
      R"("display_locale":"en-US","return_url":"https://shop.example/return",)"
      R"("cancel_url":"https://shop.example/cancel",)"
      R"("notify_url":"https://shop.example/notify","mit":false,)"
      R"("payment":{"payment_method":"BANKCARD","store_payment_method":true,)"
      R"("token_usage":"SUBSCRIPTION","shopper_reference":"shopper-9"},)"
      R"("goods":[{"id":"sku1","name":"Widget","description":"A widget",)"
      R"("category":"tools","brand":"Acme","link":"https://shop.example/w",)"
      R"("price":999,"quantity":2,"delivery_date":"2026-01-05",)"
      R"("picture_url":"https://shop.example/w.png"}],)"
      R"("bill":)" +
      Address("B") + R"(,"shipping":)" + Address("S") +
      R"(,"customer":{"id":"c1","order_ip":"10.0.0.1","pay_ip":"10.0.0.2",)"
      R"("email":"c@example.com","registration_time":"2025-01-01T00:00:00+00:00"}})";
  std::string body = CreateSessionBody("M1", FullCheckout());
  EXPECT_EQ(json::parse(body), json::parse(golden));
  EXPECT_EQ(body, golden);  // the exact bytes that get signed
}

TEST(MappingTest, CreateSessionBodyOmitsEmptyOptionalFields) {
  v1::CreateCheckoutRequest r;
  r.set_trans_id("T-2");
  r.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
  r.set_amount(500);
  r.set_currency("EUR");
  r.set_session_mode(v1::SESSION_MODE_HOSTED);
  r.set_return_url("https://shop.example/r");
  r.mutable_bill();  // present but empty: omitted
  json body = json::parse(CreateSessionBody("M1", r));
  EXPECT_EQ(body,
            json::parse(R"({"merchant_id":"M1","payment_type":"PURCHASE",)"
                        R"("trans_id":"T-2","amount":500,"currency":"EUR",)"
                        R"("session_mode":"HOSTED",)"
                        R"("return_url":"https://shop.example/r"})"));
  EXPECT_TRUE(body["amount"].is_number_integer());
}

TEST(MappingTest, InitiateRecurringBody) {
  v1::ChargeRecurringRequest r;
  r.set_merchant_id("M1");
  r.set_trans_id("T-3");
  r.set_amount(1500);
  r.set_currency("USD");
  r.set_recurring_agreement_id("RA1");
  r.mutable_payment()->set_token("TK1");
  r.mutable_payment()->set_shopper_reference("shopper-9");
  json body = json::parse(InitiateRecurringBody("M1", r));
  EXPECT_EQ(body, json::parse(
                      R"({"merchant_id":"M1","payment_type":"RECURRING",)"
                      R"("trans_id":"T-3","amount":1500,"currency":"USD",)"
                      R"("mit":true,"recurring_agreement_id":"RA1",)"
                      R"("payment":{"payment_method":"BANKCARD","token":"TK1",)"
                      R"("shopper_reference":"shopper-9",)"
                      R"("token_usage":"SUBSCRIPTION"}})"));
}

TEST(MappingTest, QueryBodies) {
  EXPECT_EQ(QueryTransactionBody("M1", {OrderLookup::Kind::kOrderId, "GW1"}),
            R"({"merchant_id":"M1","order_id":"GW1"})");
  EXPECT_EQ(QueryTransactionBody("M1", {OrderLookup::Kind::kSessionId, "CS1"}),
            R"({"merchant_id":"M1","session_id":"CS1"})");
  EXPECT_EQ(QueryTransactionBody("M1", {OrderLookup::Kind::kTransId, "T1"}),
            R"({"merchant_id":"M1","trans_id":"T1"})");
  EXPECT_EQ(QuerySessionBody("M1", {SessionLookup::Kind::kSessionId, "CS1"}),
            R"({"merchant_id":"M1","session_id":"CS1"})");
  EXPECT_EQ(QuerySessionBody("M1", {SessionLookup::Kind::kTransId, "T1"}),
            R"({"merchant_id":"M1","trans_id":"T1"})");
}

TEST(MappingTest, ParsesTimesInEveryOffsetForm) {
  const absl::Time want = absl::FromUnixSeconds(1746689654);  // 07:34:14Z
  for (const char* text :
       {"2025-05-08T15:34:14+08:00", "2025-05-08T15:34:14+0800",
        "2025-05-08T07:34:14Z", "2025-05-08T07:34:14.000Z"}) {
    absl::StatusOr<absl::Time> t = ParsePaykkaTime(text);
    ASSERT_TRUE(t.ok()) << text << " " << t.status();
    EXPECT_EQ(*t, want) << text;
  }
  EXPECT_FALSE(ParsePaykkaTime("yesterday").ok());
  EXPECT_EQ(FormatPaykkaTime(want), "2025-05-08T07:34:14+00:00");
}

TEST(MappingTest, ParsesFullOrder) {
  json data = json::parse(R"({
    "merchant_id":"M1","trans_id":"T1","order_id":"GW1","session_id":"CS1",
    "status":"SUCCESS","payment_type":"RECURRING","capture_method":"AUTOMATIC",
    "authorisation_type":"FINAL_AUTH","amount":"1999","currency":"USD",
    "error_code":"0000","error_description":"request success",
    "pay_finish_time":"2025-05-08T15:34:14+0800","token":"TK1",
    "recurring_agreement_id":"RA1","shopper_reference":"shopper-9",
    "payment":{"payment_method":"BANKCARD"},
    "card_info":{"bin":"424242","last4":"4242","card_brand":"VISA"},
    "authentication_result":{"authentication_url":"https://3ds.example/x"},
    "balances":{"authed_amount":1999,"captured_amount":1999,
      "able_to_capture_amount":0,"voided_amount":0,"able_to_void_amount":0,
      "refunded_amount":"100","able_to_refund_amount":1899}})");
  absl::StatusOr<v1::Order> o = ParseOrderData(data);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->merchant_id(), "M1");
  EXPECT_EQ(o->trans_id(), "T1");
  EXPECT_EQ(o->order_id(), "GW1");
  EXPECT_EQ(o->session_id(), "CS1");
  EXPECT_EQ(o->status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_EQ(o->status_text(), "SUCCESS");
  EXPECT_EQ(o->payment_type(), "RECURRING");
  EXPECT_EQ(o->capture_method(), "AUTOMATIC");
  EXPECT_EQ(o->authorisation_type(), "FINAL_AUTH");
  EXPECT_EQ(o->amount(), 1999);
  EXPECT_EQ(o->currency(), "USD");
  EXPECT_EQ(o->error_code(), "0000");
  EXPECT_EQ(o->error_description(), "request success");
  EXPECT_EQ(o->pay_finish_time().seconds(), 1746689654);
  EXPECT_EQ(o->token(), "TK1");
  EXPECT_EQ(o->recurring_agreement_id(), "RA1");
  EXPECT_EQ(o->shopper_reference(), "shopper-9");
  EXPECT_EQ(o->payment_method(), "BANKCARD");
  EXPECT_EQ(o->card().bin(), "424242");
  EXPECT_EQ(o->card().last4(), "4242");
  EXPECT_EQ(o->card().brand(), "VISA");
  EXPECT_EQ(o->authentication_url(), "https://3ds.example/x");
  EXPECT_EQ(o->balances().authed_amount(), 1999);
  EXPECT_EQ(o->balances().captured_amount(), 1999);
  EXPECT_EQ(o->balances().refunded_amount(), 100);
  EXPECT_EQ(o->balances().able_to_refund_amount(), 1899);
}

TEST(MappingTest, OrderStatusesAndUnknownPassthrough) {
  const std::pair<const char*, v1::OrderStatus> kCases[] = {
      {"PROCESSING", v1::ORDER_STATUS_PROCESSING},
      {"SUCCESS", v1::ORDER_STATUS_SUCCESS},
      {"AUTHORIZED", v1::ORDER_STATUS_AUTHORIZED},
      {"FAILURE", v1::ORDER_STATUS_FAILURE},
      {"REFUNDED", v1::ORDER_STATUS_REFUNDED},
      {"PARTIALLY_REFUNDED", v1::ORDER_STATUS_PARTIALLY_REFUNDED},
      {"CANCELED", v1::ORDER_STATUS_CANCELED},
      {"PARTIALLY_REVERSED", v1::ORDER_STATUS_PARTIALLY_REVERSED},
      {"CHARGEBACK_PENDING", v1::ORDER_STATUS_OTHER},
  };
  for (const auto& [text, status] : kCases) {
    absl::StatusOr<v1::Order> o = ParseOrderData(
        json{{"order_id", "GW1"}, {"status", text}, {"amount", 5}});
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->status(), status) << text;
    EXPECT_EQ(o->status_text(), text);
  }
}

TEST(MappingTest, DeclineIsAnOrderWithErrorCode) {
  absl::StatusOr<v1::Order> o = ParseOrderData(
      json::parse(R"({"order_id":"GW2","status":"FAILURE","error_code":"2099",)"
                  R"("error_description":"Invalid Card","amount":100})"));
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->status(), v1::ORDER_STATUS_FAILURE);
  EXPECT_EQ(o->error_code(), "2099");
  EXPECT_EQ(o->error_description(), "Invalid Card");
}

TEST(MappingTest, OrderRejectsUnusableData) {
  EXPECT_FALSE(ParseOrderData(json::object()).ok());
  EXPECT_FALSE(
      ParseOrderData(json{{"order_id", "GW1"}, {"amount", "12.5"}}).ok());
  EXPECT_FALSE(
      ParseOrderData(json{{"order_id", "GW1"}, {"amount", json::array()}})
          .ok());
  // Wrong types for text fields are ignored, not thrown.
  absl::StatusOr<v1::Order> o = ParseOrderData(
      json{{"order_id", "GW1"}, {"status", 7}, {"card_info", "x"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->status(), v1::ORDER_STATUS_OTHER);
  EXPECT_EQ(o->status_text(), "7");
}

TEST(MappingTest, EffectiveDataMergesTopLevelFields) {
  json body =
      json::parse(R"({"ret_code":"000000","ret_msg":"ok","error_code":"2099",)"
                  R"("error_description":"Invalid Card",)"
                  R"("data":{"order_id":"GW1","status":"FAILURE"}})");
  json data = EffectiveData(body);
  EXPECT_EQ(data["order_id"], "GW1");
  EXPECT_EQ(data["error_code"], "2099");
  EXPECT_FALSE(data.contains("ret_code"));
  // Session fields at the top level, no data.
  json top = EffectiveData(json::parse(
      R"({"ret_code":"000000","session_id":"CS1","session_url":"https://x"})"));
  EXPECT_EQ(top["session_id"], "CS1");
  // `data` wins over a top-level duplicate.
  json both =
      EffectiveData(json::parse(R"({"status":"A","data":{"status":"B"}})"));
  EXPECT_EQ(both["status"], "B");
}

TEST(MappingTest, ParsesCreateSessionResponse) {
  MerchantConfig m = TestMerchant();
  v1::CreateCheckoutRequest req = FullCheckout();
  absl::StatusOr<v1::CreateCheckoutResponse> r = ParseCreateSessionData(
      json::parse(R"({"session_id":"CS1","session_url":"https://pay/CS1",)"
                  R"("expire_time":"2026-01-01T09:00:00+08:00"})"),
      m, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->session_id(), "CS1");
  EXPECT_EQ(r->session_url(), "https://pay/CS1");
  EXPECT_EQ(r->client_key(), "ck_test");
  EXPECT_EQ(r->expire_time().seconds(), 1767229200);
  EXPECT_EQ(r->status(), v1::SESSION_STATUS_PROCESSING);
  EXPECT_EQ(r->merchant_id(), "M1");
  EXPECT_EQ(r->trans_id(), "T-1");
  EXPECT_FALSE(ParseCreateSessionData(json::object(), m, req).ok());
}

TEST(MappingTest, ParsesSessionStatuses) {
  const std::pair<const char*, v1::SessionStatus> kCases[] = {
      {"PROCESSING", v1::SESSION_STATUS_PROCESSING},
      {"COMPLETED", v1::SESSION_STATUS_COMPLETED},
      {"EXPIRED", v1::SESSION_STATUS_EXPIRED},
      {"PAUSED", v1::SESSION_STATUS_OTHER},
  };
  for (const auto& [text, status] : kCases) {
    absl::StatusOr<v1::GetSessionStatusResponse> s =
        ParseSessionData(json{{"session_id", "CS1"},
                              {"trans_id", "T1"},
                              {"status", text},
                              {"order_id", "GW1"},
                              {"amount", "250"},
                              {"currency", "USD"},
                              {"expire_time", "2026-01-01T01:00:00Z"}});
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->status(), status);
    EXPECT_EQ(s->status_text(), text);
    EXPECT_EQ(s->amount(), 250);
    EXPECT_EQ(s->order_id(), "GW1");
    EXPECT_EQ(s->expire_time().seconds(), 1767229200);
  }
  EXPECT_FALSE(ParseSessionData(json{{"trans_id", "T1"}}).ok());
}

}  // namespace
}  // namespace payorch::paykka
