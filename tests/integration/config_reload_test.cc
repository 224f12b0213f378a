// Hot reload of the merchant configuration and keys with real processes
// (README "Operator's runbook"): a merchant key rotated on disk while calls
// run is used by new calls within seconds and fails none, in place and
// through a Kubernetes Secret's ..data swap; an invalid configuration is
// rejected while the previous one keeps serving; --config_reload=false keeps
// the key read at start.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <functional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/load.h"
#include "tests/integration/stack.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

using ::testing::HasSubstr;

// Requests the sandbox verified with key `index` of kMerchantId (-1 when
// the sandbox does not answer).
long VerifiedBy(const Stack& stack, int index) {
  auto keys = stack.SandboxCall(
      "GET",
      absl::StrCat("/sandbox/merchants/", Stack::kMerchantId, "/public-keys"));
  if (!keys.ok() || (*keys)["keys"].size() <= static_cast<size_t>(index)) {
    return -1;
  }
  return (*keys)["keys"][index]["verified"].get<long>();
}

// payorch_config_reload_total{config="merchants",result=...} on replica 0.
std::string ReloadMetric(const Stack& stack, const std::string& result) {
  auto metrics = RunCommand("curl -sf http://" + stack.http_target() +
                            "/metrics | grep '^payorch_config_reload_total' "
                            "| grep 'config=\"merchants\"' | grep 'result=\"" +
                            result + "\"' || true");
  return metrics.ok() ? *metrics : "";
}

bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// Continuous load; the key is rotated on disk (its public half registered
// at the sandbox first, as PayKKa requires); once the sandbox sees the new
// key, the old one is retired there, so a call still signing with it would
// fail. No call fails at any point.
void RotateKeyUnderLoad(bool secret_volume) {
  StackOptions options;
  options.secret_volume = secret_volume;
  auto stack = Stack::Start(options);
  ASSERT_TRUE(stack.ok()) << stack.status();
  Load load((*stack)->Channel(), /*threads=*/4);
  ASSERT_TRUE(WaitUntil([&] { return load.calls() >= 50; }, absl::Seconds(30)));
  ASSERT_GT(VerifiedBy(**stack, 0), 0);

  auto next = (*stack)->NewMerchantKey();
  ASSERT_TRUE(next.ok()) << next.status();
  const std::string key_pem = next->first;
  const int index = next->second;
  const absl::Time published = absl::Now();
  ASSERT_TRUE(
      (*stack)->PublishMerchantFiles((*stack)->merchants_json(), key_pem).ok());
  ASSERT_TRUE(WaitUntil([&] { return VerifiedBy(**stack, index) > 0; },
                        absl::Seconds(10)))
      << (*stack)->PayorchdLog();
  const absl::Duration latency = absl::Now() - published;
  // Calls that started before the swap finish with the old key; then the
  // sandbox stops accepting it.
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE((*stack)
                  ->SandboxCall("DELETE", absl::StrCat("/sandbox/merchants/",
                                                       Stack::kMerchantId,
                                                       "/public-keys/0"))
                  .ok());
  const long old_key_uses = VerifiedBy(**stack, 0);
  const int calls_at_retire = load.calls();
  absl::SleepFor(absl::Seconds(2));
  load.Stop();
  std::printf(
      "key rotation (%s): new key used %.0f ms after the swap; %d calls, "
      "%d failed; %d calls after the old key was retired\n",
      secret_volume ? "..data swap" : "file renamed in place",
      absl::ToDoubleMilliseconds(latency), load.calls(), load.failures(),
      load.calls() - calls_at_retire);
  EXPECT_EQ(load.failures(), 0) << ::testing::PrintToString(load.errors());
  EXPECT_GT(load.calls() - calls_at_retire, 20);
  EXPECT_EQ(VerifiedBy(**stack, 0), old_key_uses);
  EXPECT_LT(latency, absl::Seconds(5));
  EXPECT_THAT((*stack)->PayorchdLog(),
              HasSubstr("\"msg\":\"merchant configuration reloaded\""));
  EXPECT_THAT(ReloadMetric(**stack, "applied"), HasSubstr("} "));
}

TEST(ConfigReloadTest, KeyRotatedInPlaceUnderLoadFailsNoCall) {
  RotateKeyUnderLoad(/*secret_volume=*/false);
}

TEST(ConfigReloadTest, KeyRotatedBySecretDataSwapUnderLoadFailsNoCall) {
  RotateKeyUnderLoad(/*secret_volume=*/true);
}

// Invalid versions of the Secret (not JSON; a misspelt key; a key file that
// is not a key) are each rejected with a JSON log line and a metric while
// calls keep succeeding with the configuration in force; a valid version
// afterwards is applied.
TEST(ConfigReloadTest, InvalidConfigIsRejectedAndTheOldOneKeepsServing) {
  StackOptions options;
  options.secret_volume = true;
  auto stack = Stack::Start(options);
  ASSERT_TRUE(stack.ok()) << stack.status();
  const std::string good_json = (*stack)->merchants_json();
  const std::string good_key = (*stack)->merchant_key_pem();
  std::string misspelt = good_json;
  const std::string field = "\"verify_response_signatures\"";
  misspelt.replace(misspelt.find(field), field.size(),
                   "\"verify_response_signature\"");
  Load load((*stack)->Channel(), /*threads=*/2);
  const std::pair<std::string, std::string> bad[] = {
      {"{\"merchants\": [", good_key},
      {misspelt, good_key},
      {good_json, "-----BEGIN PRIVATE KEY-----\nnot a key\n"}};
  int rejected = 0;
  for (const auto& [json, key] : bad) {
    ASSERT_TRUE((*stack)->PublishMerchantFiles(json, key).ok());
    ++rejected;
    ASSERT_TRUE(WaitUntil(
        [&] {
          return absl::StrContains(ReloadMetric(**stack, "rejected"),
                                   absl::StrCat("} ", rejected));
        },
        absl::Seconds(10)))
        << (*stack)->PayorchdLog();
    const int before = load.calls();
    absl::SleepFor(absl::Milliseconds(500));
    EXPECT_GT(load.calls(), before);  // still serving
  }
  ASSERT_TRUE((*stack)->PublishMerchantFiles(good_json, good_key).ok());
  EXPECT_TRUE(
      WaitUntil([&] { return !ReloadMetric(**stack, "applied").empty(); },
                absl::Seconds(10)));
  load.Stop();
  std::printf("3 invalid versions rejected: %d calls, %d failed\n",
              load.calls(), load.failures());
  EXPECT_EQ(load.failures(), 0) << ::testing::PrintToString(load.errors());
  const std::string log = (*stack)->PayorchdLog();
  EXPECT_THAT(log, HasSubstr("\"level\":\"error\",\"msg\":\"merchant "
                             "configuration rejected, the previous one "
                             "stays\""));
  EXPECT_THAT(log, HasSubstr("unknown key"));
  EXPECT_THAT(log, HasSubstr("\"in_force\":\"previous\""));
}

// --config_reload=false: a rotated key is not picked up (the chart's
// checksums roll the pods instead), and calls keep signing with the key
// read at start.
TEST(ConfigReloadTest, ReloadOffKeepsTheKeyReadAtStart) {
  auto stack = Stack::Start(StackOptions::Payorchd({"--config_reload=false"}));
  ASSERT_TRUE(stack.ok()) << stack.status();
  auto next = (*stack)->NewMerchantKey();
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(
      (*stack)
          ->PublishMerchantFiles((*stack)->merchants_json(), next->first)
          .ok());
  Load load((*stack)->Channel(), /*threads=*/1);
  absl::SleepFor(absl::Seconds(2));
  load.Stop();
  EXPECT_EQ(load.failures(), 0);
  EXPECT_GT(load.calls(), 0);
  EXPECT_EQ(VerifiedBy(**stack, next->second), 0);
  EXPECT_GT(VerifiedBy(**stack, 0), 0);
  EXPECT_THAT((*stack)->PayorchdLog(),
              ::testing::Not(HasSubstr("merchant configuration reloaded")));
}

}  // namespace
}  // namespace payorch::testing
