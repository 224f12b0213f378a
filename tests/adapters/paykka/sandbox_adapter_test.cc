// HttpPaykkaClient + CurlMultiTransport against the real paykka-sandbox
// binary (label "sandbox"): signing, response verification, mapping and
// the error table, end to end.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "adapters/paykka/curl_transport.h"
#include "adapters/paykka/http_paykka_client.h"
#include "adapters/paykka/merchant_config.h"
#include "common/crypto.h"
#include "common/errors.h"
#include "gtest/gtest.h"
#include "tests/adapters/paykka/test_merchant.h"
#include "tests/testing/subprocess.h"

namespace payorch::paykka {
namespace {

using ::payorch::paykka::testing::TestKey;
using ::payorch::testing::BinaryPath;
using ::payorch::testing::Subprocess;
using ::payorch::testing::TempDir;
using json = nlohmann::json;

class SandboxAdapterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The sandbox knows M1's public key (TestKey(0)).
    dir_.Write("merchant_priv.pem", TestKey(0).ToPkcs8Pem());
    dir_.Write("merchant_pub.pem", TestKey(0).PublicKeyPem());
    dir_.Write("wrong_priv.pem", TestKey(1).ToPkcs8Pem());
    dir_.Write(
        "sandbox.json",
        R"({"merchants":[{"merchant_id":"M1","app_id":"A1",)"
        R"("public_key_file":"merchant_pub.pem","client_key":"ck_sb"}]})");
    std::vector<std::string> args = {
        BinaryPath("paykka-sandbox"), "--listen=127.0.0.1:0",
        "--config=" + dir_.File("sandbox.json"),
        "--platform-public-key-out=" + dir_.File("platform_pub.pem")};
    args.insert(args.end(), sandbox_variant_.begin(), sandbox_variant_.end());
    absl::StatusOr<std::unique_ptr<Subprocess>> sb =
        Subprocess::Start(args, dir_.File("sandbox.stderr"));
    ASSERT_TRUE(sb.ok()) << sb.status();
    sandbox_ = *std::move(sb);
    absl::StatusOr<std::string> line =
        sandbox_->WaitForLine("listening ", absl::Seconds(20));
    ASSERT_TRUE(line.ok()) << line.status();
    base_url_ = "http://" + line->substr(std::string("listening ").size());

    // payorch's own merchant config, loaded the production way.
    dir_.Write("merchants.json",
               absl::StrCat(R"({"merchants":[)",
                            R"({"merchant_id":"M1","app_id":"A1",)",
                            R"("private_key_file":"merchant_priv.pem",)",
                            R"("paykka_public_key_file":"platform_pub.pem",)",
                            R"("verify_response_signatures":true,)",
                            R"("client_key":"ck_sb","base_url":")", base_url_,
                            R"("}]})"));
    absl::StatusOr<std::vector<MerchantConfig>> merchants =
        LoadMerchantConfigs(dir_.File("merchants.json"));
    ASSERT_TRUE(merchants.ok()) << merchants.status();
    merchant_.emplace((*merchants)[0]);

    loop_ = *EventLoop::Start("sb-test");
    transport_ = *CurlMultiTransport::Create(loop_.get());
    HttpPaykkaClientOptions options;
    options.retry.max_attempts = 1;
    client_ = *MakeHttpPaykkaClient(loop_.get(), &workers_, transport_.get(),
                                    options);
  }

  void TearDown() override {
    client_.reset();
    transport_.reset();
    if (loop_) loop_->Stop();
  }

  absl::Time Deadline() { return absl::Now() + absl::Seconds(10); }

  template <typename T, typename Start>
  absl::StatusOr<T> Wait(Start start) {
    absl::StatusOr<T> result = absl::UnknownError("no callback");
    absl::Notification done;
    start([&](absl::StatusOr<T> r) {
      result = std::move(r);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return result;
  }

  // The sandbox's unsigned control API.
  absl::StatusOr<HttpResponse> Control(const std::string& method,
                                       const std::string& path,
                                       const std::string& body) {
    HttpRequest req;
    req.method = method;
    req.url = base_url_ + path;
    req.body = body;
    req.headers = {{"content-type", "application/json"}};
    return Wait<HttpResponse>([&](auto cb) {
      transport_->Send(std::move(req), Deadline(), std::move(cb));
    });
  }

  void SetFault(const std::string& rule) {
    absl::StatusOr<HttpResponse> r =
        Control("PUT", "/sandbox/faults",
                absl::StrCat(R"({"seed":1,"rules":[)", rule, "]}"));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200) << r->body;
  }

  v1::CreateCheckoutRequest Checkout(const std::string& trans_id) {
    v1::CreateCheckoutRequest req;
    req.set_merchant_id("M1");
    req.set_trans_id(trans_id);
    req.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
    req.set_amount(1999);
    req.set_currency("USD");
    req.set_session_mode(v1::SESSION_MODE_DROP_IN);
    req.set_return_url("https://shop.test/return");
    req.mutable_expire_time()->set_seconds(
        absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
    return req;
  }

  absl::StatusOr<v1::CreateCheckoutResponse> Create(
      const MerchantConfig& m, const v1::CreateCheckoutRequest& req) {
    return Wait<v1::CreateCheckoutResponse>([&](auto cb) {
      client_->CreateSession(m, req, Deadline(), std::move(cb));
    });
  }
  absl::StatusOr<v1::Order> QueryOrder(OrderLookup lookup) {
    return Wait<v1::Order>([&](auto cb) {
      client_->QueryTransaction(*merchant_, lookup, Deadline(), std::move(cb));
    });
  }
  absl::StatusOr<v1::GetSessionStatusResponse> QuerySession(
      SessionLookup lookup) {
    return Wait<v1::GetSessionStatusResponse>([&](auto cb) {
      client_->QuerySession(*merchant_, lookup, Deadline(), std::move(cb));
    });
  }

  std::vector<std::string> sandbox_variant_;  // extra sandbox flags
  TempDir dir_;
  std::unique_ptr<Subprocess> sandbox_;
  std::string base_url_;
  std::optional<MerchantConfig> merchant_;
  std::unique_ptr<EventLoop> loop_;
  WorkerPool workers_{2};
  std::unique_ptr<CurlMultiTransport> transport_;
  std::unique_ptr<PaykkaClient> client_;
};

TEST_F(SandboxAdapterTest, CreateThenQuerySessionThenOrderNotFound) {
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Create(*merchant_, Checkout("T-create-1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(absl::StartsWith(created->session_id(), "CS"));
  EXPECT_EQ(created->client_key(), "ck_sb");
  EXPECT_FALSE(created->session_url().empty());
  EXPECT_TRUE(created->has_expire_time());
  EXPECT_EQ(created->status(), v1::SESSION_STATUS_PROCESSING);

  absl::StatusOr<v1::GetSessionStatusResponse> session =
      QuerySession({SessionLookup::Kind::kSessionId, created->session_id()});
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ(session->status(), v1::SESSION_STATUS_PROCESSING);
  EXPECT_EQ(session->trans_id(), "T-create-1");
  EXPECT_EQ(session->amount(), 1999);

  absl::StatusOr<v1::Order> order =
      QueryOrder({OrderLookup::Kind::kSessionId, created->session_id()});
  EXPECT_EQ(order.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(HasReason(order.status(), Reason::kOrderNotFound))
      << order.status();

  absl::StatusOr<v1::GetSessionStatusResponse> missing =
      QuerySession({SessionLookup::Kind::kSessionId, "CS000000"});
  EXPECT_TRUE(HasReason(missing.status(), Reason::kSessionNotFound))
      << missing.status();
}

// A sandbox answering Query Session elsewhere and signing bodies only: the
// default settings fail against it, the matching settings work.
class SandboxVariantAdapterTest : public SandboxAdapterTest {
 protected:
  SandboxVariantAdapterTest() {
    sandbox_variant_ = {"--query_session_path=/v3/payment/acq/session/get",
                        "--response_sign_recipe=body"};
  }
};

TEST_F(SandboxVariantAdapterTest, MatchingSettingsQuerySessionAndVerify) {
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Create(*merchant_, Checkout("T-variant-1"));
  EXPECT_TRUE(HasReason(created.status(), Reason::kPspOutcomeUnknown))
      << created.status();
  merchant_->response_sign_recipe = ResponseSignRecipe::kBody;
  created = Create(*merchant_, Checkout("T-variant-2"));
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<v1::GetSessionStatusResponse> session =
      QuerySession({SessionLookup::Kind::kSessionId, created->session_id()});
  EXPECT_FALSE(session.ok());
  merchant_->query_session_path = "/v3/payment/acq/session/get";
  session =
      QuerySession({SessionLookup::Kind::kSessionId, created->session_id()});
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ(session->trans_id(), "T-variant-2");
}

TEST_F(SandboxAdapterTest, PaidSessionYieldsMappedSuccessOrder) {
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Create(*merchant_, Checkout("T-pay-1"));
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<HttpResponse> paid =
      Control("POST", "/sandbox/sessions/" + created->session_id() + "/pay",
              R"({"outcome":"SUCCESS"})");
  ASSERT_TRUE(paid.ok()) << paid.status();
  ASSERT_EQ(paid->status, 200) << paid->body;

  absl::StatusOr<v1::Order> order =
      QueryOrder({OrderLookup::Kind::kTransId, "T-pay-1"});
  ASSERT_TRUE(order.ok()) << order.status();
  EXPECT_EQ(order->status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_EQ(order->status_text(), "SUCCESS");
  EXPECT_TRUE(absl::StartsWith(order->order_id(), "GW"));
  EXPECT_EQ(order->session_id(), created->session_id());
  EXPECT_EQ(order->amount(), 1999);
  EXPECT_EQ(order->currency(), "USD");
  EXPECT_EQ(order->error_code(), "0000");
  EXPECT_TRUE(order->has_pay_finish_time());
  EXPECT_EQ(order->payment_method(), "BANKCARD");
  EXPECT_FALSE(order->card().last4().empty());
  EXPECT_EQ(order->balances().captured_amount(), 1999);

  absl::StatusOr<v1::GetSessionStatusResponse> session =
      QuerySession({SessionLookup::Kind::kTransId, "T-pay-1"});
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ(session->status(), v1::SESSION_STATUS_COMPLETED);
  EXPECT_EQ(session->order_id(), order->order_id());
}

TEST_F(SandboxAdapterTest, RecurringChargeAndDecline) {
  v1::CreateCheckoutRequest first = Checkout("T-rec-1");
  first.set_payment_type(v1::PAYMENT_TYPE_RECURRING);
  first.mutable_payment()->set_store_payment_method(true);
  first.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_SUBSCRIPTION);
  first.mutable_payment()->set_shopper_reference("shopper-1");
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Create(*merchant_, first);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_EQ(
      Control("POST", "/sandbox/sessions/" + created->session_id() + "/pay",
              R"({"outcome":"SUCCESS"})")
          ->status,
      200);
  absl::StatusOr<v1::Order> first_order =
      QueryOrder({OrderLookup::Kind::kTransId, "T-rec-1"});
  ASSERT_TRUE(first_order.ok()) << first_order.status();
  ASSERT_FALSE(first_order->token().empty());
  ASSERT_FALSE(first_order->recurring_agreement_id().empty());

  for (int64_t amount : {1000, 1051}) {  // 1051: the sandbox declines
    v1::ChargeRecurringRequest charge;
    charge.set_merchant_id("M1");
    charge.set_trans_id(absl::StrCat("T-rec-charge-", amount));
    charge.set_amount(amount);
    charge.set_currency("USD");
    charge.set_recurring_agreement_id(first_order->recurring_agreement_id());
    charge.mutable_payment()->set_token(first_order->token());
    charge.mutable_payment()->set_shopper_reference("shopper-1");
    absl::StatusOr<v1::Order> order = Wait<v1::Order>([&](auto cb) {
      client_->InitiateRecurring(*merchant_, charge, Deadline(), std::move(cb));
    });
    ASSERT_TRUE(order.ok()) << order.status();
    if (amount == 1000) {
      EXPECT_EQ(order->status(), v1::ORDER_STATUS_SUCCESS);
    } else {
      EXPECT_EQ(order->status(), v1::ORDER_STATUS_FAILURE);
      EXPECT_EQ(order->error_code(), "2099");
    }
  }
}

TEST_F(SandboxAdapterTest, ServerErrorOnCreateIsOutcomeUnknown) {
  SetFault(R"({"endpoint":"/v3/payment/acq/session","http_status":500,)"
           R"("error_rate":1.0})");
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Create(*merchant_, Checkout("T-500"));
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(HasReason(created.status(), Reason::kPspOutcomeUnknown))
      << created.status();
}

TEST_F(SandboxAdapterTest, RateLimitIsPspRateLimited) {
  SetFault(R"({"endpoint":"*","http_status":429,"error_rate":1.0})");
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Create(*merchant_, Checkout("T-429"));
  EXPECT_TRUE(HasReason(created.status(), Reason::kPspRateLimited))
      << created.status();
  absl::StatusOr<v1::Order> order =
      QueryOrder({OrderLookup::Kind::kTransId, "T-429"});
  EXPECT_EQ(order.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(HasReason(order.status(), Reason::kPspRateLimited))
      << order.status();
  EXPECT_TRUE(RetryDelayOf(order.status()).has_value());
}

TEST_F(SandboxAdapterTest, BadResponseSignature) {
  SetFault(R"({"endpoint":"*","bad_signature_rate":1.0})");
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Create(*merchant_, Checkout("T-badsig"));
  EXPECT_TRUE(HasReason(created.status(), Reason::kPspOutcomeUnknown))
      << created.status();
  absl::StatusOr<v1::Order> order =
      QueryOrder({OrderLookup::Kind::kTransId, "T-badsig"});
  EXPECT_TRUE(HasReason(order.status(), Reason::kPspBadResponse))
      << order.status();
}

TEST_F(SandboxAdapterTest, TimeoutAfterCommitIsOutcomeUnknown) {
  SetFault(R"({"endpoint":"/v3/payment/acq/session",)"
           R"("timeout_after_commit_rate":1.0})");
  v1::CreateCheckoutRequest req = Checkout("T-commit");
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Wait<v1::CreateCheckoutResponse>([&](auto cb) {
        client_->CreateSession(*merchant_, req,
                               absl::Now() + absl::Milliseconds(500),
                               std::move(cb));
      });
  EXPECT_TRUE(HasReason(created.status(), Reason::kPspOutcomeUnknown))
      << created.status();
  // The session really exists: the caller must query before repeating.
  absl::StatusOr<HttpResponse> counters =
      Control("GET", "/sandbox/counters", "");
  ASSERT_TRUE(counters.ok());
  json c = json::parse(counters->body, nullptr, false);
  EXPECT_EQ(c["creates_by_trans_id"]["T-commit"], 1) << counters->body;
}

// PayKKa answers a wrong signature and a replayed nonce alike (206003): a
// query is PSP_AUTH_FAILED; a create may be the replay of a copy that was
// processed, so its outcome is unknown (the service then asks by trans_id).
TEST_F(SandboxAdapterTest, WrongMerchantKeyIsAuthFailedOrUnknownForACreate) {
  MerchantConfig wrong = *merchant_;
  wrong.private_key = TestKey(1);
  absl::StatusOr<v1::CreateCheckoutResponse> created =
      Create(wrong, Checkout("T-wrongkey"));
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(HasReason(created.status(), Reason::kPspOutcomeUnknown))
      << created.status();
  absl::StatusOr<v1::GetSessionStatusResponse> queried =
      Wait<v1::GetSessionStatusResponse>([&](auto cb) {
        client_->QuerySession(wrong,
                              {SessionLookup::Kind::kTransId, "T-wrongkey"},
                              Deadline(), std::move(cb));
      });
  EXPECT_EQ(queried.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(HasReason(queried.status(), Reason::kPspAuthFailed))
      << queried.status();
}

}  // namespace
}  // namespace payorch::paykka
