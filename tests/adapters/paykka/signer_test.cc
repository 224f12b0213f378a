#include "adapters/paykka/signer.h"

#include <map>
#include <string>

#include "common/crypto.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace payorch::paykka {
namespace {

using ::payorch::testing::RunCommand;
using ::payorch::testing::TempDir;

// A merchant whose key pair was made by the openssl CLI, so the checks do
// not depend on payorch's own crypto code agreeing with itself.
class SignerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    priv_ = dir_.File("priv.pem");
    pub_ = dir_.File("pub.pem");
    ASSERT_TRUE(RunCommand("openssl genpkey -algorithm RSA -pkeyopt "
                           "rsa_keygen_bits:2048 -out " +
                           priv_)
                    .ok());
    ASSERT_TRUE(
        RunCommand("openssl pkey -in " + priv_ + " -pubout -out " + pub_).ok());
    absl::StatusOr<std::string> pem = ReadFile(priv_);
    ASSERT_TRUE(pem.ok());
    absl::StatusOr<RsaPrivateKey> key = RsaPrivateKey::Parse(*pem);
    ASSERT_TRUE(key.ok()) << key.status();
    merchant_.emplace(MerchantConfig{"M1", "A1", *key, std::nullopt, false,
                                     "ck", "http://x"});
  }

  // Verifies `sign_header` over `text` with `openssl dgst -verify`.
  bool OpensslVerifies(const std::string& text,
                       const std::string& sign_header) {
    absl::StatusOr<std::string> b64 = PercentDecode(sign_header);
    EXPECT_TRUE(b64.ok());
    absl::StatusOr<std::string> sig = Base64Decode(*b64);
    EXPECT_TRUE(sig.ok());
    dir_.Write("data.bin", text);
    dir_.Write("sig.bin", *sig);
    return RunCommand("openssl dgst -sha256 -verify " + pub_ + " -signature " +
                      dir_.File("sig.bin") + " " + dir_.File("data.bin"))
        .ok();
  }

  TempDir dir_;
  std::string priv_, pub_;
  std::optional<MerchantConfig> merchant_;
};

TEST_F(SignerTest, HeadersVerifyWithOpensslOverTheReconstructedString) {
  const std::string body = R"({"merchant_id":"M1","order_id":"GW1"})";
  const absl::Time now = absl::FromUnixMillis(1757387467986);
  absl::StatusOr<HttpHeaders> headers =
      SignPaykkaRequest(*merchant_, "/v3/payment/acq/query", body, now);
  ASSERT_TRUE(headers.ok()) << headers.status();
  std::map<std::string, std::string> h(headers->begin(), headers->end());
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h["x-paykka-appid"], "A1");
  EXPECT_EQ(h["x-paykka-timestamp"], "1757387467986");
  EXPECT_EQ(h["x-paykka-sign-alg"], "SHA256_WITH_RSA");
  EXPECT_EQ(h["x-paykka-nonce"].size(), 32u);
  // URL-encoded Base64: no raw '+', '/' or '='.
  EXPECT_EQ(h["x-paykka-sign"].find_first_of("+/="), std::string::npos);
  const std::string text = "POST\n/v3/payment/acq/query\n1757387467986\n" +
                           h["x-paykka-nonce"] + "\n" + body;
  EXPECT_TRUE(OpensslVerifies(text, h["x-paykka-sign"]));
  // Any change to the signed string breaks verification.
  EXPECT_FALSE(OpensslVerifies(text + " ", h["x-paykka-sign"]));
}

TEST_F(SignerTest, NonceIsFreshPerRequest) {
  absl::StatusOr<HttpHeaders> a =
      SignPaykkaRequest(*merchant_, "/p", "{}", absl::Now());
  absl::StatusOr<HttpHeaders> b =
      SignPaykkaRequest(*merchant_, "/p", "{}", absl::Now());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)[2].second, (*b)[2].second);
}

TEST_F(SignerTest, VerifiesResponsesSignedWithThePlatformKey) {
  // openssl plays PayKKa: it signs "ts\nnonce\nbody" with the platform key.
  const std::string platform_priv = dir_.File("platform.pem");
  const std::string platform_pub = dir_.File("platform_pub.pem");
  ASSERT_TRUE(RunCommand("openssl genpkey -algorithm RSA -pkeyopt "
                         "rsa_keygen_bits:2048 -out " +
                         platform_priv)
                  .ok());
  ASSERT_TRUE(RunCommand("openssl pkey -in " + platform_priv +
                         " -pubout -out " + platform_pub)
                  .ok());
  HttpResponse response;
  response.status = 200;
  response.body = R"({"ret_code":"000000","ret_msg":"ok"})";
  response.headers["x-paykka-timestamp"] = "1757387467999";
  response.headers["x-paykka-nonce"] = "abcdef0123456789";
  dir_.Write("resp.txt", "1757387467999\nabcdef0123456789\n" + response.body);
  absl::StatusOr<std::string> b64 =
      RunCommand("openssl dgst -sha256 -sign " + platform_priv + " " +
                 dir_.File("resp.txt") + " | base64 -w0");
  ASSERT_TRUE(b64.ok()) << b64.status();
  response.headers["x-paykka-sign"] = PercentEncode(*b64);

  MerchantConfig m = *merchant_;
  m.verify_response_signatures = true;
  absl::StatusOr<RsaPublicKey> pub =
      RsaPublicKey::Parse(*ReadFile(platform_pub));
  ASSERT_TRUE(pub.ok());
  m.platform_public_key = *pub;
  EXPECT_TRUE(VerifyPaykkaResponse(m, response).ok());

  HttpResponse tampered = response;
  tampered.body = R"({"ret_code":"000000","ret_msg":"ok!"})";
  EXPECT_EQ(VerifyPaykkaResponse(m, tampered).code(),
            absl::StatusCode::kUnauthenticated);
  HttpResponse unsigned_response = response;
  unsigned_response.headers.erase("x-paykka-sign");
  EXPECT_EQ(VerifyPaykkaResponse(m, unsigned_response).code(),
            absl::StatusCode::kUnauthenticated);
  // Verification off: anything passes.
  m.verify_response_signatures = false;
  EXPECT_TRUE(VerifyPaykkaResponse(m, unsigned_response).ok());
}

}  // namespace
}  // namespace payorch::paykka
