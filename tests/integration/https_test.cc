// payorchd against PayKKa over HTTPS (the sandbox's TLS listener, a CA made
// at test time and trusted through --paykka_ca_file) across an emulated
// 25 ms round trip (rtt-relay).
#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;

constexpr absl::Duration kRtt = absl::Milliseconds(25);

TEST(HttpsTest, CheckoutChargeAndLookupsOverTlsAcrossEmulatedRtt) {
  StackOptions options;
  options.paykka_https = true;
  options.paykka_rtt = kRtt;
  auto stack = Stack::Start(options);
  ASSERT_TRUE(stack.ok()) << stack.status();
  EXPECT_TRUE(absl::StartsWith((*stack)->paykka_url(), "https://127.0.0.1:"));
  auto stub = (*stack)->Stub();

  v1::CreateCheckoutResponse created;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  absl::Time start = absl::Now();
  grpc::Status s = stub->CreateCheckout(
      &ctx, RecurringCheckout(NewTransId("https"), "shopper-tls"), &created);
  absl::Duration first_call = absl::Now() - start;
  ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << (*stack)->PayorchdLog();
  // A fresh connection: TCP, TLS and the request, one round trip each.
  EXPECT_GE(first_call, 3 * kRtt);
  auto paid = (*stack)->Pay(created.session_id(), "SUCCESS");
  ASSERT_TRUE(paid.ok()) << paid.status();

  v1::GetOrderRequest by_session;
  by_session.set_merchant_id(Stack::kMerchantId);
  by_session.set_session_id(created.session_id());
  v1::GetOrderResponse order;
  grpc::ClientContext ctx2;
  SetDeadline(&ctx2);
  ASSERT_TRUE(stub->GetOrder(&ctx2, by_session, &order).ok());
  ASSERT_EQ(order.order().status(), v1::ORDER_STATUS_SUCCESS);

  v1::ChargeRecurringResponse charged;
  grpc::ClientContext ctx3;
  SetDeadline(&ctx3);
  s = stub->ChargeRecurring(
      &ctx3, Charge(NewTransId("https-mit"), order.order()), &charged);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(charged.order().status(), v1::ORDER_STATUS_SUCCESS);

  auto counters = (*stack)->Counters();
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_GE((*counters)["tls_connections"].get<int64_t>(), 1);
  EXPECT_EQ((*counters)["creates_by_trans_id"].size(), 1u);
  EXPECT_EQ((*counters)["charges_by_trans_id"].size(), 1u);
}

}  // namespace
}  // namespace payorch::testing
