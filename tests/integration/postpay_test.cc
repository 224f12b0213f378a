// Refund / GetRefund (and the other RPCs after the payment) end to end: real
// redis-server, real paykka-sandbox (whose counters say how many refund
// requests reached PayKKa per refund_trans_id), real payorchd replicas. One
// test per row of the idempotency table, partial amounts, the balance rules
// checked before PayKKa, and a lost answer reconciled.
#include <grpcpp/grpcpp.h>

#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;
using Stub = v1::PaymentOrchestrator::Stub;

constexpr char kRefundPath[] = "/v3/payment/acq/refund";

template <typename Req, typename Resp>
using StubMethod = grpc::Status (Stub::*)(grpc::ClientContext*, const Req&,
                                          Resp*);

template <typename Req, typename Resp>
grpc::Status Call(const Stack& stack, StubMethod<Req, Resp> method,
                  const Req& req, Resp* resp, int replica = 0) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  return (stack.Stub(replica).get()->*method)(&ctx, req, resp);
}

// Requests that reached the sandbox: per id (refund_trans_id) and per path.
int64_t RequestsFor(const Stack& stack, const std::string& id) {
  auto c = stack.Counters();
  return c.ok() ? (*c)["create_requests_by_trans_id"].value(id, int64_t{0})
                : -1;
}
int64_t EndpointRequests(const Stack& stack, const std::string& path) {
  auto c = stack.Counters();
  return c.ok() ? (*c)["requests_by_endpoint"].value(path, int64_t{0}) : -1;
}

v1::RefundRequest RefundOf(const v1::Order& order, const std::string& id,
                           int64_t amount) {
  v1::RefundRequest r;
  r.set_merchant_id(Stack::kMerchantId);
  r.set_refund_trans_id(id);
  r.set_order_id(order.order_id());
  r.set_amount(amount);
  r.set_currency(order.currency());
  r.set_reason(v1::REVERSAL_REASON_REQUESTED_BY_CUSTOMER);
  return r;
}

class PostpayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto stack =
        Stack::Start(StackOptions::Payorchd({"--paykka_timeout=2s"}, 2));
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = stack->release();
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(stack_->ClearFaults().ok());
    ASSERT_TRUE(
        stack_
            ->SandboxCall("POST", "/sandbox/refund-mode", {{"mode", "success"}})
            .ok());
  }

  // A paid order of `amount` ("SUCCESS"), or an authorisation
  // ("AUTHORIZED", capture_method MANUAL).
  static v1::Order PaidOrder(int64_t amount,
                             const std::string& outcome = "SUCCESS") {
    v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("pay"), amount);
    if (outcome == "AUTHORIZED") {
      req.set_capture_method(v1::CAPTURE_METHOD_MANUAL);
    }
    v1::CreateCheckoutResponse created;
    EXPECT_TRUE(Call(*stack_, &Stub::CreateCheckout, req, &created).ok());
    EXPECT_TRUE(stack_->Pay(created.session_id(), outcome).ok());
    return OrderById("", created.session_id());
  }

  static v1::Order OrderById(const std::string& order_id,
                             const std::string& session_id = "") {
    v1::GetOrderRequest q;
    q.set_merchant_id(Stack::kMerchantId);
    if (!order_id.empty()) q.set_order_id(order_id);
    if (!session_id.empty()) q.set_session_id(session_id);
    v1::GetOrderResponse resp;
    grpc::Status st = Call(*stack_, &Stub::GetOrder, q, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.order();
  }

  static Stack* stack_;
};

Stack* PostpayTest::stack_ = nullptr;

TEST_F(PostpayTest, PartialRefundsUpToTheCapturedAmountThenRefused) {
  v1::Order order = PaidOrder(1000);
  ASSERT_EQ(order.status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_EQ(order.balances().able_to_refund_amount(), 1000);

  v1::RefundResponse first;
  v1::RefundRequest r1 = RefundOf(order, NewTransId("rf"), 300);
  ASSERT_TRUE(Call(*stack_, &Stub::Refund, r1, &first).ok());
  EXPECT_EQ(first.refund().status(), v1::REFUND_STATUS_SUCCESS);
  EXPECT_EQ(first.refund().amount(), 300);
  EXPECT_EQ(first.refund().order_id(), order.order_id());
  EXPECT_EQ(first.refund().refund_trans_id(), r1.refund_trans_id());
  EXPECT_EQ(first.refund().refund_order_id().substr(0, 2), "RG");
  v1::Order after = OrderById(order.order_id());
  EXPECT_EQ(after.status(), v1::ORDER_STATUS_PARTIALLY_REFUNDED);
  EXPECT_EQ(after.balances().refunded_amount(), 300);
  EXPECT_EQ(after.balances().able_to_refund_amount(), 700);

  // Above what is left: refused by payorch, nothing reaches PayKKa.
  const int64_t refunds_before = EndpointRequests(*stack_, kRefundPath);
  v1::RefundRequest over = RefundOf(order, NewTransId("rf-over"), 701);
  v1::RefundResponse refused;
  grpc::Status st = Call(*stack_, &Stub::Refund, over, &refused);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ReasonOf(st), "REFUND_AMOUNT_EXCEEDED") << st.error_message();
  EXPECT_EQ(EndpointRequests(*stack_, kRefundPath), refunds_before);
  EXPECT_EQ(RequestsFor(*stack_, over.refund_trans_id()), 0);

  // The refusal is not stored: the same id with the amount that is left is
  // executed (a stored refusal would make it TRANS_ID_REUSED).
  v1::RefundRequest rest = RefundOf(order, over.refund_trans_id(), 700);
  v1::RefundResponse second;
  st = Call(*stack_, &Stub::Refund, rest, &second);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(OrderById(order.order_id()).status(), v1::ORDER_STATUS_REFUNDED);
  EXPECT_EQ(OrderById(order.order_id()).balances().able_to_refund_amount(), 0);

  // GetRefund by either id.
  v1::GetRefundRequest q;
  q.set_merchant_id(Stack::kMerchantId);
  q.set_refund_order_id(second.refund().refund_order_id());
  v1::GetRefundResponse got;
  ASSERT_TRUE(Call(*stack_, &Stub::GetRefund, q, &got).ok());
  EXPECT_EQ(got.refund().refund_trans_id(), rest.refund_trans_id());
  EXPECT_EQ(got.refund().amount(), 700);
  q.set_refund_trans_id("no-such-refund");
  st = Call(*stack_, &Stub::GetRefund, q, &got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ReasonOf(st), "REFUND_NOT_FOUND");
}

TEST_F(PostpayTest, RefundReplayedByteForByteOnEitherReplica) {
  v1::Order order = PaidOrder(500);
  v1::RefundRequest req = RefundOf(order, NewTransId("rf-replay"), 200);
  v1::RefundResponse first;
  ASSERT_TRUE(Call(*stack_, &Stub::Refund, req, &first).ok());
  for (int replica = 0; replica < 2; ++replica) {
    v1::RefundResponse again;
    ASSERT_TRUE(Call(*stack_, &Stub::Refund, req, &again, replica).ok());
    EXPECT_EQ(again.SerializeAsString(), first.SerializeAsString());
  }
  EXPECT_EQ(RequestsFor(*stack_, req.refund_trans_id()), 1);
  EXPECT_EQ(OrderById(order.order_id()).balances().refunded_amount(), 200);
}

TEST_F(PostpayTest, SameRefundIdWithOtherContentIsRefusedWithoutUpstream) {
  v1::Order order = PaidOrder(500);
  v1::RefundRequest req = RefundOf(order, NewTransId("rf-mismatch"), 200);
  v1::RefundResponse first;
  ASSERT_TRUE(Call(*stack_, &Stub::Refund, req, &first).ok());
  req.set_amount(100);
  v1::RefundResponse second;
  grpc::Status st = Call(*stack_, &Stub::Refund, req, &second);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(ReasonOf(st), "TRANS_ID_REUSED");
  EXPECT_EQ(RequestsFor(*stack_, req.refund_trans_id()), 1);
}

TEST_F(PostpayTest, RefundInFlightAnswersRequestInProgress) {
  v1::Order order = PaidOrder(500);
  ASSERT_TRUE(
      stack_->SetFaults({{{"endpoint", kRefundPath}, {"latency_ms", 1500}}})
          .ok());
  v1::RefundRequest req = RefundOf(order, NewTransId("rf-inflight"), 100);
  grpc::Status slow_status;
  v1::RefundResponse slow;
  std::thread first(
      [&] { slow_status = Call(*stack_, &Stub::Refund, req, &slow, 0); });
  // The first call holds the claim while PayKKa is slow.
  grpc::Status st;
  for (int i = 0; i < 50; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    v1::RefundResponse resp;
    st = Call(*stack_, &Stub::Refund, req, &resp, 1);
    if (!st.ok()) break;
  }
  first.join();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(ReasonOf(st), "REQUEST_IN_PROGRESS");
  ASSERT_TRUE(slow_status.ok()) << slow_status.error_message();
  EXPECT_EQ(RequestsFor(*stack_, req.refund_trans_id()), 1);
}

TEST_F(PostpayTest, RefundWhoseAnswerWasLostIsReconciledNotRepeated) {
  v1::Order order = PaidOrder(800);
  ASSERT_TRUE(stack_
                  ->SetFaults({{{"endpoint", kRefundPath},
                                {"close_after_commit_rate", 1.0},
                                {"times", 1}}})
                  .ok());
  v1::RefundRequest req = RefundOf(order, NewTransId("rf-lost"), 250);
  v1::RefundResponse lost;
  grpc::Status st = Call(*stack_, &Stub::Refund, req, &lost);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN") << st.error_message();
  ASSERT_TRUE(stack_->ClearFaults().ok());

  v1::RefundResponse adopted;
  for (int i = 0; i < 100; ++i) {
    st = Call(*stack_, &Stub::Refund, req, &adopted, 1);
    if (st.ok() || ReasonOf(st) != "PSP_OUTCOME_UNKNOWN") break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(adopted.refund().status(), v1::REFUND_STATUS_SUCCESS);
  EXPECT_EQ(adopted.refund().amount(), 250);
  EXPECT_EQ(RequestsFor(*stack_, req.refund_trans_id()), 1)
      << "the refund was sent to PayKKa again";
  EXPECT_EQ(OrderById(order.order_id()).balances().refunded_amount(), 250);
}

TEST_F(PostpayTest, RefundUnderReviewSettlesThroughTheControlApi) {
  ASSERT_TRUE(
      stack_->SandboxCall("POST", "/sandbox/refund-mode", {{"mode", "review"}})
          .ok());
  v1::Order order = PaidOrder(600);
  v1::RefundRequest ok_req = RefundOf(order, NewTransId("rf-review"), 100);
  v1::RefundResponse reviewing;
  ASSERT_TRUE(Call(*stack_, &Stub::Refund, ok_req, &reviewing).ok());
  EXPECT_EQ(reviewing.refund().status(), v1::REFUND_STATUS_REVIEWING);
  // Held: not refundable twice while PayKKa reviews it.
  EXPECT_EQ(OrderById(order.order_id()).balances().able_to_refund_amount(),
            500);
  v1::RefundRequest no_req = RefundOf(order, NewTransId("rf-declined"), 200);
  v1::RefundResponse declined;
  ASSERT_TRUE(Call(*stack_, &Stub::Refund, no_req, &declined).ok());

  const std::string base = "/sandbox/refunds/";
  ASSERT_TRUE(stack_
                  ->SandboxCall(
                      "POST",
                      base + reviewing.refund().refund_order_id() + "/complete",
                      {{"outcome", "SUCCESS"}})
                  .ok());
  ASSERT_TRUE(stack_
                  ->SandboxCall(
                      "POST",
                      base + declined.refund().refund_order_id() + "/complete",
                      {{"outcome", "FAILURE"}})
                  .ok());
  v1::GetRefundRequest q;
  q.set_merchant_id(Stack::kMerchantId);
  q.set_refund_trans_id(ok_req.refund_trans_id());
  v1::GetRefundResponse got;
  ASSERT_TRUE(Call(*stack_, &Stub::GetRefund, q, &got).ok());
  EXPECT_EQ(got.refund().status(), v1::REFUND_STATUS_SUCCESS);
  q.set_refund_trans_id(no_req.refund_trans_id());
  ASSERT_TRUE(Call(*stack_, &Stub::GetRefund, q, &got).ok());
  EXPECT_EQ(got.refund().status(), v1::REFUND_STATUS_FAILURE);
  EXPECT_FALSE(got.refund().error_code().empty());
  // The declined amount is refundable again.
  v1::Order after = OrderById(order.order_id());
  EXPECT_EQ(after.balances().refunded_amount(), 100);
  EXPECT_EQ(after.balances().able_to_refund_amount(), 500);
}

TEST_F(PostpayTest, InvalidRefundNamesEveryField) {
  v1::RefundRequest req;
  req.set_merchant_id(Stack::kMerchantId);
  req.set_currency("usd");
  v1::RefundResponse resp;
  grpc::Status st = Call(*stack_, &Stub::Refund, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(DetailOf(st, &bad));
  std::set<std::string> fields;
  for (const auto& v : bad.field_violations()) fields.insert(v.field());
  EXPECT_EQ(fields, (std::set<std::string>{"refund_trans_id", "order_id",
                                           "amount", "currency"}));
}

constexpr char kCapturePath[] = "/v3/payment/acq/capture";
constexpr char kVoidPath[] = "/v3/payment/acq/void";

v1::CaptureRequest CaptureOf(const v1::Order& order, const std::string& id,
                             int64_t amount) {
  v1::CaptureRequest r;
  r.set_merchant_id(Stack::kMerchantId);
  r.set_request_id(id);
  r.set_order_id(order.order_id());
  r.set_amount(amount);
  r.set_currency(order.currency());
  return r;
}

v1::VoidRequest VoidOf(const v1::Order& order, const std::string& id) {
  v1::VoidRequest r;
  r.set_merchant_id(Stack::kMerchantId);
  r.set_request_id(id);
  r.set_order_id(order.order_id());
  r.set_reason(v1::REVERSAL_REASON_REQUESTED_BY_CUSTOMER);
  return r;
}

TEST_F(PostpayTest, PartialCaptureOnceThenRefundsUpToTheCapturedAmount) {
  v1::Order order = PaidOrder(1000, "AUTHORIZED");
  ASSERT_EQ(order.status(), v1::ORDER_STATUS_AUTHORIZED);
  EXPECT_EQ(order.balances().able_to_capture_amount(), 1000);
  EXPECT_EQ(order.balances().able_to_refund_amount(), 0);
  const int64_t sent_before = EndpointRequests(*stack_, kCapturePath);

  // Above the authorisation: refused before PayKKa.
  v1::CaptureResponse resp;
  grpc::Status st = Call(*stack_, &Stub::Capture,
                         CaptureOf(order, NewTransId("cap-over"), 1001), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ReasonOf(st), "CAPTURE_AMOUNT_EXCEEDED") << st.error_message();
  EXPECT_EQ(EndpointRequests(*stack_, kCapturePath), sent_before);

  v1::CaptureRequest req = CaptureOf(order, NewTransId("cap"), 600);
  ASSERT_TRUE(Call(*stack_, &Stub::Capture, req, &resp).ok());
  EXPECT_EQ(resp.order().status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_EQ(resp.order().balances().captured_amount(), 600);
  EXPECT_EQ(resp.order().balances().able_to_capture_amount(), 0);
  EXPECT_EQ(resp.order().balances().able_to_refund_amount(), 600);
  // Replayed on the other replica, byte for byte; PayKKa asked once.
  v1::CaptureResponse again;
  ASSERT_TRUE(Call(*stack_, &Stub::Capture, req, &again, 1).ok());
  EXPECT_EQ(again.SerializeAsString(), resp.SerializeAsString());
  EXPECT_EQ(EndpointRequests(*stack_, kCapturePath), sent_before + 1);
  // Same request_id, other amount: TRANS_ID_REUSED, nothing sent.
  req.set_amount(500);
  st = Call(*stack_, &Stub::Capture, req, &again);
  EXPECT_EQ(ReasonOf(st), "TRANS_ID_REUSED") << st.error_message();
  // A second capture of the order: refused before PayKKa.
  st = Call(*stack_, &Stub::Capture, CaptureOf(order, NewTransId("cap-2"), 100),
            &again);
  EXPECT_EQ(ReasonOf(st), "ORDER_NOT_CAPTURABLE") << st.error_message();
  EXPECT_EQ(EndpointRequests(*stack_, kCapturePath), sent_before + 1);
  // ... nor voided; refunds go up to the captured 600.
  v1::VoidResponse voided;
  st = Call(*stack_, &Stub::Void, VoidOf(order, NewTransId("void-late")),
            &voided);
  EXPECT_EQ(ReasonOf(st), "ORDER_NOT_VOIDABLE") << st.error_message();
  v1::RefundResponse refund;
  st = Call(*stack_, &Stub::Refund,
            RefundOf(resp.order(), NewTransId("rf-cap"), 601), &refund);
  EXPECT_EQ(ReasonOf(st), "REFUND_AMOUNT_EXCEEDED");
  ASSERT_TRUE(Call(*stack_, &Stub::Refund,
                   RefundOf(resp.order(), NewTransId("rf-cap"), 600), &refund)
                  .ok());
  EXPECT_EQ(OrderById(order.order_id()).status(), v1::ORDER_STATUS_REFUNDED);
}

TEST_F(PostpayTest, CaptureAndVoidWhoseAnswersWereLostAreAdopted) {
  for (const char* path : {kCapturePath, kVoidPath}) {
    SCOPED_TRACE(path);
    v1::Order order = PaidOrder(700, "AUTHORIZED");
    ASSERT_TRUE(stack_
                    ->SetFaults({{{"endpoint", path},
                                  {"close_after_commit_rate", 1.0},
                                  {"times", 1}}})
                    .ok());
    const int64_t sent_before = EndpointRequests(*stack_, path);
    const bool capture = std::string(path) == kCapturePath;
    v1::CaptureRequest cap = CaptureOf(order, NewTransId("cap-lost"), 700);
    v1::VoidRequest vd = VoidOf(order, NewTransId("void-lost"));
    v1::Order answered;
    auto call = [&](int replica) {
      v1::CaptureResponse c;
      v1::VoidResponse v;
      grpc::Status st = capture
                            ? Call(*stack_, &Stub::Capture, cap, &c, replica)
                            : Call(*stack_, &Stub::Void, vd, &v, replica);
      answered = capture ? c.order() : v.order();
      return st;
    };
    grpc::Status st = call(0);
    EXPECT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN") << st.error_message();
    ASSERT_TRUE(stack_->ClearFaults().ok());
    for (int i = 0; i < 100; ++i) {
      st = call(1);
      if (st.ok() || ReasonOf(st) != "PSP_OUTCOME_UNKNOWN") break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(answered.status(),
              capture ? v1::ORDER_STATUS_SUCCESS : v1::ORDER_STATUS_CANCELED);
    EXPECT_EQ(EndpointRequests(*stack_, path), sent_before + 1)
        << "sent to PayKKa again";
  }
}

TEST_F(PostpayTest, VoidCancelsTheAuthorisationOnce) {
  v1::Order order = PaidOrder(300, "AUTHORIZED");
  const int64_t sent_before = EndpointRequests(*stack_, kVoidPath);
  v1::VoidRequest req = VoidOf(order, NewTransId("void"));
  v1::VoidResponse resp, again;
  ASSERT_TRUE(Call(*stack_, &Stub::Void, req, &resp).ok());
  EXPECT_EQ(resp.order().status(), v1::ORDER_STATUS_CANCELED);
  EXPECT_EQ(resp.order().balances().voided_amount(), 300);
  EXPECT_EQ(resp.order().balances().able_to_capture_amount(), 0);
  ASSERT_TRUE(Call(*stack_, &Stub::Void, req, &again, 1).ok());
  EXPECT_EQ(again.SerializeAsString(), resp.SerializeAsString());
  grpc::Status st =
      Call(*stack_, &Stub::Void, VoidOf(order, NewTransId("void-2")), &again);
  EXPECT_EQ(ReasonOf(st), "ORDER_NOT_VOIDABLE");
  v1::CaptureResponse cap;
  st = Call(*stack_, &Stub::Capture, CaptureOf(order, NewTransId("cap"), 300),
            &cap);
  EXPECT_EQ(ReasonOf(st), "ORDER_NOT_CAPTURABLE");
  EXPECT_EQ(EndpointRequests(*stack_, kVoidPath), sent_before + 1);
  // request_id names one operation: the void's id cannot capture.
  v1::CaptureRequest same_id = CaptureOf(order, req.request_id(), 300);
  st = Call(*stack_, &Stub::Capture, same_id, &cap);
  EXPECT_EQ(ReasonOf(st), "TRANS_ID_REUSED") << st.error_message();
}

TEST_F(PostpayTest, CaptureInFlightAnswersRequestInProgress) {
  v1::Order order = PaidOrder(500, "AUTHORIZED");
  ASSERT_TRUE(
      stack_->SetFaults({{{"endpoint", kCapturePath}, {"latency_ms", 1500}}})
          .ok());
  v1::CaptureRequest req = CaptureOf(order, NewTransId("cap-inflight"), 500);
  grpc::Status slow_status;
  v1::CaptureResponse slow;
  std::thread first(
      [&] { slow_status = Call(*stack_, &Stub::Capture, req, &slow, 0); });
  grpc::Status st;
  for (int i = 0; i < 50; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    v1::CaptureResponse resp;
    st = Call(*stack_, &Stub::Capture, req, &resp, 1);
    if (!st.ok()) break;
  }
  first.join();
  EXPECT_EQ(ReasonOf(st), "REQUEST_IN_PROGRESS") << st.error_message();
  ASSERT_TRUE(slow_status.ok()) << slow_status.error_message();
}

TEST_F(PostpayTest, CancelRecurringStopsLaterCharges) {
  v1::CreateCheckoutResponse created;
  ASSERT_TRUE(Call(*stack_, &Stub::CreateCheckout,
                   RecurringCheckout(NewTransId("first"), NewTransId("shop")),
                   &created)
                  .ok());
  ASSERT_TRUE(stack_->Pay(created.session_id(), "SUCCESS").ok());
  v1::Order first = OrderById("", created.session_id());
  ASSERT_FALSE(first.recurring_agreement_id().empty());

  v1::CancelRecurringRequest req;
  req.set_merchant_id(Stack::kMerchantId);
  req.set_request_id(NewTransId("cancel"));
  req.set_recurring_agreement_id(first.recurring_agreement_id());
  v1::CancelRecurringResponse resp, again;
  ASSERT_TRUE(Call(*stack_, &Stub::CancelRecurring, req, &resp).ok());
  EXPECT_EQ(resp.recurring_agreement_id(), first.recurring_agreement_id());
  ASSERT_TRUE(Call(*stack_, &Stub::CancelRecurring, req, &again, 1).ok());
  EXPECT_EQ(again.SerializeAsString(), resp.SerializeAsString());
  // A second cancellation under a new id succeeds too (already canceled).
  req.set_request_id(NewTransId("cancel-2"));
  ASSERT_TRUE(Call(*stack_, &Stub::CancelRecurring, req, &again).ok());

  v1::ChargeRecurringResponse charge;
  grpc::Status st = Call(*stack_, &Stub::ChargeRecurring,
                         Charge(NewTransId("after-cancel"), first), &charge);
  EXPECT_FALSE(st.ok() && charge.order().status() == v1::ORDER_STATUS_SUCCESS)
      << "a canceled agreement was charged";
}

// Last: it stops Redis.
TEST_F(PostpayTest, ZzRefundFailsClosedWithoutRedis) {
  v1::Order order = PaidOrder(400);
  ASSERT_TRUE(stack_->StopRedis().ok());
  v1::RefundRequest req = RefundOf(order, NewTransId("rf-noredis"), 100);
  v1::RefundResponse resp;
  grpc::Status st = Call(*stack_, &Stub::Refund, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ReasonOf(st), "IDEMPOTENCY_STORE_UNAVAILABLE");
  EXPECT_EQ(RequestsFor(*stack_, req.refund_trans_id()), 0);
  // Reads still work.
  EXPECT_EQ(OrderById(order.order_id()).balances().refunded_amount(), 0);
  ASSERT_TRUE(stack_->StartRedis().ok());
}

}  // namespace
}  // namespace payorch::testing
