#include "adapters/paykka/signing.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/openssl_key_pair.h"
#include "tests/testing/subprocess.h"

namespace payorch::paykka {
namespace {

using ::payorch::testing::RunCommand;
using ::payorch::testing::TempDir;

// One key pair made by the openssl CLI, shared by the suite.
class SigningTest : public ::payorch::testing::OpensslKeyPairTest {};

TEST(SigningRecipeTest, WorkedExampleFromPaykkaApiDoc) {
  std::string s = PaykkaRequestStringToSign(
      "POST", "/v3/payment/acq/query", "1757387467986", "4326048250346354435",
      R"({"merchant_id":"18356675194960","order_id":"GW20620xxxxx6999"})");
  EXPECT_EQ(
      s,
      "POST\n/v3/payment/acq/query\n1757387467986\n4326048250346354435\n"
      R"({"merchant_id":"18356675194960","order_id":"GW20620xxxxx6999"})");
  EXPECT_EQ(s.size(), 123u);
  EXPECT_EQ(s.back(), '}');
  EXPECT_EQ(PaykkaResponseStringToSign("1", "n", "{}"), "1\nn\n{}");
}

TEST_F(SigningTest, OpensslCliSignatureVerifiesWithOurCode) {
  std::string data =
      PaykkaRequestStringToSign("POST", "/v3/payment/acq/session",
                                "1757387467986", "abcdefghij", "{\"x\":\"y\"}");
  dir_->Write("data2.bin", data);
  auto b64 = RunCommand("openssl dgst -sha256 -sign " + dir_->File("priv.pem") +
                        " " + dir_->File("data2.bin") + " | base64 -w0");
  ASSERT_TRUE(b64.ok()) << b64.status();
  auto pub = RsaPublicKey::Parse(Read("pub.pem"));
  ASSERT_TRUE(pub.ok()) << pub.status();
  // Raw Base64 and the URL-encoded header form both verify.
  EXPECT_TRUE(VerifyPaykkaSignatureHeader(*pub, data, *b64).ok());
  EXPECT_TRUE(
      VerifyPaykkaSignatureHeader(*pub, data, PercentEncode(*b64)).ok());
  EXPECT_EQ(VerifyPaykkaSignatureHeader(*pub, data + " ", *b64).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(VerifyPaykkaSignatureHeader(*pub, data, "***").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SigningTest, HeaderRoundTripAndUrlEncoding) {
  auto key = RsaPrivateKey::Parse(Read("priv.pem"));
  auto pub = RsaPublicKey::Parse(key->PublicKeyPem());
  ASSERT_TRUE(pub.ok());
  auto header = PaykkaSignatureHeader(*key, "hello");
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->find_first_of("+/="), std::string::npos);
  EXPECT_TRUE(VerifyPaykkaSignatureHeader(*pub, "hello", *header).ok());
}

TEST_F(SigningTest, SignedBodyVerifiesOnlyWithEveryHeaderAndTheExactBody) {
  auto key = RsaPrivateKey::Parse(Read("priv.pem"));
  ASSERT_TRUE(key.ok());
  auto pub = RsaPublicKey::Parse(key->PublicKeyPem());
  ASSERT_TRUE(pub.ok());
  const std::string body = R"({"ret_code":"000000"})";
  SignatureHeaders headers{"1767225600000", "n0nce", ""};
  headers.sign = *PaykkaSignatureHeader(
      *key, PaykkaResponseStringToSign(headers.timestamp, headers.nonce, body));
  EXPECT_TRUE(VerifySignedBody(*pub, headers, body).ok());
  EXPECT_EQ(VerifySignedBody(*pub, headers, body + " ").code(),
            absl::StatusCode::kUnauthenticated);
  SignatureHeaders no_nonce = headers;
  no_nonce.nonce.clear();
  EXPECT_EQ(VerifySignedBody(*pub, no_nonce, body).code(),
            absl::StatusCode::kUnauthenticated);
  SignatureHeaders garbage = headers;
  garbage.sign = "***";
  EXPECT_EQ(VerifySignedBody(*pub, garbage, body).code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace payorch::paykka
