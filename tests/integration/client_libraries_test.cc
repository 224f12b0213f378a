// Polyglot: the Go, Node.js and Java clients in clients/ run their own
// integration tests against a real stack (redis-server, paykka-sandbox,
// payorchd). Each test starts a fresh stack and hands its addresses to the
// client's test in the environment: PAYORCH_TARGET, PAYORCH_SANDBOX_URL,
// PAYORCH_MERCHANT_ID, PAYORCH_CLIENT_KEY. payorchd serves mTLS with the
// stack's caller policy; the certificates are made at test time
// (SharedMtlsCertificates, scripts/make_mtls_certs.sh): PAYORCH_CA,
// PAYORCH_CERT, PAYORCH_KEY are the "admin" caller (every merchant and RPC),
// PAYORCH_LIMITED_CERT, PAYORCH_LIMITED_KEY the "checkout" caller (no
// ChargeRecurring). The client tests cover create, pay in the sandbox,
// GetOrder SUCCESS, replay, an invalid request with its field violations,
// ChargeRecurring, a retry with the same trans_id, the limited caller
// seeing no stored-card fields and refused ChargeRecurring
// (CALLER_NOT_AUTHORIZED), and a plaintext channel refused.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

class ClientLibraryTest : public ::testing::Test {
 protected:
  // Runs `command` (from the source tree) with the stack's addresses in its
  // environment; the test fails with the command's output unless it exits 0.
  void RunAgainstStack(const std::string& command) {
    auto certs = SharedMtlsCertificates();
    ASSERT_TRUE(certs.ok()) << certs.status();
    auto stack = Stack::Start();  // mTLS, DefaultCallerPolicy()
    ASSERT_TRUE(stack.ok()) << stack.status();
    std::string log = (*stack)->dir().File("client.log");
    auto status = RunCommand(absl::StrCat(
        "cd " PAYORCH_SOURCE_DIR " && env PAYORCH_TARGET=",
        (*stack)->grpc_target(), " PAYORCH_SANDBOX_URL=",
        (*stack)->sandbox_url(), " PAYORCH_MERCHANT_ID=", Stack::kMerchantId,
        " PAYORCH_CLIENT_KEY=", Stack::kClientKey, " PAYORCH_CA=",
        certs->ca_file, " PAYORCH_CERT=", certs->ClientCert("admin"),
        " PAYORCH_KEY=", certs->ClientKey("admin"),
        " PAYORCH_LIMITED_CERT=", certs->ClientCert(kCheckoutIdentity),
        " PAYORCH_LIMITED_KEY=", certs->ClientKey(kCheckoutIdentity), " ",
        command, " >", log, " 2>&1"));
    std::ifstream in(log);
    std::string output((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
    std::cout << output;
    EXPECT_TRUE(status.ok()) << status.status() << "\n" << output;
  }
};

TEST_F(ClientLibraryTest, Go) {
#ifdef PAYORCH_GO_CLIENT_TEST
  RunAgainstStack(PAYORCH_GO_CLIENT_TEST " -test.v -test.count=1");
#else
  GTEST_SKIP() << "Go toolchain not installed (scripts/setup.sh)";
#endif
}

TEST_F(ClientLibraryTest, Node) {
#ifdef PAYORCH_NODE_CLIENT_TEST
  RunAgainstStack(PAYORCH_NODE_CLIENT_TEST);
#else
  GTEST_SKIP()
      << "node or clients/node/node_modules missing (scripts/setup.sh)";
#endif
}

TEST_F(ClientLibraryTest, Java) {
#ifdef PAYORCH_JAVA_CLIENT_TEST
  RunAgainstStack(PAYORCH_JAVA_CLIENT_TEST);
#else
  GTEST_SKIP() << "JDK or grpc-java not installed (scripts/setup.sh)";
#endif
}

}  // namespace
}  // namespace payorch::testing
