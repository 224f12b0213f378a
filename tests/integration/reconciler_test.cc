// Finding 9 end to end: an outcome that stays unknown because the caller never
// retries is settled by payorchd's background reconciler. Real redis-server,
// paykka-sandbox (whose counters say what PayKKa holds) and two payorchd
// replicas with short leases and scan intervals.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;

// lease 3 s (so grace 3 s), PayKKa timeout 1 s: quiet period 4 s after the
// attempt; a pass every 200 ms; the default backoff cap (30 s).
constexpr const char* kLease = "--lease=3s";
constexpr const char* kPaykkaTimeout = "--paykka_timeout=1s";
constexpr const char* kInterval = "--reconcile_interval=200ms";

class ReconcilerEndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto stack = Stack::Start(
        StackOptions::Payorchd({kLease, kPaykkaTimeout, kInterval}, 2));
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = stack->release();
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(stack_->ClearFaults().ok()); }

  static int Counter(const char* name, const std::string& trans_id) {
    auto c = stack_->Counters();
    return c.ok() ? (*c)[name].value(trans_id, 0) : -1;
  }

  // payorch_reconciler_settled_total{result=...} summed over the replicas.
  static int Settled(const std::string& result) {
    int total = 0;
    for (int r = 0; r < 2; ++r) {
      auto m =
          RunCommand("curl -sf http://" + stack_->http_target(r) + "/metrics");
      if (!m.ok()) continue;
      const std::string needle = absl::StrCat(
          "payorch_reconciler_settled_total{result=\"", result, "\"} ");
      size_t at = m->find(needle);
      if (at != std::string::npos) {
        total += std::atoi(m->c_str() + at + needle.size());
      }
    }
    return total;
  }

  // Polls until `settled(result)` reaches `n`; the time it took.
  static absl::Duration WaitSettled(const std::string& result, int n,
                                    absl::Duration timeout) {
    const absl::Time start = absl::Now();
    while (Settled(result) < n && absl::Now() - start < timeout) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::Now() - start;
  }

  v1::Order FirstRecurringPayment() {
    v1::CreateCheckoutResponse created;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_TRUE(stack_->Stub()
                    ->CreateCheckout(&ctx,
                                     RecurringCheckout(NewTransId("first"),
                                                       NewTransId("shop")),
                                     &created)
                    .ok());
    EXPECT_TRUE(stack_->Pay(created.session_id(), "SUCCESS").ok());
    v1::GetOrderRequest req;
    req.set_merchant_id(Stack::kMerchantId);
    req.set_session_id(created.session_id());
    v1::GetOrderResponse order;
    grpc::ClientContext octx;
    SetDeadline(&octx);
    EXPECT_TRUE(stack_->Stub()->GetOrder(&octx, req, &order).ok());
    return order.order();
  }

  static grpc::Status ChargeOn(int replica,
                               const v1::ChargeRecurringRequest& req,
                               v1::ChargeRecurringResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stack_->Stub(replica)->ChargeRecurring(&ctx, req, resp);
  }

  static Stack* stack_;
};

Stack* ReconcilerEndToEnd::stack_ = nullptr;

TEST_F(ReconcilerEndToEnd, LostChargeAnswerIsAdoptedWithNoCallerRetry) {
  v1::Order first = FirstRecurringPayment();
  ASSERT_FALSE(first.token().empty());
  const int adopted_before = Settled("adopted");
  ASSERT_TRUE(stack_
                  ->SetFaults({{{"endpoint", "/v3/payment/acq"},
                                {"timeout_after_commit_rate", 1.0}}})
                  .ok());
  v1::ChargeRecurringRequest req = Charge(NewTransId("lost-charge"), first);
  v1::ChargeRecurringResponse resp;
  grpc::Status st = ChargeOn(0, req, &resp);
  ASSERT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN") << st.error_message();
  ASSERT_EQ(Counter("charges_by_trans_id", req.trans_id()), 1);
  ASSERT_TRUE(stack_->ClearFaults().ok());

  // Nobody retries; the reconciler asks PayKKa and adopts the charge.
  absl::Duration took =
      WaitSettled("adopted", adopted_before + 1, absl::Seconds(60));
  std::printf("settled %s after PayKKa answered again\n",
              absl::FormatDuration(took).c_str());
  ASSERT_GE(Settled("adopted"), adopted_before + 1);
  EXPECT_EQ(Counter("charges_by_trans_id", req.trans_id()), 1);

  // A caller retrying later gets the settled answer from the record: no
  // PayKKa call at all.
  const int requests = Counter("requests_by_trans_id", req.trans_id());
  st = ChargeOn(1, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.order().trans_id(), req.trans_id());
  EXPECT_EQ(resp.order().status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_EQ(Counter("requests_by_trans_id", req.trans_id()), requests);
  EXPECT_EQ(Counter("charges_by_trans_id", req.trans_id()), 1);
}

TEST_F(ReconcilerEndToEnd, SettlesWithinTwoMinutesOfQueriesWorkingAgain) {
  v1::Order first = FirstRecurringPayment();
  const int adopted_before = Settled("adopted");
  // The charge's answer is lost, and queries fail (503) for a while.
  ASSERT_TRUE(stack_
                  ->SetFaults({{{"endpoint", "/v3/payment/acq"},
                                {"timeout_after_commit_rate", 1.0}},
                               {{"endpoint", "/v3/payment/acq/query"},
                                {"http_status", 503}}})
                  .ok());
  v1::ChargeRecurringRequest req = Charge(NewTransId("outage-charge"), first);
  v1::ChargeRecurringResponse resp;
  grpc::Status st = ChargeOn(0, req, &resp);
  ASSERT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN") << st.error_message();
  // The reconciler keeps asking (and backing off) while PayKKa fails.
  absl::SleepFor(absl::Seconds(15));
  EXPECT_EQ(Settled("adopted"), adopted_before);
  EXPECT_GT(Counter("requests_by_trans_id", req.trans_id()), 2);
  ASSERT_TRUE(stack_->ClearFaults().ok());
  absl::Duration took =
      WaitSettled("adopted", adopted_before + 1, absl::Minutes(2));
  std::printf("settled %s after PayKKa answered queries again\n",
              absl::FormatDuration(took).c_str());
  EXPECT_GE(Settled("adopted"), adopted_before + 1);
  EXPECT_EQ(Counter("charges_by_trans_id", req.trans_id()), 1);
}

TEST_F(ReconcilerEndToEnd, AttemptThatNeverReachedPaykkaIsReleasedAfterQuiet) {
  const int released_before = Settled("not_found");
  // A reset before processing: payorch cannot know, PayKKa has nothing.
  ASSERT_TRUE(stack_
                  ->SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                                {"reset_rate", 1.0}}})
                  .ok());
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("never"));
  v1::CreateCheckoutResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::Status st = stack_->Stub()->CreateCheckout(&ctx, req, &resp);
  ASSERT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN") << st.error_message();
  ASSERT_TRUE(stack_->ClearFaults().ok());
  const absl::Time unknown_at = absl::Now();
  WaitSettled("not_found", released_before + 1, absl::Seconds(60));
  ASSERT_GE(Settled("not_found"), released_before + 1);
  // Not before the quiet period (lease + PayKKa timeout after the attempt).
  EXPECT_GE(absl::Now() - unknown_at, absl::Seconds(3));
  EXPECT_EQ(Counter("creates_by_trans_id", req.trans_id()), 0);
  // The record is gone: a retry creates the session once.
  grpc::ClientContext retry;
  SetDeadline(&retry);
  st = stack_->Stub(1)->CreateCheckout(&retry, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(Counter("creates_by_trans_id", req.trans_id()), 1);
}

}  // namespace
}  // namespace payorch::testing
