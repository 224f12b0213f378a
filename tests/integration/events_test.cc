// Webhooks become events, and events reach watchers on any replica: two real
// payorchd replicas, a real redis-server (or, under the "cluster." prefix, a
// 6-node Redis Cluster) and the real sandbox, whose webhooks go to replica 0
// while the watchers read from replica 1.

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/stack.h"
#include "tests/integration/test_util.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/tls.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;

// Reads one server stream on its own thread; messages are taken with Next().
template <typename Response>
class Reader {
 public:
  template <typename Open>
  explicit Reader(Open open) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    reader_ = open(&context_);
    thread_ = std::thread([this] {
      Response r;
      while (reader_->Read(&r)) {
        absl::MutexLock lock(&mu_);
        got_.push_back({r, absl::Now()});
      }
      grpc::Status st = reader_->Finish();
      absl::MutexLock lock(&mu_);
      status_ = st;
      done_ = true;
    });
  }
  ~Reader() {
    context_.TryCancel();
    thread_.join();
  }

  // The next message and when it arrived; false on timeout or end.
  bool Next(Response* out, absl::Time* at = nullptr,
            absl::Duration timeout = absl::Seconds(15)) {
    absl::MutexLock lock(&mu_);
    auto ready = [this] { return !got_.empty() || done_; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    if (got_.empty()) return false;
    *out = got_.front().first;
    if (at != nullptr) *at = got_.front().second;
    got_.pop_front();
    return true;
  }
  // The stream's final status (waits for it).
  grpc::Status Status(absl::Duration timeout = absl::Seconds(15)) {
    absl::MutexLock lock(&mu_);
    auto done = [this] { return done_; };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return done_ ? status_
                 : grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "open");
  }
  void Cancel() { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<Response>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::deque<std::pair<Response, absl::Time>> got_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

using EventReader = Reader<v1::MerchantEvent>;
using OrderReader = Reader<v1::WatchOrderResponse>;

class EventsTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    auto stack = Stack::Start(StackOptions::Payorchd({}, /*replicas=*/2));
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
  }
  static void TearDownTestSuite() { stack_.reset(); }

  static std::unique_ptr<EventReader> WatchEvents(Stack* stack,
                                                  const std::string& token,
                                                  int replica = 1) {
    v1::WatchMerchantEventsRequest req;
    req.set_merchant_id(Stack::kMerchantId);
    req.set_resume_token(token);
    auto stub = stack->Stub(replica);
    return std::make_unique<EventReader>(
        [stub = std::shared_ptr<v1::PaymentOrchestrator::Stub>(std::move(stub)),
         req](grpc::ClientContext* ctx) {
          return stub->WatchMerchantEvents(ctx, req);
        });
  }

  static std::unique_ptr<OrderReader> WatchSession(const std::string& session,
                                                   int replica = 1) {
    v1::WatchOrderRequest req;
    req.set_merchant_id(Stack::kMerchantId);
    req.set_session_id(session);
    auto stub =
        std::shared_ptr<v1::PaymentOrchestrator::Stub>(stack_->Stub(replica));
    return std::make_unique<OrderReader>([stub, req](grpc::ClientContext* ctx) {
      return stub->WatchOrder(ctx, req);
    });
  }

  // A checkout whose webhooks go to replica 0.
  static v1::CreateCheckoutResponse Checkout(
      Stack* stack, const std::string& prefix,
      absl::Duration expires_in = absl::Minutes(30)) {
    v1::CreateCheckoutRequest req = DropInCheckout(NewTransId(prefix));
    req.set_notify_url("http://" + stack->webhook_target(0) +
                       "/webhooks/paykka");
    *req.mutable_expire_time() = TimestampIn(expires_in);
    v1::CreateCheckoutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status st = stack->Stub(0)->CreateCheckout(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  // Pays a new checkout; its order_id (after the payment).
  static std::string PayNew(Stack* stack, const std::string& prefix) {
    v1::CreateCheckoutResponse c = Checkout(stack, prefix);
    auto paid = stack->Pay(c.session_id(), "SUCCESS");
    EXPECT_TRUE(paid.ok()) << paid.status();
    return paid.ok() ? paid->value("order_id", "") : "";
  }

  // The next event of `reader` for a payment event of `order_id`, skipping
  // others (counted in `skipped`).
  static bool NextFor(EventReader* reader, const std::string& order_id,
                      v1::MerchantEvent* out) {
    while (reader->Next(out)) {
      if (out->order().order_id() == order_id) return true;
    }
    return false;
  }

  static std::unique_ptr<Stack> stack_;
};

std::unique_ptr<Stack> EventsTest::stack_;

TEST_F(EventsTest, WatcherOnAnotherReplicaGetsSuccessRightAfterTheWebhook) {
  v1::CreateCheckoutResponse c = Checkout(stack_.get(), "watch");
  auto watcher = WatchSession(c.session_id());
  v1::WatchOrderResponse first;
  ASSERT_TRUE(watcher->Next(&first));
  // Not paid yet: the session comes first.
  EXPECT_FALSE(first.has_order());
  EXPECT_EQ(first.session().session_id(), c.session_id());
  EXPECT_TRUE(first.resume_token().empty());

  auto paid = stack_->Pay(c.session_id(), "SUCCESS");
  ASSERT_TRUE(paid.ok()) << paid.status();
  const absl::Time paid_at = absl::Now();  // the webhook leaves after this
  v1::WatchOrderResponse next;
  absl::Time got_at;
  ASSERT_TRUE(watcher->Next(&next, &got_at));
  EXPECT_EQ(next.order().status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_EQ(next.order().order_id(), paid->value("order_id", ""));
  EXPECT_FALSE(next.resume_token().empty());
  const absl::Duration latency = got_at - paid_at;
  std::cout << "payment -> event on the other replica: "
            << absl::FormatDuration(latency) << "\n";
  RecordProperty("webhook_to_event_ms",
                 static_cast<int>(absl::ToInt64Milliseconds(latency)));
  EXPECT_LT(latency, absl::Seconds(1));
  // SUCCESS is final: the stream ends OK.
  EXPECT_TRUE(watcher->Status().ok()) << watcher->Status().error_message();
  // The webhook went to replica 0 (the watcher is on replica 1), which
  // acknowledged it once the event was stored.
  bool delivered = false;
  for (int i = 0; i < 100 && !delivered; ++i) {
    auto hooks = stack_->SandboxCall("GET", "/sandbox/webhooks");
    ASSERT_TRUE(hooks.ok());
    for (const auto& d : *hooks) {
      if (d.value("order_id", "") == next.order().order_id()) {
        delivered = d.value("delivered", false) &&
                    d.value("url", "").find(stack_->webhook_target(0)) !=
                        std::string::npos;
      }
    }
    if (!delivered) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(delivered);
}

TEST_F(EventsTest, WatchOrderOfAFinishedOrderSendsItsStateAndEnds) {
  const std::string order_id = PayNew(stack_.get(), "done");
  v1::WatchOrderRequest req;
  req.set_merchant_id(Stack::kMerchantId);
  req.set_order_id(order_id);
  auto stub = std::shared_ptr<v1::PaymentOrchestrator::Stub>(stack_->Stub(1));
  OrderReader reader([stub, req](grpc::ClientContext* ctx) {
    return stub->WatchOrder(ctx, req);
  });
  v1::WatchOrderResponse first;
  ASSERT_TRUE(reader.Next(&first));
  EXPECT_EQ(first.order().status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_TRUE(reader.Status().ok());
}

TEST_F(EventsTest, ResumeWithTheLastTokenGetsExactlyTheMissedEvents) {
  auto watcher = WatchEvents(stack_.get(), "");
  const std::string a = PayNew(stack_.get(), "resume-a");
  v1::MerchantEvent ea;
  ASSERT_TRUE(NextFor(watcher.get(), a, &ea));
  watcher.reset();  // disconnects

  const std::string b = PayNew(stack_.get(), "resume-b");
  const std::string c = PayNew(stack_.get(), "resume-c");
  // Let both events be recorded while nobody watches.
  absl::SleepFor(absl::Seconds(1));
  auto resumed = WatchEvents(stack_.get(), ea.resume_token());
  v1::MerchantEvent e1, e2;
  ASSERT_TRUE(resumed->Next(&e1));
  ASSERT_TRUE(resumed->Next(&e2));
  EXPECT_EQ(e1.order().order_id(), b);
  EXPECT_EQ(e2.order().order_id(), c);
  EXPECT_EQ(e1.type(), v1::EVENT_TYPE_PAYMENT);
  EXPECT_EQ(e2.order().status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_LT(ea.resume_token(), e1.resume_token());
  // And then live: the next event is the next payment, nothing in between.
  const std::string d = PayNew(stack_.get(), "resume-d");
  v1::MerchantEvent e3;
  ASSERT_TRUE(resumed->Next(&e3));
  EXPECT_EQ(e3.order().order_id(), d);
}

TEST_F(EventsTest, DuplicateWebhookDeliveryMakesOneEvent) {
  auto watcher = WatchEvents(stack_.get(), "");
  const std::string a = PayNew(stack_.get(), "dup");
  v1::MerchantEvent ea;
  ASSERT_TRUE(NextFor(watcher.get(), a, &ea));
  // PayKKa delivers the same notification again (as if our ack was lost),
  // to both replicas' port... the sandbox redelivers to replica 0.
  auto hooks = stack_->SandboxCall("GET", "/sandbox/webhooks");
  ASSERT_TRUE(hooks.ok());
  int64_t id = 0;
  for (const auto& d : *hooks) {
    if (d.value("order_id", "") == a) id = d.value("id", int64_t{0});
  }
  ASSERT_GT(id, 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(stack_
                    ->SandboxCall("POST", absl::StrCat("/sandbox/webhooks/", id,
                                                       "/redeliver"))
                    .ok());
  }
  // Each redelivery was acknowledged...
  for (int i = 0; i < 100; ++i) {
    hooks = stack_->SandboxCall("GET", "/sandbox/webhooks");
    bool all = false;
    for (const auto& d : *hooks) {
      if (d.value("id", int64_t{0}) == id) {
        all = d.value("attempts", 0) >= 4 && d.value("delivered", false) &&
              d.value("last_http_status", 0) == 200;
      }
    }
    if (all) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  // ...and made no event: the next one is the marker payment's.
  const std::string marker = PayNew(stack_.get(), "dup-marker");
  v1::MerchantEvent next;
  ASSERT_TRUE(watcher->Next(&next));
  EXPECT_EQ(next.order().order_id(), marker);
}

TEST_F(EventsTest, UnacknowledgedWebhookIsRetriedIntoOneEvent) {
  auto watcher = WatchEvents(stack_.get(), "");
  v1::CreateCheckoutResponse c = Checkout(stack_.get(), "retry");
  // Redis down: the notification cannot be stored, so it is not
  // acknowledged (503) and the sandbox retries (1 s, 2 s, ...).
  ASSERT_TRUE(stack_->StopRedis().ok());
  auto paid = stack_->Pay(c.session_id(), "SUCCESS");
  ASSERT_TRUE(paid.ok()) << paid.status();
  const std::string order_id = paid->value("order_id", "");
  absl::SleepFor(absl::Milliseconds(1500));
  auto hooks = stack_->SandboxCall("GET", "/sandbox/webhooks");
  ASSERT_TRUE(hooks.ok());
  for (const auto& d : *hooks) {
    if (d.value("order_id", "") == order_id) {
      EXPECT_FALSE(d.value("delivered", true));
      EXPECT_EQ(d.value("last_http_status", 0), 503);
    }
  }
  ASSERT_TRUE(stack_->StartRedis().ok());
  v1::MerchantEvent e;
  ASSERT_TRUE(NextFor(watcher.get(), order_id, &e));
  EXPECT_EQ(e.order().status(), v1::ORDER_STATUS_SUCCESS);
  const std::string marker = PayNew(stack_.get(), "retry-marker");
  v1::MerchantEvent next;
  ASSERT_TRUE(watcher->Next(&next));
  EXPECT_EQ(next.order().order_id(), marker);
}

TEST_F(EventsTest, SessionThatExpiresUnpaidEndsTheStream) {
  v1::CreateCheckoutResponse c =
      Checkout(stack_.get(), "expire", absl::Seconds(3));
  auto watcher = WatchSession(c.session_id());
  v1::WatchOrderResponse first;
  ASSERT_TRUE(watcher->Next(&first));
  EXPECT_EQ(first.session().status(), v1::SESSION_STATUS_PROCESSING);
  grpc::Status st = watcher->Status(absl::Seconds(20));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ReasonOf(st), "SESSION_EXPIRED");
}

TEST_F(EventsTest, BadRequestsGetSpecificErrors) {
  auto bad = WatchEvents(stack_.get(), "not-a-token");
  grpc::Status st = bad->Status();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::BadRequest br;
  ASSERT_TRUE(DetailOf(st, &br));
  EXPECT_EQ(br.field_violations(0).field(), "resume_token");
  // A token ahead of the log: it was reset, resuming would miss events.
  auto ahead = WatchEvents(stack_.get(), "99999999999999-0");
  st = ahead->Status();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(ReasonOf(st), "RESUME_TOKEN_EXPIRED");

  v1::WatchOrderRequest req;
  req.set_merchant_id(Stack::kMerchantId);
  auto stub = std::shared_ptr<v1::PaymentOrchestrator::Stub>(stack_->Stub(1));
  OrderReader none([stub, req](grpc::ClientContext* ctx) {
    return stub->WatchOrder(ctx, req);
  });
  st = none.Status();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_merchant_id("M-unknown");
  req.set_order_id("GW1");
  OrderReader unknown([stub, req](grpc::ClientContext* ctx) {
    return stub->WatchOrder(ctx, req);
  });
  EXPECT_EQ(ReasonOf(unknown.Status()), "MERCHANT_NOT_CONFIGURED");
}

// payorchctl watch and the Python client's watch, as a caller runs them:
// one JSON line per message, the session first, then the paid order; the
// command ends with the stream.
TEST_F(EventsTest, PayorchctlAndPythonWatchPrintEachChange) {
  auto certs = SharedMtlsCertificates();
  ASSERT_TRUE(certs.ok()) << certs.status();
  v1::CreateCheckoutResponse c = Checkout(stack_.get(), "cli");
  const std::string tls = absl::StrCat(" --ca=", certs->ca_file,
                                       " --cert=", certs->ClientCert("admin"),
                                       " --key=", certs->ClientKey("admin"));
  const std::string ctl = absl::StrCat(
      BinaryPath("payorchctl"), " --target=", stack_->grpc_target(1), tls,
      " --watch_for=30s watch --merchant_id=", Stack::kMerchantId,
      " --session_id=", c.session_id());
  const std::string py = absl::StrCat(
      "/usr/bin/python3 " PAYORCH_SOURCE_DIR
      "/clients/python/payorch_client.py --gen-dir ",
      BinaryPath("../gen/python"), " --target ", stack_->grpc_target(1),
      absl::StrReplaceAll(tls, {{"=", " "}}), " watch --merchant-id ",
      Stack::kMerchantId, " --session-id ", c.session_id());
  absl::StatusOr<std::string> ctl_out, py_out;
  std::thread ctl_thread([&] { ctl_out = RunCommand(ctl); });
  std::thread py_thread([&] { py_out = RunCommand(py); });
  // Time for both to connect and print the session first (were they
  // slower, their only line would be the paid order, without a token).
  absl::SleepFor(absl::Seconds(3));
  ASSERT_TRUE(stack_->Pay(c.session_id(), "SUCCESS").ok());
  ctl_thread.join();
  py_thread.join();
  for (const auto* out : {&ctl_out, &py_out}) {
    ASSERT_TRUE(out->ok()) << out->status();
    std::vector<std::string> lines =
        absl::StrSplit(**out, '\n', absl::SkipEmpty());
    ASSERT_GE(lines.size(), 1u) << **out;
    nlohmann::json last = nlohmann::json::parse(lines.back(), nullptr, false);
    EXPECT_EQ(last["order"]["status"], "ORDER_STATUS_SUCCESS") << **out;
    EXPECT_FALSE(last.value("resume_token", "").empty()) << **out;
  }
}

TEST(EventsRetentionTest, TokenOlderThanTheRetentionIsOutOfRange) {
  auto stack = Stack::Start(
      StackOptions::Payorchd({"--event_retention=2s"}, /*replicas=*/1));
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack* s = stack->get();
  auto watcher = EventsTest::WatchEvents(s, "", 0);
  const std::string a = EventsTest::PayNew(s, "old-a");
  const std::string b = EventsTest::PayNew(s, "old-b");
  v1::MerchantEvent ea, eb;
  ASSERT_TRUE(EventsTest::NextFor(watcher.get(), a, &ea));
  ASSERT_TRUE(EventsTest::NextFor(watcher.get(), b, &eb));
  absl::SleepFor(absl::Seconds(3));
  // This append trims a and b (older than 2 s).
  const std::string c = EventsTest::PayNew(s, "old-c");
  v1::MerchantEvent ec;
  ASSERT_TRUE(EventsTest::NextFor(watcher.get(), c, &ec));
  // After a, b is gone: OUT_OF_RANGE.
  auto stale = EventsTest::WatchEvents(s, ea.resume_token(), 0);
  grpc::Status st = stale->Status();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(ReasonOf(st), "RESUME_TOKEN_EXPIRED");
  // After b nothing was lost: c comes.
  auto fresh = EventsTest::WatchEvents(s, eb.resume_token(), 0);
  v1::MerchantEvent next;
  ASSERT_TRUE(fresh->Next(&next));
  EXPECT_EQ(next.order().order_id(), c);
}

// A reader that stops reading: payorch holds a bounded page, gRPC's flow
// control stops the writes, and after --slow_consumer_timeout the stream ends
// with CONSUMER_TOO_SLOW; resuming with the last token received loses
// nothing.
TEST(EventsSlowConsumerTest, StalledReaderEndsWithAClearErrorAndResumes) {
  auto stack = Stack::Start(
      StackOptions::Payorchd({"--slow_consumer_timeout=2s"}, /*replicas=*/1));
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack* s = stack->get();
  // A small, fixed flow-control window, so that a few events fill it.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto stub = v1::PaymentOrchestrator::NewStub(grpc::CreateCustomChannel(
      s->grpc_target(), s->CallerCredentials("admin"), args));
  v1::WatchMerchantEventsRequest req;
  req.set_merchant_id(Stack::kMerchantId);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  auto reader = stub->WatchMerchantEvents(&ctx, req);
  std::vector<std::string> orders;
  bool ended = false;
  while (!ended && orders.size() < 300) {
    for (int i = 0; i < 25; ++i) {
      orders.push_back(EventsTest::PayNew(s, "slow"));
    }
    absl::SleepFor(absl::Seconds(3));
    ended = s->PayorchdLog().find("CONSUMER_TOO_SLOW") != std::string::npos;
  }
  ASSERT_TRUE(ended) << orders.size() << " events did not stall the stream";
  v1::MerchantEvent e;
  std::vector<std::string> got;
  std::string last;
  while (reader->Read(&e)) {
    got.push_back(e.order().order_id());
    last = e.resume_token();
  }
  grpc::Status st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << st.error_message();
  EXPECT_EQ(ReasonOf(st), "CONSUMER_TOO_SLOW");
  ASSERT_LT(got.size(), orders.size());
  ASSERT_FALSE(last.empty());
  // Resume: the rest, in order, nothing lost or repeated.
  auto resumed = EventsTest::WatchEvents(s, last, 0);
  while (got.size() < orders.size()) {
    ASSERT_TRUE(resumed->Next(&e)) << got.size();
    got.push_back(e.order().order_id());
  }
  EXPECT_EQ(got, orders);
}

}  // namespace
}  // namespace payorch::testing
