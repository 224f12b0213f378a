#include "service/webhooks.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/signing.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace payorch::service {
namespace {

using ::testing::HasSubstr;

constexpr char kMerchant[] = "M100";
constexpr char kApp[] = "app-1";

// A merchant whose PayKKa platform key is `platform` (public half only).
WebhookHandler::Merchants MerchantsWith(const RsaPrivateKey& merchant_key,
                                        const RsaPrivateKey* platform) {
  paykka::MerchantConfig m{kMerchant, kApp, merchant_key, std::nullopt,
                           false,     "ck", "http://x"};
  if (platform != nullptr) {
    m.platform_public_key = *RsaPublicKey::Parse(platform->PublicKeyPem());
  }
  WebhookHandler::Merchants merchants;
  merchants[kMerchant] =
      std::make_shared<const paykka::MerchantConfig>(std::move(m));
  return merchants;
}

class WebhooksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    platform_ = new RsaPrivateKey(*RsaPrivateKey::Generate());
    merchant_ = new RsaPrivateKey(*RsaPrivateKey::Generate());
    other_ = new RsaPrivateKey(*RsaPrivateKey::Generate());
  }
  static void TearDownTestSuite() {
    delete platform_;
    delete merchant_;
    delete other_;
  }

  // A notification as PayKKa sends it, signed with `key` at `when`.
  HttpServerRequest Notification(const RsaPrivateKey& key, absl::Time when,
                                 const std::string& status = "SUCCESS") {
    nlohmann::json body = {{"notify_type", "PAYMENT.SUCCESS"},
                           {"merchant_id", kMerchant},
                           {"trans_id", "T1"},
                           {"order_id", "GW1"},
                           {"status", status},
                           {"amount", 1999},
                           {"currency", "USD"}};
    HttpServerRequest r;
    r.method = "POST";
    r.path = "/webhooks/paykka";
    r.body = body.dump();
    std::string ts = absl::StrCat(absl::ToUnixMillis(when));
    std::string nonce = RandomHex(8);
    r.headers["x-paykka-appid"] = kApp;
    r.headers["x-paykka-timestamp"] = ts;
    r.headers["x-paykka-nonce"] = nonce;
    r.headers["x-paykka-sign-alg"] = "SHA256_WITH_RSA";
    r.headers["x-paykka-sign"] = *paykka::PaykkaSignatureHeader(
        key, paykka::PaykkaResponseStringToSign(ts, nonce, r.body));
    return r;
  }

  static HttpServerResponse Handle(WebhookHandler& h, HttpServerRequest r) {
    HttpServerResponse out;
    h.Handle(std::move(r),
             [&out](HttpServerResponse resp) { out = std::move(resp); });
    return out;
  }

  static RsaPrivateKey* platform_;
  static RsaPrivateKey* merchant_;
  static RsaPrivateKey* other_;
  FakeClock clock_;
};

RsaPrivateKey* WebhooksTest::platform_ = nullptr;
RsaPrivateKey* WebhooksTest::merchant_ = nullptr;
RsaPrivateKey* WebhooksTest::other_ = nullptr;

TEST_F(WebhooksTest, SignedNotificationIsAcknowledgedAndDuplicatesAreDropped) {
  auto registry = std::make_shared<prometheus::Registry>();
  WebhookHandler h(MerchantsWith(*merchant_, platform_), registry.get(),
                   &clock_);
  HttpServerResponse first = Handle(h, Notification(*platform_, clock_.Now()));
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(nlohmann::json::parse(first.body)["ret_code"], "000000");
  // PayKKa retries the same event: acknowledged again, counted once.
  HttpServerResponse again = Handle(h, Notification(*platform_, clock_.Now()));
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(h.accepted(), 1);
  // A new status for the same order is a new event.
  EXPECT_EQ(
      Handle(h, Notification(*platform_, clock_.Now(), "REFUNDED")).status,
      200);
  EXPECT_EQ(h.accepted(), 2);
  std::string metrics =
      prometheus::TextSerializer().Serialize(registry->Collect());
  EXPECT_THAT(metrics, HasSubstr("result=\"duplicate\""));
  EXPECT_THAT(metrics, HasSubstr("notify_type=\"PAYMENT.SUCCESS\""));
}

TEST_F(WebhooksTest, WrongSignatureIsRefused) {
  WebhookHandler h(MerchantsWith(*merchant_, platform_), nullptr, &clock_);
  HttpServerResponse r = Handle(h, Notification(*other_, clock_.Now()));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(nlohmann::json::parse(r.body)["ret_code"], "206003");
  // A body changed after signing does not verify either.
  HttpServerRequest tampered = Notification(*platform_, clock_.Now());
  tampered.body.replace(tampered.body.find("1999"), 4, "9999");
  EXPECT_EQ(Handle(h, std::move(tampered)).status, 401);
  EXPECT_EQ(h.accepted(), 0);
}

TEST_F(WebhooksTest, StaleTimestampIsRefused) {
  WebhookHandler h(MerchantsWith(*merchant_, platform_), nullptr, &clock_);
  HttpServerResponse r =
      Handle(h, Notification(*platform_, clock_.Now() - absl::Minutes(6)));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(nlohmann::json::parse(r.body)["ret_code"], "206004");
  EXPECT_EQ(Handle(h, Notification(*platform_, clock_.Now() - absl::Minutes(4)))
                .status,
            200);
}

TEST_F(WebhooksTest, UnknownMerchantIsAnsweredLikeABadSignature) {
  WebhookHandler h(MerchantsWith(*merchant_, platform_), nullptr, &clock_);
  HttpServerResponse bad = Handle(h, Notification(*other_, clock_.Now()));
  HttpServerRequest r = Notification(*platform_, clock_.Now());
  r.headers["x-paykka-appid"] = "another-app";
  HttpServerResponse app = Handle(h, std::move(r));
  WebhookHandler none(WebhookHandler::Merchants{}, nullptr, &clock_);
  HttpServerResponse unknown =
      Handle(none, Notification(*platform_, clock_.Now()));
  for (const HttpServerResponse* a : {&app, &unknown}) {
    EXPECT_EQ(a->status, bad.status);
    EXPECT_EQ(a->body, bad.body);
    EXPECT_EQ(a->content_type, bad.content_type);
  }
  EXPECT_EQ(bad.status, 401);
}

TEST_F(WebhooksTest, ReplayedNonceIsRefused) {
  WebhookHandler h(MerchantsWith(*merchant_, platform_), nullptr, &clock_);
  HttpServerRequest r = Notification(*platform_, clock_.Now());
  HttpServerRequest copy = r;
  EXPECT_EQ(Handle(h, std::move(r)).status, 200);
  HttpServerResponse replay = Handle(h, std::move(copy));
  EXPECT_EQ(replay.status, 401);
  EXPECT_EQ(nlohmann::json::parse(replay.body)["ret_code"], "206003");
}

TEST_F(WebhooksTest, HostileBodiesAreRefusedBeforeAnyMetricLabel) {
  auto registry = std::make_shared<prometheus::Registry>();
  WebhookHandler h(MerchantsWith(*merchant_, platform_), registry.get(),
                   &clock_);
  std::string deep = "{\"merchant_id\":" + std::string(30000, '[') +
                     std::string(30000, ']') + "}";
  for (std::string body :
       {deep, std::string(R"({"merchant_id":{"a":1}})"),
        std::string(R"({"merchant_id":"M100","notify_type":7})"),
        R"({"merchant_id":")" + std::string(200, 'x') + R"("})",
        std::string(70 * 1024, ' ')}) {
    HttpServerRequest r = Notification(*platform_, clock_.Now());
    r.body = body;
    HttpServerResponse out = Handle(h, std::move(r));
    EXPECT_TRUE(out.status == 400 || out.status == 413) << out.status;
  }
  // Signed but with an unknown type: counted under OTHER, never its text.
  HttpServerRequest junk = Notification(*other_, clock_.Now());
  EXPECT_EQ(Handle(h, std::move(junk)).status, 401);
  std::string metrics =
      prometheus::TextSerializer().Serialize(registry->Collect());
  EXPECT_THAT(metrics, HasSubstr("reason=\"malformed\"} 4"));
  EXPECT_THAT(metrics, HasSubstr("reason=\"too_large\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("reason=\"unauthenticated\"} 1"));
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr("payorch_webhooks_total{")));
}

TEST_F(WebhooksTest, UnknownNotifyTypesShareOneLabel) {
  EXPECT_EQ(paykka::NotifyTypeLabel("PAYMENT.SUCCESS"), "PAYMENT.SUCCESS");
  EXPECT_EQ(paykka::NotifyTypeLabel("x\"y"), "OTHER");
  EXPECT_EQ(paykka::JsonNestingDepth(R"({"a":"[[[[","b":[{}]})", 16), 3);
}

TEST_F(WebhooksTest, MalformedBodiesAndMethodsGetClearErrors) {
  WebhookHandler h(MerchantsWith(*merchant_, platform_), nullptr, &clock_);
  HttpServerRequest r = Notification(*platform_, clock_.Now());
  r.body = "{not json";
  EXPECT_EQ(Handle(h, std::move(r)).status, 400);
  HttpServerRequest get = Notification(*platform_, clock_.Now());
  get.method = "GET";
  EXPECT_EQ(Handle(h, std::move(get)).status, 405);
}

TEST_F(WebhooksTest, WithoutAPlatformKeyUnsignedIsRefusedUnlessAllowed) {
  WebhookHandler closed(MerchantsWith(*merchant_, nullptr), nullptr, &clock_);
  EXPECT_EQ(Handle(closed, Notification(*other_, clock_.Now())).status, 401);
  WebhookOptions sandbox;
  sandbox.allow_unsigned = true;
  WebhookHandler h(MerchantsWith(*merchant_, nullptr), nullptr, &clock_,
                   sandbox);
  EXPECT_EQ(Handle(h, Notification(*other_, clock_.Now())).status, 200);
}

}  // namespace
}  // namespace payorch::service
