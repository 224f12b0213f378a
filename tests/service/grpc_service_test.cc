// The gRPC edge through a real channel to an in-process server, over the
// fake PayKKa and the in-memory store.

#include "service/grpc_service.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cache/in_memory_idempotency_store.h"
#include "common/errors.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/service/fake_paykka_client.h"
#include "tests/service/test_requests.h"

namespace payorch::service {
namespace {

using ::payorch::testing::FakePaykkaClient;
using ::payorch::testing::kClientKey;
using ::testing::ElementsAre;
using Op = FakePaykkaClient::Op;

class CapturingLogger : public RequestLogger {
 public:
  void Log(const RequestLogEntry& entry) override {
    absl::SleepFor(slow_);
    absl::MutexLock lock(&mu_);
    entries_.push_back(entry);
  }
  // Each Log() takes this long (a slow log sink).
  void set_slow(absl::Duration d) { slow_ = d; }
  std::vector<RequestLogEntry> entries() {
    absl::MutexLock lock(&mu_);
    return entries_;
  }

 private:
  absl::Mutex mu_;
  std::vector<RequestLogEntry> entries_;
  std::atomic<absl::Duration> slow_{absl::ZeroDuration()};
};

struct Details {
  google::rpc::Status status;
  google::rpc::ErrorInfo info;
  int error_infos = 0;
  google::rpc::BadRequest bad_request;
  bool has_retry = false;
  google::rpc::RetryInfo retry;
};

Details ParseDetails(const grpc::Status& s) {
  Details d;
  EXPECT_TRUE(d.status.ParseFromString(s.error_details()));
  for (const auto& any : d.status.details()) {
    if (any.UnpackTo(&d.info)) {
      ++d.error_infos;
    } else if (any.Is<google::rpc::BadRequest>()) {
      any.UnpackTo(&d.bad_request);
    } else if (any.UnpackTo(&d.retry)) {
      d.has_retry = true;
    }
  }
  return d;
}

class GrpcServiceTest : public ::testing::Test {
 protected:
  GrpcServiceTest()
      : store_(RealClock::Get()),
        payment_(&paykka_, &store_, testing::TestRegistry(), &RealClock::Get()),
        registry_(std::make_shared<prometheus::Registry>()),
        edge_(&payment_, &logger_, registry_) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&edge_);
    server_ = builder.BuildAndStart();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::PaymentOrchestrator::NewStub(channel_);
  }
  ~GrpcServiceTest() override {
    paykka_.ReleaseHeld();
    server_->Shutdown();
  }

  grpc::Status Checkout(const v1::CreateCheckoutRequest& r,
                        v1::CreateCheckoutResponse* out,
                        absl::Duration timeout = absl::Seconds(5)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return stub_->CreateCheckout(&ctx, r, out);
  }

  FakePaykkaClient paykka_;
  cache::InMemoryIdempotencyStore store_;
  PaymentService payment_;
  CapturingLogger logger_;
  std::shared_ptr<prometheus::Registry> registry_;
  PaymentOrchestratorService edge_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::PaymentOrchestrator::Stub> stub_;
};

TEST_F(GrpcServiceTest, CreateCheckoutOkAndLogged) {
  ASSERT_NE(port_, 0);
  v1::CreateCheckoutResponse resp;
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-request-id", "req-123");
  grpc::Status s =
      stub_->CreateCheckout(&ctx, testing::ValidCheckout(absl::Now()), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(resp.session_id().empty());
  EXPECT_EQ(resp.client_key(), kClientKey);
  auto md = ctx.GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(md, ctx.GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(md->second.data(), md->second.size()), "req-123");

  auto entries = logger_.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].method, "CreateCheckout");
  EXPECT_EQ(entries[0].request_id, "req-123");
  EXPECT_EQ(entries[0].merchant_id, testing::kMerchantId);
  EXPECT_EQ(entries[0].trans_id, "T-1");
  EXPECT_EQ(entries[0].code, "OK");
  EXPECT_EQ(entries[0].upstream_calls, 1);
  EXPECT_FALSE(entries[0].replayed);
  std::string line = ToJsonLine(entries[0]);
  EXPECT_THAT(line, ::testing::HasSubstr("\"method\":\"CreateCheckout\""));
  EXPECT_THAT(line, ::testing::Not(::testing::HasSubstr("https://")));

  // Metrics were recorded.
  bool found = false;
  for (const auto& family : registry_->Collect()) {
    if (family.name == "payorch_requests_total") found = true;
  }
  EXPECT_TRUE(found);
}

// Finding 10: the log line and metrics are written before the reactor is
// finished. After Finish() the server (and main's logger and registry) may
// be torn down; so once the caller has its answer, the line is written.
TEST_F(GrpcServiceTest, LogLineIsWrittenBeforeTheAnswerLeaves) {
  logger_.set_slow(absl::Milliseconds(300));
  v1::CreateCheckoutResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->CreateCheckout(
      &ctx, testing::ValidCheckout(absl::Now(), "T-log"), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(logger_.entries().size(), 1u);
  logger_.set_slow(absl::ZeroDuration());
}

TEST_F(GrpcServiceTest, InvalidArgumentCarriesBadRequestInTrailers) {
  v1::CreateCheckoutRequest r = testing::ValidCheckout(absl::Now());
  r.set_amount(0);
  r.mutable_bill()->set_email("no-at-sign");
  v1::CreateCheckoutResponse resp;
  grpc::Status s = Checkout(r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Details d = ParseDetails(s);
  EXPECT_EQ(d.error_infos, 1);
  EXPECT_EQ(d.info.domain(), "payorch");
  EXPECT_EQ(d.info.reason(), "INVALID_FIELD");
  ASSERT_EQ(d.bad_request.field_violations_size(), 2);
  EXPECT_EQ(d.bad_request.field_violations(0).field(), "amount");
  EXPECT_EQ(d.bad_request.field_violations(1).field(), "bill.email");
  EXPECT_EQ(paykka_.total_calls(), 0);
  EXPECT_EQ(logger_.entries().back().reason, "INVALID_FIELD");
}

TEST_F(GrpcServiceTest, ReplayIsIdenticalOverTheWire) {
  v1::CreateCheckoutRequest r = testing::ValidCheckout(absl::Now());
  v1::CreateCheckoutResponse a, b;
  ASSERT_TRUE(Checkout(r, &a).ok());
  ASSERT_TRUE(Checkout(r, &b).ok());
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_EQ(paykka_.calls(Op::kCreateSession), 1);
  EXPECT_TRUE(logger_.entries().back().replayed);
}

TEST_F(GrpcServiceTest, StoredRejectionIsReplayedByteForByte) {
  paykka_.FailNext(
      Op::kInitiate,
      MakeError(
          Reason::kPspRejected, "PayKKa rejected the request",
          {{"psp_ret_code", "010000"}, {"psp_ret_msg", "bad agreement"}}));
  v1::ChargeRecurringResponse resp;
  grpc::ClientContext c1, c2;
  grpc::Status first =
      stub_->ChargeRecurring(&c1, testing::ValidCharge(), &resp);
  grpc::Status second =
      stub_->ChargeRecurring(&c2, testing::ValidCharge(), &resp);
  EXPECT_EQ(first.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(second.error_code(), first.error_code());
  EXPECT_EQ(second.error_message(), first.error_message());
  EXPECT_EQ(second.error_details(), first.error_details());
  EXPECT_EQ(ParseDetails(first).info.reason(), "PSP_REJECTED");
  EXPECT_EQ(paykka_.calls(Op::kInitiate), 1);
}

TEST_F(GrpcServiceTest, CallerDeadlineReachesPaykka) {
  v1::GetOrderRequest r;
  r.set_merchant_id(testing::kMerchantId);
  r.set_order_id("GW1");
  v1::GetOrderResponse resp;
  grpc::ClientContext ctx;
  absl::Time deadline = absl::Now() + absl::Seconds(3);
  ctx.set_deadline(absl::ToChronoTime(deadline));
  grpc::Status s = stub_->GetOrder(&ctx, r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ParseDetails(s).info.reason(), "ORDER_NOT_FOUND");
  absl::Time seen = paykka_.last_deadline(Op::kQueryTransaction);
  EXPECT_LE(absl::AbsDuration(seen - deadline), absl::Milliseconds(200));

  // No deadline: the configured default (30 s), capped for the PayKKa call
  // by paykka_timeout (15 s by default).
  grpc::ClientContext no_deadline;
  absl::Time before = absl::Now();
  stub_->GetOrder(&no_deadline, r, &resp);
  seen = paykka_.last_deadline(Op::kQueryTransaction);
  EXPECT_GE(seen, before + absl::Seconds(15));
  EXPECT_LE(seen, absl::Now() + absl::Seconds(15));
}

TEST_F(GrpcServiceTest, InFlightDuplicateIsAbortedWithRetryInfo) {
  paykka_.Hold(Op::kCreateSession);
  v1::CreateCheckoutRequest r = testing::ValidCheckout(absl::Now());
  grpc::ClientContext ctx;
  v1::CreateCheckoutResponse first_resp;
  absl::Notification first_done;
  grpc::Status first_status;
  stub_->async()->CreateCheckout(&ctx, &r, &first_resp, [&](grpc::Status s) {
    first_status = std::move(s);
    first_done.Notify();
  });
  // Wait until the first call is parked at PayKKa (no server thread is).
  for (int i = 0; i < 500 && paykka_.held_count() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(paykka_.held_count(), 1);

  v1::CreateCheckoutResponse second_resp;
  grpc::Status second = Checkout(r, &second_resp);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::ABORTED);
  Details d = ParseDetails(second);
  EXPECT_EQ(d.info.reason(), "REQUEST_IN_PROGRESS");
  EXPECT_TRUE(d.has_retry);
  EXPECT_GT(d.retry.retry_delay().seconds(), 0);

  paykka_.ReleaseHeld();
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(first_status.ok());
  EXPECT_EQ(paykka_.calls(Op::kCreateSession), 1);
}

TEST_F(GrpcServiceTest, GetSessionStatusAndChargeWork) {
  v1::ChargeRecurringResponse charge;
  grpc::ClientContext c1;
  ASSERT_TRUE(
      stub_->ChargeRecurring(&c1, testing::ValidCharge("C-5"), &charge).ok());
  EXPECT_EQ(charge.order().status(), v1::ORDER_STATUS_SUCCESS);

  v1::GetSessionStatusRequest q;
  q.set_merchant_id(testing::kMerchantId);
  q.set_trans_id("nope");
  v1::GetSessionStatusResponse resp;
  grpc::ClientContext c2;
  grpc::Status s = stub_->GetSessionStatus(&c2, q, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ParseDetails(s).info.reason(), "SESSION_NOT_FOUND");
  std::vector<std::string> methods;
  for (const auto& e : logger_.entries()) methods.push_back(e.method);
  EXPECT_THAT(methods, ElementsAre("ChargeRecurring", "GetSessionStatus"));
}

// The edge with a CPU pool whose only worker the test parks, a queue of one
// and a clock the test moves (payorchd: --cpu_threads, --cpu_queue_depth).
class CpuQueueEdgeTest : public ::testing::Test {
 protected:
  CpuQueueEdgeTest()
      : store_(RealClock::Get()),
        payment_(&paykka_, &store_, testing::TestRegistry(), &RealClock::Get()),
        pool_(1, /*max_queued=*/1, &pool_clock_),
        edge_(&payment_, nullptr, nullptr, Options(&pool_)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&edge_);
    server_ = builder.BuildAndStart();
    stub_ = v1::PaymentOrchestrator::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
    // Park the worker: admissions wait in the queue until Unpark().
    absl::Notification started;
    pool_.Submit([this, &started] {
      started.Notify();
      gate_.WaitForNotificationWithTimeout(absl::Seconds(30));
    });
    started.WaitForNotification();
  }
  ~CpuQueueEdgeTest() override {
    if (!gate_.HasBeenNotified()) gate_.Notify();
    server_->Shutdown();
  }
  static GrpcServiceOptions Options(WorkerPool* pool) {
    GrpcServiceOptions o;
    o.cpu = pool;
    o.overload_retry_delay = absl::Milliseconds(250);
    return o;
  }
  void WaitQueued(size_t n) {
    for (int i = 0; i < 1000 && pool_.queued() != n; ++i) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(pool_.queued(), n);
  }

  FakePaykkaClient paykka_;
  cache::InMemoryIdempotencyStore store_;
  PaymentService payment_;
  FakeClock pool_clock_;  // 2026-01-01: before every real deadline
  WorkerPool pool_;
  PaymentOrchestratorService edge_;
  absl::Notification gate_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::PaymentOrchestrator::Stub> stub_;
};

TEST_F(CpuQueueEdgeTest, FullQueueIsOverloadedWithRetryInfoAndNoWork) {
  // The first call takes the only place in the queue.
  grpc::ClientContext first_ctx;
  first_ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::CreateCheckoutRequest first = testing::ValidCheckout(absl::Now());
  first.set_trans_id("T-queued");
  v1::CreateCheckoutResponse first_out;
  absl::Notification first_done;
  grpc::Status first_status;
  stub_->async()->CreateCheckout(&first_ctx, &first, &first_out,
                                 [&](grpc::Status s) {
                                   first_status = s;
                                   first_done.Notify();
                                 });
  WaitQueued(1);

  v1::CreateCheckoutRequest second = testing::ValidCheckout(absl::Now());
  second.set_trans_id("T-refused");
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::CreateCheckoutResponse out;
  grpc::Status s = stub_->CreateCheckout(&ctx, second, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  Details d = ParseDetails(s);
  EXPECT_EQ(d.info.reason(), "OVERLOADED");
  EXPECT_EQ(d.info.metadata().at("limit"), "cpu_queue");
  ASSERT_TRUE(d.has_retry);
  EXPECT_EQ(d.retry.retry_delay().nanos(), 250000000);
  // Nothing claimed, nothing sent.
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(paykka_.calls(Op::kCreateSession), 0);

  gate_.Notify();
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(first_status.ok()) << first_status.error_message();
  EXPECT_EQ(paykka_.calls(Op::kCreateSession), 1);
}

TEST_F(CpuQueueEdgeTest, DeadlinePassedWhileQueuedIsDeadlineExceededAndNoWork) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::CreateCheckoutRequest request = testing::ValidCheckout(absl::Now());
  v1::CreateCheckoutResponse out;
  absl::Notification done;
  grpc::Status status;
  stub_->async()->CreateCheckout(&ctx, &request, &out, [&](grpc::Status s) {
    status = s;
    done.Notify();
  });
  WaitQueued(1);
  // The worker comes free after the call's deadline (as the pool sees it).
  pool_clock_.Set(absl::Now() + absl::Minutes(1));
  gate_.Notify();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(ParseDetails(status).info.reason(), "DEADLINE_EXCEEDED");
  // No idempotency claim, no PayKKa request.
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(paykka_.calls(Op::kCreateSession), 0);
}

}  // namespace
}  // namespace payorch::service
