#include "common/crypto.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/openssl_key_pair.h"
#include "tests/testing/subprocess.h"

namespace payorch {
namespace {

using ::payorch::testing::RunCommand;
using ::payorch::testing::TempDir;

// One key pair made by the openssl CLI, shared by the suite.
class CryptoTest : public ::payorch::testing::OpensslKeyPairTest {};

TEST(Base64Test, KnownVectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(*Base64Decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(*Base64Decode("Zm9vYmE"), "fooba");  // padding optional
  EXPECT_EQ(*Base64Decode("Zm9v\nYmFy"), "foobar");
  EXPECT_FALSE(Base64Decode("Zm9v*").ok());
  EXPECT_FALSE(Base64Decode("Zg==Zg").ok());
}

TEST(Base64Test, RoundTripsAllByteValues) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n < all.size(); n += 37) {
    std::string s = all.substr(n);
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  }
}

TEST(PercentTest, EncodesBase64SpecialsLikeUrlEncoder) {
  EXPECT_EQ(PercentEncode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
  EXPECT_EQ(PercentEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(PercentEncode(" \n"), "%20%0A");
  EXPECT_EQ(*PercentDecode("a%2Bb%2fc%3D"), "a+b/c=");
  EXPECT_FALSE(PercentDecode("%2").ok());
  EXPECT_FALSE(PercentDecode("%zz").ok());
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(*PercentDecode(PercentEncode(all)), all);
}

TEST(HashTest, Sha256KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(RandomHex(16).size(), 32u);
  EXPECT_NE(RandomHex(16), RandomHex(16));
}

TEST_F(CryptoTest, OurSignatureVerifiesWithOpensslCli) {
  auto key = RsaPrivateKey::Parse(Read("priv.pem"));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->bits(), 2048);
  std::string data = "POST\n/v3/payment/acq\n1\nnonce\n{\"a\":1}\n";
  auto sig = key->SignSha256(data);
  ASSERT_TRUE(sig.ok());
  dir_->Write("data.bin", data);
  dir_->Write("sig.bin", *sig);
  auto out = RunCommand("openssl dgst -sha256 -verify " +
                        dir_->File("pub.pem") + " -signature " +
                        dir_->File("sig.bin") + " " + dir_->File("data.bin"));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, ::testing::HasSubstr("Verified OK"));
}

TEST_F(CryptoTest, ParsesPemAndBareBase64Keys) {
  std::string pem = Read("priv.pem");
  // Bare Base64 of the PKCS#8 DER and of the SPKI DER.
  auto der_b64 = RunCommand("openssl pkey -in " + dir_->File("priv.pem") +
                            " -outform DER | base64 -w0");
  auto pub_b64 = RunCommand("openssl pkey -in " + dir_->File("priv.pem") +
                            " -pubout -outform DER | base64 -w0");
  auto pkcs1 = RunCommand("openssl rsa -in " + dir_->File("priv.pem") +
                          " -traditional 2>/dev/null");
  auto pkcs1_pub = RunCommand("openssl rsa -in " + dir_->File("priv.pem") +
                              " -RSAPublicKey_out 2>/dev/null");
  ASSERT_TRUE(der_b64.ok() && pub_b64.ok() && pkcs1.ok() && pkcs1_pub.ok());
  auto k1 = RsaPrivateKey::Parse(pem);
  auto k2 = RsaPrivateKey::Parse(*der_b64);
  auto k3 = RsaPrivateKey::Parse(*pkcs1);
  ASSERT_TRUE(k1.ok() && k2.ok() && k3.ok());
  EXPECT_EQ(k1->ToPkcs8Pem(), k2->ToPkcs8Pem());
  EXPECT_EQ(k1->ToPkcs8Pem(), k3->ToPkcs8Pem());
  EXPECT_THAT(k1->ToPkcs8Pem(), ::testing::HasSubstr("BEGIN PRIVATE KEY"));
  auto sig = k1->SignSha256("x");
  for (const std::string& text :
       {Read("pub.pem"), *pub_b64, *pkcs1_pub, k1->PublicKeyPem()}) {
    auto pub = RsaPublicKey::Parse(text);
    ASSERT_TRUE(pub.ok()) << text;
    EXPECT_TRUE(pub->VerifySha256("x", *sig).ok());
  }
  EXPECT_EQ(RsaPrivateKey::Parse("not a key").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      RsaPublicKey::Parse("-----BEGIN PUBLIC KEY-----\nAAAA\n").status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(GenerateTest, GeneratedKeyWorks) {
  auto key = RsaPrivateKey::Generate(2048);
  ASSERT_TRUE(key.ok());
  auto pub = RsaPublicKey::Parse(key->PublicKeyPem());
  ASSERT_TRUE(pub.ok());
  auto sig = key->SignSha256("data");
  EXPECT_TRUE(pub->VerifySha256("data", *sig).ok());
  EXPECT_EQ(pub->VerifySha256("datb", *sig).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(ReadFileTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadFile("/nonexistent/x").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace payorch
