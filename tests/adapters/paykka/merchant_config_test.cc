#include "adapters/paykka/merchant_config.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"
#include "gtest/gtest.h"
#include "tests/adapters/paykka/test_merchant.h"
#include "tests/testing/subprocess.h"

namespace payorch::paykka {
namespace {

using ::payorch::paykka::testing::TestKey;
using ::payorch::testing::TempDir;

// The Base64 body of a PEM block, without header lines or newlines.
std::string BareBase64(const std::string& pem) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(pem, '\n')) {
    if (line.empty() || line[0] == '-') continue;
    out += std::string(line);
  }
  return out;
}

class MerchantConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("m1_priv.pem", TestKey(0).ToPkcs8Pem());
    dir_.Write("m1_platform.pem", TestKey(1).PublicKeyPem());
    dir_.Write("m2_priv.b64", BareBase64(TestKey(0).ToPkcs8Pem()));
  }
  std::string WriteConfig(const std::string& text) {
    return dir_.Write("merchants.json", text);
  }
  TempDir dir_;
};

TEST_F(MerchantConfigTest, LoadsMerchantsWithRelativeAndAbsoluteKeyPaths) {
  std::string path =
      WriteConfig(absl::StrCat(R"({"merchants":[
    {"merchant_id":"M1","app_id":"A1","private_key_file":"m1_priv.pem",
     "paykka_public_key_file":")",
                               dir_.File("m1_platform.pem"), R"(",
     "verify_response_signatures":true,"client_key":"ck_1","base_url":"sandbox"},
    {"merchant_id":"M2","app_id":"A2","private_key_file":"m2_priv.b64",
     "client_key":"ck_2","base_url":"http://127.0.0.1:8080/"}]})"));
  absl::StatusOr<std::vector<MerchantConfig>> m = LoadMerchantConfigs(path);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].merchant_id, "M1");
  EXPECT_EQ((*m)[0].app_id, "A1");
  EXPECT_EQ((*m)[0].client_key, "ck_1");
  EXPECT_EQ((*m)[0].base_url, "https://openapi-sandbox.paykka.com");
  EXPECT_TRUE((*m)[0].verify_response_signatures);
  ASSERT_TRUE((*m)[0].platform_public_key.has_value());
  // The loaded keys work: M1 signs, TestKey(0)'s public half verifies.
  absl::StatusOr<std::string> sig = (*m)[0].private_key.SignSha256("x");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(RsaPublicKey::Parse(TestKey(0).PublicKeyPem())
                  ->VerifySha256("x", *sig)
                  .ok());
  EXPECT_EQ((*m)[1].base_url, "http://127.0.0.1:8080");
  EXPECT_FALSE((*m)[1].verify_response_signatures);
  EXPECT_FALSE((*m)[1].platform_public_key.has_value());
}

TEST_F(MerchantConfigTest, ProtocolSettingsDefaultAndOverride) {
  const std::string common =
      R"("app_id":"A1","private_key_file":"m1_priv.pem","client_key":"c",)"
      R"("base_url":"sandbox")";
  absl::StatusOr<std::vector<MerchantConfig>> m =
      LoadMerchantConfigs(WriteConfig(absl::StrCat(
          R"({"merchants":[{"merchant_id":"M1",)", common, R"(},)",
          R"({"merchant_id":"M2",)", common,
          R"(,"query_session_path":"/v3/payment/acq/session/get",)",
          R"("response_sign_recipe":"body"}]})")));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)[0].query_session_path, "/v3/payment/acq/session/query");
  EXPECT_EQ((*m)[0].response_sign_recipe,
            ResponseSignRecipe::kTimestampNonceBody);
  EXPECT_EQ((*m)[1].query_session_path, "/v3/payment/acq/session/get");
  EXPECT_EQ((*m)[1].response_sign_recipe, ResponseSignRecipe::kBody);
  for (const char* bad :
       {R"("query_session_path":"v3/x")", R"("query_session_path":"/a/../b")",
        R"("query_session_path":"/a?x=1")", R"("query_session_path":7)",
        R"("response_sign_recipe":"nonce")", R"("response_sign_recipe":1)"}) {
    absl::StatusOr<std::vector<MerchantConfig>> r =
        LoadMerchantConfigs(WriteConfig(absl::StrCat(
            R"({"merchants":[{"merchant_id":"M1",)", common, ",", bad, "}]}")));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StrContains(r.status().message(), "merchant M1"))
        << r.status();
  }
}

TEST_F(MerchantConfigTest, DuplicateTransIdCodesDefaultOverrideAndErrors) {
  const std::string common =
      R"("app_id":"A1","private_key_file":"m1_priv.pem","client_key":"c",)"
      R"("base_url":"sandbox")";
  absl::StatusOr<std::vector<MerchantConfig>> m =
      LoadMerchantConfigs(WriteConfig(
          absl::StrCat(R"({"merchants":[{"merchant_id":"M1",)", common, R"(},)",
                       R"({"merchant_id":"M2",)", common,
                       R"(,"duplicate_trans_id_codes":["206099","2015"]},)",
                       R"({"merchant_id":"M3",)", common,
                       R"(,"duplicate_trans_id_codes":[]}]})")));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)[0].duplicate_trans_id_codes,
            std::vector<std::string>{"010000"});
  EXPECT_EQ((*m)[1].duplicate_trans_id_codes,
            (std::vector<std::string>{"206099", "2015"}));
  EXPECT_TRUE((*m)[2].duplicate_trans_id_codes.empty());
  const std::pair<const char*, const char*> bad[] = {
      {R"("duplicate_trans_id_codes":"206099")", "must be an array"},
      {R"("duplicate_trans_id_codes":[206099])", "[0] must be a ret_code"},
      {R"("duplicate_trans_id_codes":["2060 99"])", "[0] must be a ret_code"},
      {R"("duplicate_trans_id_codes":[""])", "[0] must be a ret_code"},
      {R"("duplicate_trans_id_codes":["1","000000"])", "[1] \"000000\""},
      {R"("duplicate_trans_id_codes":["206024"])", "means something else"},
      {R"("duplicate_trans_id_codes":["999999"])", "means something else"},
      {R"("duplicate_trans_id_codes":["7","7"])", "listed twice"},
  };
  for (const auto& [entry, why] : bad) {
    absl::StatusOr<std::vector<MerchantConfig>> r = LoadMerchantConfigs(
        WriteConfig(absl::StrCat(R"({"merchants":[{"merchant_id":"M1",)",
                                 common, ",", entry, "}]}")));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << entry;
    EXPECT_TRUE(absl::StrContains(r.status().message(),
                                  "merchant M1: \"duplicate_trans_id_codes\""))
        << r.status();
    EXPECT_TRUE(absl::StrContains(r.status().message(), why)) << r.status();
  }
}

TEST(ResolveBaseUrlTest, AliasesAndUrls) {
  EXPECT_EQ(*ResolveBaseUrl("production"), "https://openapi.paykka.com");
  EXPECT_EQ(*ResolveBaseUrl("production-eu"), "https://openapi.eu.paykka.com");
  EXPECT_EQ(*ResolveBaseUrl("https://h:1"), "https://h:1");
  EXPECT_FALSE(ResolveBaseUrl("ftp://h").ok());
  EXPECT_FALSE(ResolveBaseUrl("prod").ok());
}

struct BadCase {
  std::string name;
  std::string merchants_json;
  std::string expected_in_message;
};

TEST_F(MerchantConfigTest, ClearErrorsThatNeverHoldKeyContents) {
  const std::string ok_fields =
      R"("app_id":"A1","client_key":"ck","base_url":"sandbox")";
  const BadCase cases[] = {
      {"duplicate",
       R"([{"merchant_id":"M1","private_key_file":"m1_priv.pem",)" + ok_fields +
           R"(},{"merchant_id":"M1","private_key_file":"m1_priv.pem",)" +
           ok_fields + "}]",
       "M1 is configured twice"},
      {"missing app_id",
       R"([{"merchant_id":"M1","private_key_file":"m1_priv.pem","client_key":"ck","base_url":"sandbox"}])",
       "app_id"},
      {"missing key file",
       R"([{"merchant_id":"M1","private_key_file":"nope.pem",)" + ok_fields +
           "}]",
       "nope.pem"},
      {"public key as private key",
       R"([{"merchant_id":"M1","private_key_file":"m1_platform.pem",)" +
           ok_fields + "}]",
       "m1_platform.pem"},
      {"verify without platform key",
       R"([{"merchant_id":"M1","private_key_file":"m1_priv.pem","verify_response_signatures":true,)" +
           ok_fields + "}]",
       "paykka_public_key_file"},
      {"unknown key",
       R"([{"merchant_id":"M1","private_key_file":"m1_priv.pem","verify_response_signature":true,)" +
           ok_fields + "}]",
       "verify_response_signature"},
      {"bad base_url",
       R"([{"merchant_id":"M1","private_key_file":"m1_priv.pem","app_id":"A1","client_key":"ck","base_url":"staging"}])",
       "base_url"},
  };
  const std::string priv_b64 = BareBase64(TestKey(0).ToPkcs8Pem());
  for (const BadCase& c : cases) {
    std::string path = WriteConfig(R"({"merchants":)" + c.merchants_json + "}");
    absl::StatusOr<std::vector<MerchantConfig>> m = LoadMerchantConfigs(path);
    ASSERT_FALSE(m.ok()) << c.name;
    const std::string message(m.status().message());
    EXPECT_NE(message.find(c.expected_in_message), std::string::npos)
        << c.name << ": " << message;
    EXPECT_NE(message.find("M1"), std::string::npos) << c.name << message;
    EXPECT_EQ(message.find(priv_b64.substr(40, 40)), std::string::npos)
        << c.name;
    EXPECT_EQ(message.find("BEGIN"), std::string::npos) << c.name;
  }
  EXPECT_FALSE(LoadMerchantConfigs(WriteConfig("{not json")).ok());
  EXPECT_FALSE(LoadMerchantConfigs(WriteConfig(R"({"merchants":{}})")).ok());
  EXPECT_FALSE(LoadMerchantConfigs(dir_.File("absent.json")).ok());
}

}  // namespace
}  // namespace payorch::paykka
