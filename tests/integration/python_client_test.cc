// Polyglot: the Python client in clients/python (Debian's python3-grpcio and
// the stubs generated at build time) against a real payorchd.
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

class PythonClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto stack = Stack::Start();
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
    auto certs = SharedMtlsCertificates();
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = *certs;
  }

  // Runs the client with `args`; its one line of JSON output.
  nlohmann::json Run(const std::string& args, bool expect_ok = true) {
    std::string cmd = absl::StrCat(
        "/usr/bin/python3 " PAYORCH_SOURCE_DIR
        "/clients/python/payorch_client.py --gen-dir ",
        BinaryPath("../gen/python"), " --target ", stack_->grpc_target(),
        " --ca ", certs_->ca_file, " --cert ", certs_->ClientCert("admin"),
        " --key ", certs_->ClientKey("admin"), " ", args,
        expect_ok ? "" : "; true");
    auto out = RunCommand(cmd);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return nullptr;
    return nlohmann::json::parse(*out, nullptr, false);
  }

  std::unique_ptr<Stack> stack_;
  std::optional<MtlsCertificates> certs_;
};

TEST_F(PythonClientTest, ChecksOutPaysAndReadsTheOrderFromPython) {
  std::string trans_id = NewTransId("py");
  std::string base = absl::StrCat("--merchant-id ", Stack::kMerchantId,
                                  " --trans-id ", trans_id);
  nlohmann::json created =
      Run("checkout " + base + " --amount 4200 --currency EUR");
  ASSERT_TRUE(created.is_object()) << created;
  std::string session_id = created.value("session_id", "");
  ASSERT_FALSE(session_id.empty()) << created;
  EXPECT_EQ(created.value("client_key", ""), Stack::kClientKey);
  ASSERT_TRUE(stack_->Pay(session_id, "SUCCESS").ok());

  nlohmann::json order = Run("order " + base);
  ASSERT_TRUE(order.is_object()) << order;
  EXPECT_EQ(order["order"]["status"], "ORDER_STATUS_SUCCESS");
  EXPECT_EQ(order["order"]["amount"], "4200");
  EXPECT_EQ(order["order"]["currency"], "EUR");
}

TEST_F(PythonClientTest, ReadsTheErrorInfoReasonAndFieldViolations) {
  nlohmann::json error =
      Run(absl::StrCat("checkout --merchant-id ", Stack::kMerchantId,
                       " --trans-id ", NewTransId("pybad"),
                       " --amount 0 --currency EURO"),
          /*expect_ok=*/false);
  ASSERT_TRUE(error.is_object()) << error;
  EXPECT_EQ(error["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(error["reason"], "INVALID_FIELD");
  std::string fields = error["field_violations"].dump();
  EXPECT_THAT(fields, ::testing::HasSubstr("\"amount\""));
  EXPECT_THAT(fields, ::testing::HasSubstr("\"currency\""));
}

}  // namespace
}  // namespace payorch::testing
