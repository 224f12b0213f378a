// The idempotency promise, end to end (docs/architecture.md "Idempotency on
// trans_id"): real redis-server, real paykka-sandbox (whose counters say how
// many sessions/charges PayKKa created per trans_id), real payorchd processes.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/test_util.h"
#include "tests/integration/variant_flow.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;

int CreatesFor(const Stack& stack, const std::string& trans_id) {
  auto c = stack.Counters();
  return c.ok() ? (*c)["creates_by_trans_id"].value(trans_id, 0) : -1;
}
int ChargesFor(const Stack& stack, const std::string& trans_id) {
  auto c = stack.Counters();
  return c.ok() ? (*c)["charges_by_trans_id"].value(trans_id, 0) : -1;
}
int InFlight(const Stack& stack) {
  auto c = stack.Counters();
  return c.ok() ? (*c)["in_flight"].get<int>() : -1;
}

grpc::Status CreateOn(const Stack& stack, int replica,
                      const v1::CreateCheckoutRequest& req,
                      v1::CreateCheckoutResponse* resp,
                      absl::Duration d = absl::Seconds(20)) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, d);
  return stack.Stub(replica)->CreateCheckout(&ctx, req, resp);
}

grpc::Status ChargeOn(const Stack& stack, const v1::ChargeRecurringRequest& req,
                      v1::ChargeRecurringResponse* resp) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  return stack.Stub()->ChargeRecurring(&ctx, req, resp);
}

// Fires `n` identical CreateCheckout calls at once, spread over the replicas;
// returns each call's status and response.
struct Result {
  grpc::Status status;
  v1::CreateCheckoutResponse resp;
};
std::vector<Result> Burst(const Stack& stack,
                          const v1::CreateCheckoutRequest& req, int n,
                          int replicas) {
  std::vector<std::unique_ptr<v1::PaymentOrchestrator::Stub>> stubs;
  for (int r = 0; r < replicas; ++r) stubs.push_back(stack.Stub(r));
  std::vector<Result> results(n);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  absl::Mutex mu;
  int done = 0;
  for (int i = 0; i < n; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    SetDeadline(contexts.back().get(), absl::Seconds(30));
    stubs[i % replicas]->async()->CreateCheckout(
        contexts.back().get(), &req, &results[i].resp, [&, i](grpc::Status s) {
          results[i].status = std::move(s);
          absl::MutexLock lock(&mu);
          ++done;
        });
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int* d) { return *d > 0; }, &done));
  auto all = [&] { return done == n; };
  mu.Await(absl::Condition(&all));
  return results;
}

// Each answer is the one session or REQUEST_IN_PROGRESS; at least one is OK.
void ExpectOneSession(const std::vector<Result>& results,
                      std::string* session_id) {
  std::set<std::string> sessions;
  for (const auto& r : results) {
    if (r.status.ok()) {
      sessions.insert(r.resp.session_id());
    } else {
      EXPECT_EQ(r.status.error_code(), grpc::StatusCode::ABORTED)
          << r.status.error_message();
      EXPECT_EQ(ReasonOf(r.status), "REQUEST_IN_PROGRESS");
      google::rpc::RetryInfo retry;
      EXPECT_TRUE(DetailOf(r.status, &retry));
    }
  }
  ASSERT_EQ(sessions.size(), 1u);
  *session_id = *sessions.begin();
}

class IdempotencyTest : public ::testing::Test {
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
  void SetUp() override { ASSERT_TRUE(stack_->ClearFaults().ok()); }

  // A paid first recurring payment: its order has the token and agreement.
  v1::Order FirstRecurringPayment() {
    v1::CreateCheckoutResponse created;
    EXPECT_TRUE(
        CreateOn(*stack_, 0,
                 RecurringCheckout(NewTransId("first"), NewTransId("shop")),
                 &created)
            .ok());
    EXPECT_TRUE(stack_->Pay(created.session_id(), "SUCCESS").ok());
    v1::GetOrderRequest req;
    req.set_merchant_id(Stack::kMerchantId);
    req.set_session_id(created.session_id());
    v1::GetOrderResponse order;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_TRUE(stack_->Stub()->GetOrder(&ctx, req, &order).ok());
    return order.order();
  }

  static Stack* stack_;
};

Stack* IdempotencyTest::stack_ = nullptr;

TEST_F(IdempotencyTest,
       ConcurrentIdenticalCreatesOverTwoReplicasMakeOneSession) {
  ASSERT_TRUE(stack_
                  ->SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                                {"latency_ms", 300}}})
                  .ok());
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("burst"));
  std::vector<Result> results = Burst(*stack_, req, 200, 2);
  std::string session_id;
  ExpectOneSession(results, &session_id);
  EXPECT_EQ(CreatesFor(*stack_, req.trans_id()), 1);

  // After completion, a retry on either replica gets the same session.
  for (int r = 0; r < 2; ++r) {
    v1::CreateCheckoutResponse again;
    ASSERT_TRUE(CreateOn(*stack_, r, req, &again).ok());
    EXPECT_EQ(again.session_id(), session_id);
  }
  EXPECT_EQ(CreatesFor(*stack_, req.trans_id()), 1);
}

TEST_F(IdempotencyTest, ConcurrentIdenticalChargesMakeOneCharge) {
  v1::Order first = FirstRecurringPayment();
  ASSERT_FALSE(first.token().empty());
  ASSERT_TRUE(
      stack_
          ->SetFaults({{{"endpoint", "/v3/payment/acq"}, {"latency_ms", 300}}})
          .ok());
  v1::ChargeRecurringRequest req = Charge(NewTransId("chargeburst"), first);
  constexpr int kCalls = 200;
  std::vector<v1::ChargeRecurringResponse> resp(kCalls);
  std::vector<grpc::Status> status(kCalls);
  std::vector<std::unique_ptr<grpc::ClientContext>> ctx;
  auto stub0 = stack_->Stub(0), stub1 = stack_->Stub(1);
  absl::Mutex mu;
  int done = 0;
  for (int i = 0; i < kCalls; ++i) {
    ctx.push_back(std::make_unique<grpc::ClientContext>());
    SetDeadline(ctx.back().get(), absl::Seconds(30));
    (i % 2 ? stub1 : stub0)
        ->async()
        ->ChargeRecurring(ctx.back().get(), &req, &resp[i],
                          [&, i](grpc::Status s) {
                            status[i] = std::move(s);
                            absl::MutexLock lock(&mu);
                            ++done;
                          });
  }
  {
    absl::MutexLock lock(&mu);
    auto all = [&] { return done == kCalls; };
    mu.Await(absl::Condition(&all));
  }
  std::set<std::string> orders;
  for (int i = 0; i < kCalls; ++i) {
    if (status[i].ok()) {
      orders.insert(resp[i].order().order_id());
    } else {
      EXPECT_EQ(ReasonOf(status[i]), "REQUEST_IN_PROGRESS")
          << status[i].error_message();
    }
  }
  EXPECT_EQ(orders.size(), 1u);
  EXPECT_EQ(ChargesFor(*stack_, req.trans_id()), 1);
  v1::ChargeRecurringResponse again;
  ASSERT_TRUE(ChargeOn(*stack_, req, &again).ok());
  EXPECT_EQ(again.order().order_id(), *orders.begin());
  EXPECT_EQ(ChargesFor(*stack_, req.trans_id()), 1);
}

TEST_F(IdempotencyTest,
       SameTransIdWithDifferentContentIsRejectedWithoutUpstreamCall) {
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("mismatch"));
  v1::CreateCheckoutResponse resp;
  ASSERT_TRUE(CreateOn(*stack_, 0, req, &resp).ok());
  auto before = stack_->Counters();
  ASSERT_TRUE(before.ok());
  req.set_amount(req.amount() + 1);
  grpc::Status st = CreateOn(*stack_, 1, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(ReasonOf(st), "TRANS_ID_REUSED");
  auto after = stack_->Counters();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)["requests_by_trans_id"].value(req.trans_id(), 0),
            (*before)["requests_by_trans_id"].value(req.trans_id(), 0));
}

TEST_F(IdempotencyTest, DeclinedChargeIsStoredAndReplayedByteForByte) {
  v1::Order first = FirstRecurringPayment();
  ASSERT_TRUE(
      stack_
          ->SandboxCall("POST",
                        "/sandbox/tokens/" + first.token() + "/next-outcome",
                        {{"outcome", "FAILURE"},
                         {"error_code", "2099"},
                         {"error_description", "Invalid Card"}})
          .ok());
  v1::ChargeRecurringRequest req = Charge(NewTransId("declined"), first);
  v1::ChargeRecurringResponse a, b;
  ASSERT_TRUE(ChargeOn(*stack_, req, &a).ok());
  EXPECT_EQ(a.order().status(), v1::ORDER_STATUS_FAILURE);
  EXPECT_EQ(a.order().error_code(), "2099");
  ASSERT_TRUE(ChargeOn(*stack_, req, &b).ok());
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_EQ(ChargesFor(*stack_, req.trans_id()), 1);
}

TEST_F(IdempotencyTest, InvalidRequestStoresNothing) {
  v1::CreateCheckoutRequest req =
      DropInCheckout(NewTransId("invalid-then-valid"));
  v1::CreateCheckoutRequest bad = req;
  bad.set_currency("XX");
  v1::CreateCheckoutResponse resp;
  EXPECT_EQ(CreateOn(*stack_, 0, bad, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto keys = stack_->RedisKeys("*" + req.trans_id() + "*");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(*keys, "");
  // The same trans_id with valid content then executes normally.
  grpc::Status st = CreateOn(*stack_, 0, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message() << stack_->PayorchdLog();
  EXPECT_EQ(CreatesFor(*stack_, req.trans_id()), 1);
}

TEST_F(IdempotencyTest, TimeoutAfterCommitIsUnknownThenRetryAdoptsTheSession) {
  ASSERT_TRUE(stack_
                  ->SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                                {"timeout_after_commit_rate", 1.0}}})
                  .ok());
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("commit-timeout"));
  v1::CreateCheckoutResponse resp;
  grpc::Status st = CreateOn(*stack_, 0, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN");
  EXPECT_EQ(CreatesFor(*stack_, req.trans_id()), 1);  // PayKKa did create it

  ASSERT_TRUE(stack_->ClearFaults().ok());
  st = CreateOn(*stack_, 1, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(absl::StartsWith(resp.session_id(), "CS"));
  EXPECT_EQ(resp.client_key(), Stack::kClientKey);
  EXPECT_EQ(CreatesFor(*stack_, req.trans_id()),
            1);  // adopted, not created again
  // And it is the session PayKKa has for this trans_id.
  v1::GetSessionStatusRequest q;
  q.set_merchant_id(Stack::kMerchantId);
  q.set_trans_id(req.trans_id());
  v1::GetSessionStatusResponse session;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ASSERT_TRUE(stack_->Stub()->GetSessionStatus(&ctx, q, &session).ok());
  EXPECT_EQ(session.session_id(), resp.session_id());
}

// payorchd configured for a PayKKa environment that answers Query Session at
// another path, signs response bodies only and words its duplicate refusal
// differently: creating, adopting after a timeout-after-commit and querying
// by trans_id still make exactly one session. Without the settings every
// answer fails verification (the create below would be UNAVAILABLE).
TEST(PaykkaVariantTest, MatchingSettingsKeepTheIdempotencyFlow) {
  StackOptions options = StackOptions::Payorchd({"--paykka_timeout=2s"}, 2);
  options.sandbox_args = {"--query_session_path=/v3/payment/acq/session/get",
                          "--response_sign_recipe=body",
                          "--duplicate_trans_id_code=206099",
                          "--duplicate_trans_id_msg=trans_id already used"};
  options.merchant_settings = {
      {"query_session_path", "/v3/payment/acq/session/get"},
      {"response_sign_recipe", "body"},
      {"duplicate_trans_id_codes", {"206099"}}};
  auto stack = Stack::Start(options);
  ASSERT_TRUE(stack.ok()) << stack.status();
  ExpectCheckoutAdoptionFlow(**stack, 2, "variant");
}

TEST_F(IdempotencyTest, TimeoutAfterCommitOnChargeThenRetryAdoptsTheCharge) {
  v1::Order first = FirstRecurringPayment();
  ASSERT_TRUE(stack_
                  ->SetFaults({{{"endpoint", "/v3/payment/acq"},
                                {"timeout_after_commit_rate", 1.0}}})
                  .ok());
  v1::ChargeRecurringRequest req = Charge(NewTransId("charge-timeout"), first);
  v1::ChargeRecurringResponse resp;
  grpc::Status st = ChargeOn(*stack_, req, &resp);
  EXPECT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN");
  ASSERT_TRUE(stack_->ClearFaults().ok());
  st = ChargeOn(*stack_, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.order().status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_EQ(ChargesFor(*stack_, req.trans_id()), 1);
}

TEST_F(IdempotencyTest, RedisDownFailsMutatingCallsClosedWhileQueriesWork) {
  v1::CreateCheckoutRequest paid = DropInCheckout(NewTransId("before-outage"));
  v1::CreateCheckoutResponse created;
  ASSERT_TRUE(CreateOn(*stack_, 0, paid, &created).ok());

  ASSERT_TRUE(stack_->StopRedis().ok());
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("outage"));
  v1::CreateCheckoutResponse resp;
  grpc::Status st = CreateOn(*stack_, 0, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ReasonOf(st), "IDEMPOTENCY_STORE_UNAVAILABLE");
  EXPECT_EQ(CreatesFor(*stack_, req.trans_id()), 0);
  // Queries do not need Redis.
  v1::GetSessionStatusRequest q;
  q.set_merchant_id(Stack::kMerchantId);
  q.set_session_id(created.session_id());
  v1::GetSessionStatusResponse session;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  EXPECT_TRUE(stack_->Stub()->GetSessionStatus(&ctx, q, &session).ok());
  // The mutating health service follows the store; readiness does not.
  bool mutating_down = false;
  for (int i = 0; i < 50 && !mutating_down; ++i) {
    mutating_down = HealthOf(*stack_, 0, kMutatingHealth) ==
                    grpc::health::v1::HealthCheckResponse::NOT_SERVING;
    if (!mutating_down) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(mutating_down);
  auto readyz = RunCommand("curl -s -o /dev/null -w '%{http_code}' http://" +
                           stack_->http_target() + "/readyz");
  EXPECT_TRUE(readyz.ok() && *readyz == "200");
  EXPECT_EQ(HealthOf(*stack_), grpc::health::v1::HealthCheckResponse::SERVING);

  // Redis comes back: payorchd reconnects by itself.
  ASSERT_TRUE(stack_->StartRedis().ok());
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {
    st = CreateOn(*stack_, 0, req, &resp);
    recovered = st.ok();
    if (!recovered) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(recovered) << st.error_message();
  EXPECT_EQ(CreatesFor(*stack_, req.trans_id()), 1);
  bool serving = false;
  for (int i = 0; i < 50 && !serving; ++i) {
    serving = HealthOf(*stack_, 0, kMutatingHealth) ==
              grpc::health::v1::HealthCheckResponse::SERVING;
    if (!serving) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(serving);
}

// A holder crashes (SIGKILL) while its create is in flight at PayKKa; after
// its lease expires the retry reconciles with PayKKa: exactly one create.
TEST(CrashTest, KilledHolderIsReconciledAfterLeaseExpiry) {
  auto stack = Stack::Start(
      StackOptions::Payorchd({"--lease=2s", "--paykka_timeout=5s"}));
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack& s = **stack;
  ASSERT_TRUE(s.SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                            {"latency_ms", 1000}}})
                  .ok());
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("crash"));
  {
    auto stub = s.Stub();
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(10));
    v1::CreateCheckoutResponse resp;
    absl::Notification done;
    stub->async()->CreateCheckout(&ctx, &req, &resp,
                                  [&](grpc::Status) { done.Notify(); });
    for (int i = 0; i < 200 && InFlight(s) < 1; ++i)
      absl::SleepFor(absl::Milliseconds(10));
    ASSERT_GE(InFlight(s), 1);
    ASSERT_TRUE(s.KillPayorchd(0, SIGKILL).ok());
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  ASSERT_TRUE(s.StartPayorchd(0).ok());
  ASSERT_TRUE(s.ClearFaults().ok());
  v1::CreateCheckoutResponse resp;
  grpc::Status st;
  absl::Time give_up = absl::Now() + absl::Seconds(15);
  do {
    st = CreateOn(s, 0, req, &resp);
    if (ReasonOf(st) == "REQUEST_IN_PROGRESS")
      absl::SleepFor(absl::Milliseconds(200));
  } while (ReasonOf(st) == "REQUEST_IN_PROGRESS" && absl::Now() < give_up);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(CreatesFor(s, req.trans_id()), 1);
  v1::CreateCheckoutResponse again;
  ASSERT_TRUE(CreateOn(s, 0, req, &again).ok());
  EXPECT_EQ(again.session_id(), resp.session_id());
}

// A holder slower than its lease (here: its process is paused with SIGSTOP
// after sending the create) loses the record to a successor, which
// reconciles with PayKKa and completes. When the old holder wakes up, its
// write is refused: the successor's record stands and one session exists.
TEST(LeaseTest, SlowHolderCannotOverwriteItsSuccessor) {
  auto stack = Stack::Start(StackOptions::Payorchd({"--lease=2s"}, 2));
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack& s = **stack;
  ASSERT_TRUE(s.SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                            {"latency_ms", 300}}})
                  .ok());
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId("slow"));
  auto stub = s.Stub(0);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(30));
  v1::CreateCheckoutResponse first;
  grpc::Status first_status;
  absl::Notification first_done;
  stub->async()->CreateCheckout(&ctx, &req, &first, [&](grpc::Status st) {
    first_status = std::move(st);
    first_done.Notify();
  });
  for (int i = 0; i < 200 && InFlight(s) < 1; ++i)
    absl::SleepFor(absl::Milliseconds(5));
  ASSERT_GE(InFlight(s), 1);
  ASSERT_EQ(kill(s.payorchd_pid(0), SIGSTOP), 0);
  // The create completes at PayKKa and the holder's lease runs out.
  absl::SleepFor(absl::Milliseconds(2500));
  ASSERT_EQ(CreatesFor(s, req.trans_id()), 1);

  v1::CreateCheckoutResponse second;
  grpc::Status st = CreateOn(s, 1, req, &second);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(kill(s.payorchd_pid(0), SIGCONT), 0);
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  // The old holder answers with what it saw (the same session) or, if its
  // PayKKa call timed out while paused, "outcome unknown"; either way it did
  // not overwrite the successor's record.
  if (first_status.ok()) {
    EXPECT_EQ(first.session_id(), second.session_id());
  } else {
    EXPECT_EQ(ReasonOf(first_status), "PSP_OUTCOME_UNKNOWN")
        << first_status.error_message();
  }
  auto before = s.Counters();
  ASSERT_TRUE(before.ok());
  for (int r = 0; r < 2; ++r) {
    v1::CreateCheckoutResponse replay;
    ASSERT_TRUE(CreateOn(s, r, req, &replay).ok());
    EXPECT_EQ(replay.session_id(), second.session_id());
  }
  auto after = s.Counters();
  ASSERT_TRUE(after.ok());
  // Replays came from the stored record: no new PayKKa request at all.
  EXPECT_EQ((*after)["requests_by_trans_id"].value(req.trans_id(), 0),
            (*before)["requests_by_trans_id"].value(req.trans_id(), 0));
  EXPECT_EQ(CreatesFor(s, req.trans_id()), 1);
}

}  // namespace
}  // namespace payorch::testing
