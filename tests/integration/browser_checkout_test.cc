// The shopper's side in a real browser: a whole stack on loopback (a real
// redis-server, paykka-sandbox, two payorchd replicas serving mTLS) and
// tests/browser/checkout.test.js, which creates checkouts over mTLS with the
// Node.js client on replica 0 (PayKKa's webhooks go to replica 0), pays them
// in headless Chromium on the sandbox's hosted checkout page (success card,
// 3DS card through its challenge, a decline then a retry), checks the amount
// shown and the redirect to return_url, and watches each order with
// WatchOrder on replica 1 while the shopper pays: the outcome arrives there
// as an event from the webhook replica 0 received. Screenshots of each page
// are kept under <build>/test-artifacts/browser/ (the path is printed).
//
// Skips only when no chromium is installed (PAYORCH_CHROMIUM, default
// /usr/bin/chromium); scripts/setup.sh installs it and the pinned
// puppeteer-core (tests/browser/package-lock.json), so CI runs it.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

std::string Chromium() {
  const char* env = std::getenv("PAYORCH_CHROMIUM");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/chromium";
}

TEST(BrowserCheckoutTest, ShopperPaysOnTheHostedCheckoutPage) {
  if (access(Chromium().c_str(), X_OK) != 0) {
    GTEST_SKIP() << "no chromium at " << Chromium()
                 << " (scripts/setup.sh installs Debian's chromium)";
  }
  for (const char* dir : {"/tests/browser/node_modules/puppeteer-core",
                          "/clients/node/node_modules/@grpc/grpc-js"}) {
    ASSERT_EQ(access((std::string(PAYORCH_SOURCE_DIR) + dir).c_str(), R_OK), 0)
        << PAYORCH_SOURCE_DIR << dir << " missing: run scripts/setup.sh";
  }
  auto certs = SharedMtlsCertificates();
  ASSERT_TRUE(certs.ok()) << certs.status();
  auto stack = Stack::Start(StackOptions::Payorchd({}, /*replicas=*/2));
  ASSERT_TRUE(stack.ok()) << stack.status();
  std::string artifacts = PAYORCH_BROWSER_ARTIFACTS;
  std::cout << "screenshots in " << artifacts << std::endl;
  std::string log = (*stack)->dir().File("browser.log");
  auto status = RunCommand(absl::StrCat(
      "cd " PAYORCH_SOURCE_DIR " && rm -rf ", artifacts,
      " && env PAYORCH_TARGET=", (*stack)->grpc_target(0),
      " PAYORCH_OTHER_TARGET=", (*stack)->grpc_target(1),
      " PAYORCH_WEBHOOK_URL=http://", (*stack)->webhook_target(0),
      "/webhooks/paykka PAYORCH_SANDBOX_URL=", (*stack)->sandbox_url(),
      " PAYORCH_MERCHANT_ID=", Stack::kMerchantId, " PAYORCH_CA=",
      certs->ca_file, " PAYORCH_CERT=", certs->ClientCert("admin"),
      " PAYORCH_KEY=", certs->ClientKey("admin"),
      " PAYORCH_CHROMIUM=", Chromium(), " PAYORCH_ARTIFACT_DIR=", artifacts,
      " timeout -k 5 75 node --test --test-concurrency=1 "
      "tests/browser/checkout.test.js >",
      log, " 2>&1"));
  std::ifstream in(log);
  std::string output((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
  std::cout << output;
  EXPECT_TRUE(status.ok()) << status.status() << "\n" << output;
}

}  // namespace
}  // namespace payorch::testing
