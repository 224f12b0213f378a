#include "adapters/paykka/notification.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/signing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace payorch::paykka {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1767225600);
constexpr absl::Duration kWindow = absl::Minutes(5);

class NotificationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_ = new RsaPrivateKey(*RsaPrivateKey::Generate());
    public_ = new RsaPublicKey(*RsaPublicKey::Parse(key_->PublicKeyPem()));
  }
  static void TearDownTestSuite() {
    delete key_;
    delete public_;
  }

  static HttpServerRequest Signed(absl::Time when, std::string body) {
    HttpServerRequest r;
    r.method = "POST";
    r.body = std::move(body);
    const std::string ts = absl::StrCat(absl::ToUnixMillis(when));
    r.headers["x-paykka-appid"] = "app-1";
    r.headers["x-paykka-timestamp"] = ts;
    r.headers["x-paykka-nonce"] = "n0nce";
    r.headers["x-paykka-sign"] = *PaykkaSignatureHeader(
        *key_, PaykkaResponseStringToSign(ts, "n0nce", r.body));
    return r;
  }

  static RsaPrivateKey* key_;
  static RsaPublicKey* public_;
};
RsaPrivateKey* NotificationTest::key_ = nullptr;
RsaPublicKey* NotificationTest::public_ = nullptr;

TEST_F(NotificationTest, ChecksNonceThenTimestampWindowThenSignature) {
  const std::string body = R"({"merchant_id":"M1"})";
  EXPECT_EQ(VerifyNotification(Signed(kNow, body), *public_, kNow, kWindow),
            NotificationVerdict::kAccepted);
  EXPECT_EQ(VerifyNotification(Signed(kNow - absl::Minutes(6), body), *public_,
                               kNow, kWindow),
            NotificationVerdict::kExpired);
  HttpServerRequest tampered = Signed(kNow, body);
  tampered.body += " ";
  EXPECT_EQ(VerifyNotification(tampered, *public_, kNow, kWindow),
            NotificationVerdict::kUnauthenticated);
  HttpServerRequest unsigned_request = Signed(kNow, body);
  unsigned_request.headers.erase("x-paykka-sign");
  EXPECT_EQ(VerifyNotification(unsigned_request, *public_, kNow, kWindow),
            NotificationVerdict::kUnauthenticated);
  HttpServerRequest no_nonce = Signed(kNow - absl::Minutes(6), body);
  no_nonce.headers.erase("x-paykka-nonce");  // checked before the timestamp
  EXPECT_EQ(VerifyNotification(no_nonce, *public_, kNow, kWindow),
            NotificationVerdict::kUnauthenticated);
}

TEST_F(NotificationTest, AnswersAsPaykkaExpects) {
  struct Case {
    NotificationVerdict verdict;
    int http;
    const char* ret_code;
  };
  for (const Case& c :
       {Case{NotificationVerdict::kAccepted, 200, "000000"},
        Case{NotificationVerdict::kNotPost, 405, "010000"},
        Case{NotificationVerdict::kTooLarge, 413, "010000"},
        Case{NotificationVerdict::kMalformed, 400, "010000"},
        Case{NotificationVerdict::kExpired, 401, "206004"},
        Case{NotificationVerdict::kUnauthenticated, 401, "206003"},
        Case{NotificationVerdict::kTryLater, 503, "010000"}}) {
    HttpServerResponse a = NotificationAnswer(c.verdict);
    EXPECT_EQ(a.status, c.http) << c.ret_code;
    EXPECT_EQ(a.content_type, "application/json");
    EXPECT_EQ(nlohmann::json::parse(a.body).at("ret_code"), c.ret_code);
  }
}

TEST(NotifyEventTypeTest, RefundsPaymentsAndTheRest) {
  EXPECT_EQ(NotifyEventType("REFUND"), v1::EVENT_TYPE_REFUND);
  EXPECT_EQ(NotifyEventType("refund_success"), v1::EVENT_TYPE_REFUND);
  EXPECT_EQ(NotifyEventType(""), v1::EVENT_TYPE_PAYMENT);
  EXPECT_EQ(NotifyEventType("PAYMENT"), v1::EVENT_TYPE_PAYMENT);
  EXPECT_EQ(NotifyEventType("transaction"), v1::EVENT_TYPE_PAYMENT);
  EXPECT_EQ(NotifyEventType("DISPUTE"), v1::EVENT_TYPE_OTHER);
}

}  // namespace
}  // namespace payorch::paykka
