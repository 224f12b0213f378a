#include "adapters/paykka/http_paykka_client.h"

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "adapters/paykka/mapping.h"
#include "adapters/paykka/signing.h"
#include "common/crypto.h"
#include "common/errors.h"
#include "gtest/gtest.h"
#include "tests/adapters/paykka/test_merchant.h"

namespace payorch::paykka {
namespace {

using ::payorch::paykka::testing::TestKey;
using ::payorch::paykka::testing::TestMerchant;
using json = nlohmann::json;

// Answers each request with a scripted result, on the loop thread.
class FakeTransport : public HttpTransport {
 public:
  using Script = std::function<absl::StatusOr<HttpResponse>(int attempt)>;
  explicit FakeTransport(EventLoop* loop) : loop_(loop) {}

  void Send(HttpRequest request, absl::Time, HttpCallback done) override {
    int attempt;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      attempt = static_cast<int>(requests_.size());
    }
    absl::StatusOr<HttpResponse> result = script_(attempt);
    loop_->Post([done = std::move(done), result = std::move(result)]() mutable {
      std::move(done)(std::move(result));
    });
  }

  void set_script(Script s) { script_ = std::move(s); }
  std::vector<HttpRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  EventLoop* loop_;
  Script script_;
  absl::Mutex mu_;
  std::vector<HttpRequest> requests_;
};

HttpResponse Response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// Signs a response the way the sandbox (playing PayKKa) does.
HttpResponse PlatformSigned(HttpResponse r, const RsaPrivateKey& key) {
  r.headers["x-paykka-timestamp"] = "1767225600000";
  r.headers["x-paykka-nonce"] = "n0nce0123456";
  r.headers["x-paykka-sign"] = *PaykkaSignatureHeader(
      key, PaykkaResponseStringToSign("1767225600000", "n0nce0123456", r.body));
  return r;
}

const char kOrderBody[] =
    R"({"ret_code":"000000","ret_msg":"ok","data":{"order_id":"GW1",)"
    R"("status":"SUCCESS","amount":100,"currency":"USD"}})";

class HttpPaykkaClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = *EventLoop::Start("test-loop");
    transport_ = std::make_unique<FakeTransport>(loop_.get());
    MakeClient(3);
  }
  void TearDown() override {
    client_.reset();
    loop_->Stop();
  }
  void MakeClient(int max_attempts) {
    HttpPaykkaClientOptions options;
    options.retry.max_attempts = max_attempts;
    options.retry.initial_backoff = absl::Milliseconds(1);
    options.retry.max_backoff = absl::Milliseconds(2);
    options.clock = &clock_;
    client_ = *MakeHttpPaykkaClient(loop_.get(), &workers_, transport_.get(),
                                    options);
  }
  absl::Time Deadline() { return clock_.Now() + absl::Seconds(30); }

  template <typename T>
  struct Result {
    absl::StatusOr<T> value = absl::UnknownError("not called");
    bool on_loop_thread = false;
  };

  template <typename T, typename Start>
  Result<T> Run(Start start) {
    Result<T> result;
    absl::Notification done;
    start([&](absl::StatusOr<T> r) {
      result.value = std::move(r);
      result.on_loop_thread = loop_->InLoopThread();
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return result;
  }

  Result<v1::Order> Query(const MerchantConfig& m) {
    return Run<v1::Order>([&](auto cb) {
      client_->QueryTransaction(m, {OrderLookup::Kind::kOrderId, "GW1"},
                                Deadline(), std::move(cb));
    });
  }
  Result<v1::Order> Charge(const MerchantConfig& m) {
    v1::ChargeRecurringRequest req;
    req.set_trans_id("T-9");
    req.set_amount(100);
    req.set_currency("USD");
    req.set_recurring_agreement_id("RA1");
    req.mutable_payment()->set_token("TK1");
    req.mutable_payment()->set_shopper_reference("s");
    return Run<v1::Order>([&](auto cb) {
      client_->InitiateRecurring(m, req, Deadline(), std::move(cb));
    });
  }

  FakeClock clock_;
  std::unique_ptr<EventLoop> loop_;
  WorkerPool workers_{2};
  std::unique_ptr<FakeTransport> transport_;
  std::unique_ptr<PaykkaClient> client_;
};

TEST_F(HttpPaykkaClientTest, CreateSessionSendsASignedRequestAndMapsTheAnswer) {
  transport_->set_script([](int) {
    return Response(200,
                    R"({"ret_code":"000000","ret_msg":"Success","data":)"
                    R"({"session_id":"CS1","session_url":"https://pay/CS1"}})");
  });
  v1::CreateCheckoutRequest req;
  req.set_trans_id("T-1");
  req.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
  req.set_amount(1999);
  req.set_currency("USD");
  req.set_session_mode(v1::SESSION_MODE_DROP_IN);
  req.set_return_url("https://shop/r");
  MerchantConfig m = TestMerchant();
  auto result = Run<v1::CreateCheckoutResponse>([&](auto cb) {
    client_->CreateSession(m, req, Deadline(), std::move(cb));
  });
  ASSERT_TRUE(result.value.ok()) << result.value.status();
  EXPECT_TRUE(result.on_loop_thread);
  EXPECT_EQ(result.value->session_id(), "CS1");
  EXPECT_EQ(result.value->client_key(), "ck_test");
  EXPECT_EQ(result.value->session_url(), "https://pay/CS1");

  std::vector<HttpRequest> sent = transport_->requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].method, "POST");
  EXPECT_EQ(sent[0].url, "http://paykka.test/v3/payment/acq/session");
  EXPECT_EQ(sent[0].body, CreateSessionBody("M1", req));
  std::map<std::string, std::string> h(sent[0].headers.begin(),
                                       sent[0].headers.end());
  EXPECT_EQ(h["content-type"], "application/json");
  EXPECT_EQ(h["x-paykka-appid"], "A1");
  EXPECT_EQ(h["x-paykka-timestamp"],
            absl::StrCat(absl::ToUnixMillis(clock_.Now())));
  absl::StatusOr<RsaPublicKey> pub =
      RsaPublicKey::Parse(TestKey(0).PublicKeyPem());
  EXPECT_TRUE(VerifyPaykkaSignatureHeader(
                  *pub,
                  PaykkaRequestStringToSign("POST", "/v3/payment/acq/session",
                                            h["x-paykka-timestamp"],
                                            h["x-paykka-nonce"], sent[0].body),
                  h["x-paykka-sign"])
                  .ok());
}

TEST_F(HttpPaykkaClientTest, DeadlineAlreadyPassedSendsNothing) {
  transport_->set_script([](int) { return Response(200, kOrderBody); });
  auto result = Run<v1::Order>([&](auto cb) {
    client_->QueryTransaction(
        TestMerchant(), {OrderLookup::Kind::kOrderId, "GW1"},
        clock_.Now() - absl::Milliseconds(1), std::move(cb));
  });
  EXPECT_EQ(result.value.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(HasReason(result.value.status(), Reason::kDeadlineExceeded));
  EXPECT_TRUE(result.on_loop_thread);
  EXPECT_TRUE(transport_->requests().empty());
}

TEST_F(HttpPaykkaClientTest, QueryIsRetriedOnTransientErrorsWithFreshNonces) {
  transport_->set_script([](int attempt) -> absl::StatusOr<HttpResponse> {
    if (attempt == 1) return Response(503, "");
    if (attempt == 2) return Response(200, "{garbage");
    return Response(200, kOrderBody);
  });
  auto result = Query(TestMerchant());
  ASSERT_TRUE(result.value.ok()) << result.value.status();
  EXPECT_EQ(result.value->status(), v1::ORDER_STATUS_SUCCESS);
  std::vector<HttpRequest> sent = transport_->requests();
  ASSERT_EQ(sent.size(), 3u);
  auto nonce = [](const HttpRequest& r) {
    for (const auto& [k, v] : r.headers) {
      if (k == "x-paykka-nonce") return v;
    }
    return std::string();
  };
  EXPECT_NE(nonce(sent[0]), nonce(sent[1]));
  EXPECT_NE(nonce(sent[1]), nonce(sent[2]));
}

TEST_F(HttpPaykkaClientTest, QueryGivesUpAfterMaxAttempts) {
  transport_->set_script([](int) { return Response(500, ""); });
  auto result = Query(TestMerchant());
  EXPECT_TRUE(HasReason(result.value.status(), Reason::kPspUnavailable))
      << result.value.status();
  EXPECT_EQ(transport_->requests().size(), 3u);
}

TEST_F(HttpPaykkaClientTest, DefinitiveQueryAnswersAreNotRetried) {
  transport_->set_script([](int) {
    return Response(200, R"({"ret_code":"206024","ret_msg":"no order"})");
  });
  auto result = Query(TestMerchant());
  EXPECT_EQ(result.value.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(HasReason(result.value.status(), Reason::kOrderNotFound));
  EXPECT_EQ(transport_->requests().size(), 1u);
}

TEST_F(HttpPaykkaClientTest, MutatingCallIsSentOnceAndUnknownOn5xx) {
  transport_->set_script([](int) { return Response(500, ""); });
  auto result = Charge(TestMerchant());
  EXPECT_TRUE(HasReason(result.value.status(), Reason::kPspOutcomeUnknown))
      << result.value.status();
  EXPECT_EQ(transport_->requests().size(), 1u);
  EXPECT_EQ(transport_->requests()[0].url, "http://paykka.test/v3/payment/acq");
}

TEST_F(HttpPaykkaClientTest, DeclineIsAnOkOrderWithFailureStatus) {
  transport_->set_script([](int) {
    return Response(
        200, R"({"ret_code":"000000","ret_msg":"ok","data":{)"
             R"("order_id":"GW2","status":"FAILURE",)"
             R"("error_code":"2099","error_description":"Invalid Card"}})");
  });
  auto result = Charge(TestMerchant());
  ASSERT_TRUE(result.value.ok()) << result.value.status();
  EXPECT_EQ(result.value->status(), v1::ORDER_STATUS_FAILURE);
  EXPECT_EQ(result.value->error_code(), "2099");
}

struct KindCase {
  std::string name;
  std::function<absl::StatusOr<HttpResponse>()> response;
  bool verify;
  Reason mutating;
  Reason query;
};

// The classification seen through the client, for both kinds of call.
TEST_F(HttpPaykkaClientTest, ErrorsDependOnWhetherTheCallMutates) {
  MakeClient(1);  // no retries: one attempt per call
  const KindCase cases[] = {
      {"maybe sent",
       [] {
         return TransportError(absl::StatusCode::kDeadlineExceeded,
                               SendState::kMaybeSent, "timeout");
       },
       false, Reason::kPspOutcomeUnknown, Reason::kPspUnavailable},
      {"not sent",
       [] {
         return TransportError(absl::StatusCode::kUnavailable,
                               SendState::kNotSent, "refused");
       },
       false, Reason::kPspUnavailable, Reason::kPspUnavailable},
      {"500", [] { return Response(500, ""); }, false,
       Reason::kPspOutcomeUnknown, Reason::kPspUnavailable},
      {"malformed json", [] { return Response(200, "{"); }, false,
       Reason::kPspOutcomeUnknown, Reason::kPspBadResponse},
      {"success without order fields",
       [] { return Response(200, R"({"ret_code":"000000","data":{}})"); },
       false, Reason::kPspOutcomeUnknown, Reason::kPspBadResponse},
      {"wrongly signed",
       [] { return PlatformSigned(Response(200, kOrderBody), TestKey(0)); },
       true, Reason::kPspOutcomeUnknown, Reason::kPspBadResponse},
      {"unsigned", [] { return Response(200, kOrderBody); }, true,
       Reason::kPspOutcomeUnknown, Reason::kPspBadResponse},
      {"429", [] { return Response(429, ""); }, false, Reason::kPspRateLimited,
       Reason::kPspRateLimited},
      {"401", [] { return Response(401, ""); }, false, Reason::kPspAuthFailed,
       Reason::kPspAuthFailed},
      {"400 010000",
       [] { return Response(400, R"({"ret_code":"010000","ret_msg":"bad"})"); },
       false, Reason::kPspRejected, Reason::kPspRejected},
  };
  for (const KindCase& c : cases) {
    transport_->set_script([&c](int) { return c.response(); });
    MerchantConfig m = TestMerchant(c.verify);
    EXPECT_TRUE(HasReason(Charge(m).value.status(), c.mutating)) << c.name;
    EXPECT_TRUE(HasReason(Query(m).value.status(), c.query)) << c.name;
  }
}

TEST_F(HttpPaykkaClientTest, CorrectlySignedResponsesVerify) {
  transport_->set_script([](int) {
    return PlatformSigned(Response(200, kOrderBody), TestKey(1));
  });
  auto result = Query(TestMerchant(/*verify=*/true));
  ASSERT_TRUE(result.value.ok()) << result.value.status();
  EXPECT_EQ(result.value->order_id(), "GW1");
}

TEST_F(HttpPaykkaClientTest, QuerySessionUsesTheSessionQueryPath) {
  transport_->set_script([](int) {
    return Response(200, R"({"ret_code":"000000","data":{"session_id":"CS1",)"
                         R"("status":"EXPIRED"}})");
  });
  auto result = Run<v1::GetSessionStatusResponse>([&](auto cb) {
    client_->QuerySession(TestMerchant(), {SessionLookup::Kind::kTransId, "T1"},
                          Deadline(), std::move(cb));
  });
  ASSERT_TRUE(result.value.ok()) << result.value.status();
  EXPECT_EQ(result.value->status(), v1::SESSION_STATUS_EXPIRED);
  ASSERT_EQ(transport_->requests().size(), 1u);
  EXPECT_EQ(transport_->requests()[0].url,
            "http://paykka.test/v3/payment/acq/session/query");
  EXPECT_EQ(transport_->requests()[0].body,
            R"({"merchant_id":"M1","trans_id":"T1"})");
}

}  // namespace
}  // namespace payorch::paykka
