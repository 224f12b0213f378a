// Exactly once toward PayKKa under real-world faults (issue 9), end to end:
// real redis-server, real paykka-sandbox driven through its fault control
// API, real payorchd. Every test asserts on the sandbox's own per-trans_id
// counters (GET /sandbox/trans-ids/{id}): how many create requests reached
// it and how many sessions/orders exist.
#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;

// payorchd's --paykka_timeout, which is also the quiet period after an
// unknown outcome.
constexpr absl::Duration kPaykkaTimeout = absl::Seconds(3);

struct TransIdCounts {
  int requests = -1;
  int create_requests = -1;
  int objects = -1;
};

class ExactlyOnceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    StackOptions options = StackOptions::Payorchd({absl::StrCat(
        "--paykka_timeout=", absl::ToInt64Seconds(kPaykkaTimeout), "s")});
    options.redis_cluster = false;  // FLUSHALL on one server
    auto stack = Stack::Start(options);
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
        stack_->SandboxCall("DELETE", "/sandbox/duplicate-trans-id").ok());
  }

  static TransIdCounts Counts(const std::string& trans_id) {
    TransIdCounts c;
    auto r = stack_->SandboxCall("GET", "/sandbox/trans-ids/" + trans_id);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return c;
    c.requests = (*r)["requests"].get<int>();
    c.create_requests = (*r)["create_requests"].get<int>();
    c.objects = (*r)["objects"].get<int>();
    return c;
  }

  static grpc::Status Create(const v1::CreateCheckoutRequest& req,
                             v1::CreateCheckoutResponse* resp,
                             absl::Duration deadline = absl::Seconds(20)) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, deadline);
    return stack_->Stub()->CreateCheckout(&ctx, req, resp);
  }
  static grpc::Status CallCharge(const v1::ChargeRecurringRequest& req,
                                 v1::ChargeRecurringResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stack_->Stub()->ChargeRecurring(&ctx, req, resp);
  }

  // Retries while payorch answers PSP_OUTCOME_UNKNOWN, sleeping the
  // RetryInfo delay it gives, for at most `budget`.
  template <typename Call>
  static grpc::Status RetryWhileUnknown(
      Call call, absl::Duration budget = absl::Seconds(15)) {
    const absl::Time end = absl::Now() + budget;
    grpc::Status st = call();
    while (!st.ok() && ReasonOf(st) == "PSP_OUTCOME_UNKNOWN" &&
           absl::Now() < end) {
      google::rpc::RetryInfo retry;
      absl::Duration delay = absl::Milliseconds(200);
      if (DetailOf(st, &retry)) {
        delay =
            std::max(delay, absl::Seconds(retry.retry_delay().seconds()) +
                                absl::Nanoseconds(retry.retry_delay().nanos()));
      }
      absl::SleepFor(std::min(delay, absl::Seconds(3)));
      st = call();
    }
    return st;
  }

  // A paid checkout (drop-in, or a first recurring payment) and its order.
  static v1::Order PaidCheckout(const v1::CreateCheckoutRequest& req) {
    v1::CreateCheckoutResponse created;
    grpc::Status st = Create(req, &created);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(stack_->Pay(created.session_id(), "SUCCESS").ok());
    v1::GetOrderRequest q;
    q.set_merchant_id(Stack::kMerchantId);
    q.set_session_id(created.session_id());
    v1::GetOrderResponse order;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_TRUE(stack_->Stub()->GetOrder(&ctx, q, &order).ok());
    return order.order();
  }
  static v1::Order FirstRecurringPayment() {
    return PaidCheckout(
        RecurringCheckout(NewTransId("first"), NewTransId("shopper")));
  }

  static absl::Status FlushRedis() {
    auto out = RunCommand(
        absl::StrCat("redis-cli -p ", stack_->redis_port(), " FLUSHALL"));
    if (!out.ok()) return out.status();
    if (out->find("OK") == std::string::npos)
      return absl::InternalError("FLUSHALL: " + *out);
    return absl::OkStatus();
  }

  static Stack* stack_;
};

Stack* ExactlyOnceTest::stack_ = nullptr;

// Finding 1: a reused keep-alive connection dies after PayKKa committed the
// create. libcurl must not re-send the POST: one create request, one
// session; the caller learns the outcome is unknown, and its retry after the
// quiet period adopts the session.
TEST_F(ExactlyOnceTest, ClosedKeepAliveAfterCommitIsSentOnceThenAdopted) {
  // A first create opens the connection the next one reuses.
  v1::CreateCheckoutResponse warm;
  ASSERT_TRUE(Create(DropInCheckout(NewTransId("warm")), &warm).ok());
  ASSERT_TRUE(stack_
                  ->SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                                {"close_after_commit_rate", 1.0},
                                {"only_reused_connections", true},
                                {"times", 1}}})
                  .ok());
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("closed-reuse"));
  v1::CreateCheckoutResponse first;
  grpc::Status st = Create(req, &first);
  if (st.ok()) {
    EXPECT_TRUE(absl::StartsWith(first.session_id(), "CS"));  // adopted
  } else {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
        << st.error_message();
    EXPECT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN") << st.error_message();
  }
  TransIdCounts c = Counts(req.trans_id());
  EXPECT_EQ(c.create_requests, 1) << "the POST was re-sent";
  EXPECT_EQ(c.objects, 1);

  ASSERT_TRUE(stack_->ClearFaults().ok());
  absl::SleepFor(kPaykkaTimeout);  // the quiet period
  v1::CreateCheckoutResponse retry;
  st = RetryWhileUnknown([&] { return Create(req, &retry); });
  ASSERT_TRUE(st.ok()) << st.error_message();
  if (!first.session_id().empty()) {
    EXPECT_EQ(retry.session_id(), first.session_id());
  }
  v1::GetSessionStatusRequest q;
  q.set_merchant_id(Stack::kMerchantId);
  q.set_trans_id(req.trans_id());
  v1::GetSessionStatusResponse session;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ASSERT_TRUE(stack_->Stub()->GetSessionStatus(&ctx, q, &session).ok());
  EXPECT_EQ(session.session_id(), retry.session_id());
  c = Counts(req.trans_id());
  EXPECT_EQ(c.create_requests, 1);
  EXPECT_EQ(c.objects, 1);
}

// Finding 2: with payorch's record lost (FLUSHALL, as a failover without
// persistence does), PayKKa's refusal of the repeated trans_id, in wordings
// payorch has never seen, is followed by a lookup that adopts the existing
// session/order; never PSP_REJECTED.
TEST_F(ExactlyOnceTest, LostRecordAndUnknownDuplicateWordingAdoptsExisting) {
  const nlohmann::json wordings[] = {
      {{"http_status", 400},
       {"ret_code", "010000"},
       {"ret_msg", "trans_id already exists"}},
      {{"http_status", 409},
       {"ret_code", "206099"},
       {"ret_msg", "Repeated merchant order number"}},
      {{"http_status", 422},
       {"ret_code", "300001"},
       {"ret_msg", "request conflicts with a previous one"}},
  };
  v1::Order first = FirstRecurringPayment();
  ASSERT_FALSE(first.token().empty());
  for (const nlohmann::json& wording : wordings) {
    SCOPED_TRACE(wording.dump());
    v1::CreateCheckoutRequest create = DropInCheckout(NewTransId("lost-cs"));
    v1::CreateCheckoutResponse created;
    ASSERT_TRUE(Create(create, &created).ok());
    v1::ChargeRecurringRequest charge =
        payorch::testing::Charge(NewTransId("lost-mit"), first);
    v1::ChargeRecurringResponse charged;
    grpc::Status st = CallCharge(charge, &charged);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(charged.order().status(), v1::ORDER_STATUS_SUCCESS);

    ASSERT_TRUE(FlushRedis().ok());
    nlohmann::json policy = wording;
    policy["mode"] = "reject";
    ASSERT_TRUE(
        stack_->SandboxCall("PUT", "/sandbox/duplicate-trans-id", policy).ok());

    v1::CreateCheckoutResponse again;
    st = Create(create, &again);
    ASSERT_TRUE(st.ok()) << ReasonOf(st) << " " << st.error_message();
    EXPECT_EQ(again.session_id(), created.session_id());
    v1::ChargeRecurringResponse charged_again;
    st = CallCharge(charge, &charged_again);
    ASSERT_TRUE(st.ok()) << ReasonOf(st) << " " << st.error_message();
    EXPECT_EQ(charged_again.order().order_id(), charged.order().order_id());
    EXPECT_EQ(charged_again.order().status(), v1::ORDER_STATUS_SUCCESS);

    TransIdCounts cs = Counts(create.trans_id());
    TransIdCounts mit = Counts(charge.trans_id());
    EXPECT_LE(cs.create_requests, 2);
    EXPECT_EQ(cs.objects, 1);
    EXPECT_LE(mit.create_requests, 2);
    EXPECT_EQ(mit.objects, 1);
  }
}

// Finding 5: an HTML 408 or 404 from a proxy in front of PayKKa (no PayKKa
// envelope) is not a rejection: nothing is stored as PSP_REJECTED, and the
// retry creates the one session.
TEST_F(ExactlyOnceTest, ProxyHtml408And404AreNotRejections) {
  for (int status : {408, 404}) {
    SCOPED_TRACE(status);
    ASSERT_TRUE(stack_
                    ->SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                                  {"proxy_status", status},
                                  {"times", 1}}})
                    .ok());
    v1::CreateCheckoutRequest req =
        DropInCheckout(NewTransId(absl::StrCat("proxy", status)));
    v1::CreateCheckoutResponse resp;
    grpc::Status st = Create(req, &resp);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << st.error_message();
    EXPECT_NE(ReasonOf(st), "PSP_REJECTED") << st.error_message();
    EXPECT_EQ(Counts(req.trans_id()).objects, 0);  // the proxy answered

    ASSERT_TRUE(stack_->ClearFaults().ok());
    st = RetryWhileUnknown([&] { return Create(req, &resp); });
    ASSERT_TRUE(st.ok()) << ReasonOf(st) << " " << st.error_message();
    EXPECT_TRUE(absl::StartsWith(resp.session_id(), "CS"));
    EXPECT_EQ(Counts(req.trans_id()).objects, 1);
    // And it is stored: a repeat replays it without reaching PayKKa.
    const int requests = Counts(req.trans_id()).requests;
    v1::CreateCheckoutResponse replay;
    ASSERT_TRUE(Create(req, &replay).ok());
    EXPECT_EQ(replay.session_id(), resp.session_id());
    EXPECT_EQ(Counts(req.trans_id()).requests, requests);
  }
}

// Finding 8: after an unknown outcome, a retry during the quiet period
// (attempt + --paykka_timeout) creates nothing and says when to come back;
// PayKKa's object is not visible yet (visibility_delay_ms). After it, the
// retry adopts the one object.
void ExpectQuietPeriodThenAdoption(Stack* stack,
                                   const v1::CreateCheckoutRequest& req,
                                   absl::Time sent) {
  v1::CreateCheckoutResponse resp;
  grpc::Status st;
  do {  // the first attempt may still hold its lease for a moment
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    st = stack->Stub()->CreateCheckout(&ctx, req, &resp);
    if (ReasonOf(st) == "REQUEST_IN_PROGRESS")
      absl::SleepFor(absl::Milliseconds(100));
  } while (ReasonOf(st) == "REQUEST_IN_PROGRESS" &&
           absl::Now() < sent + kPaykkaTimeout);
  ASSERT_LT(absl::Now(), sent + kPaykkaTimeout)
      << "too slow to retry within the quiet period";
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << st.error_message();
  EXPECT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN");
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(DetailOf(st, &retry));
  EXPECT_GT(retry.retry_delay().seconds() * 1000 +
                retry.retry_delay().nanos() / 1000000,
            0);
  auto c = stack->SandboxCall("GET", "/sandbox/trans-ids/" + req.trans_id());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)["create_requests"].get<int>(), 1);
  EXPECT_EQ((*c)["objects"].get<int>(), 1);
}

TEST_F(ExactlyOnceTest, QuietPeriodWithDelayedVisibilityThenAdoption) {
  struct Case {
    const char* name;
    nlohmann::json rule;
    absl::Duration caller_deadline;
  };
  const Case cases[] = {
      // The caller gives up (its deadline) before --paykka_timeout.
      {"timeout-after-commit",
       {{"endpoint", "/v3/payment/acq/session"},
        {"timeout_after_commit_rate", 1.0},
        {"visibility_delay_ms", 2000}},
       absl::Milliseconds(500)},
      {"close-after-commit",
       {{"endpoint", "/v3/payment/acq/session"},
        {"close_after_commit_rate", 1.0},
        {"visibility_delay_ms", 2000}},
       absl::Seconds(20)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(stack_->SetFaults({c.rule}).ok());
    v1::CreateCheckoutRequest req = DropInCheckout(NewTransId(c.name));
    const absl::Time sent = absl::Now();
    v1::CreateCheckoutResponse resp;
    grpc::Status st = Create(req, &resp, c.caller_deadline);
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
        << st.error_code() << " " << st.error_message();
    // Only the visibility delay stays: the retry must not be faulted.
    ASSERT_TRUE(stack_
                    ->SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                                  {"visibility_delay_ms", 2000}}})
                    .ok());
    ExpectQuietPeriodThenAdoption(stack_, req, sent);

    absl::SleepFor(sent + kPaykkaTimeout - absl::Now());
    st = RetryWhileUnknown([&] { return Create(req, &resp); });
    ASSERT_TRUE(st.ok()) << ReasonOf(st) << " " << st.error_message();
    EXPECT_TRUE(absl::StartsWith(resp.session_id(), "CS"));
    TransIdCounts counts = Counts(req.trans_id());
    EXPECT_EQ(counts.create_requests, 1);
    EXPECT_EQ(counts.objects, 1);
    ASSERT_TRUE(stack_->ClearFaults().ok());
  }
}

// Finding 6: a trans_id already used by a paid checkout cannot be reused by
// ChargeRecurring: TRANS_ID_REUSED from payorch's own record, with no
// upstream request for that trans_id.
TEST_F(ExactlyOnceTest,
       ChargeWithAPaidCheckoutsTransIdIsReusedWithoutUpstream) {
  v1::Order first = FirstRecurringPayment();
  v1::CreateCheckoutRequest checkout =
      DropInCheckout(NewTransId("paid-cs"), 990);
  v1::Order paid = PaidCheckout(checkout);
  ASSERT_EQ(paid.status(), v1::ORDER_STATUS_SUCCESS);
  const TransIdCounts before = Counts(checkout.trans_id());

  v1::ChargeRecurringResponse resp;
  grpc::Status st =
      CallCharge(payorch::testing::Charge(checkout.trans_id(), first), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS)
      << st.error_message();
  EXPECT_EQ(ReasonOf(st), "TRANS_ID_REUSED");
  const TransIdCounts after = Counts(checkout.trans_id());
  EXPECT_EQ(after.requests, before.requests);
  EXPECT_EQ(after.create_requests, before.create_requests);
  EXPECT_EQ(after.objects, 1);
}

}  // namespace
}  // namespace payorch::testing
