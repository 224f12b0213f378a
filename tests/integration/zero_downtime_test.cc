// Zero-downtime operations with real processes (README "Operator's
// runbook"): rolling restarts of 2 payorchd replicas behind a client-side
// round-robin channel lose no call and create nothing twice; a Redis outage
// under mixed load leaves queries and readiness untouched while mutating
// calls fail closed.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/load.h"
#include "tests/integration/stack.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;
using grpc::health::v1::HealthCheckResponse;

// One channel over every replica's static address as a real caller opens
// it (mTLS with the "admin" client certificate), balanced per call
// (round_robin) over the replicas whose readiness health service is SERVING
// (client-side health checking, as README "Operator's runbook" tells callers
// to configure), reconnecting quickly to a restarted replica.
std::shared_ptr<grpc::Channel> RoundRobinChannel(const Stack& stack,
                                                 int replicas) {
  std::string target = "ipv4:";
  for (int i = 0; i < replicas; ++i) {
    absl::StrAppend(&target, i == 0 ? "" : ",", stack.grpc_target(i));
  }
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(
      R"({"loadBalancingConfig": [{"round_robin": {}}],
          "healthCheckConfig": {"serviceName": "payorch.v1.PaymentOrchestrator"}})");
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // The server certificate names 127.0.0.1 and localhost; an address list
  // has no single authority to check it against.
  args.SetSslTargetNameOverride("localhost");
  return grpc::CreateCustomChannel(target, stack.CallerCredentials("admin"),
                                   args);
}

bool WaitForHealth(const Stack& stack, int replica, const std::string& service,
                   HealthCheckResponse::ServingStatus want,
                   absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (HealthOf(stack, replica, service) == want) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// 10 rolling restarts in a row (SIGTERM one replica, start it again on the
// same ports, wait until it is SERVING, next) under continuous load over
// mTLS: no call fails, and the sandbox created each checkout exactly once.
TEST(ZeroDowntimeTest, RollingRestartsUnderLoadFailNoCall) {
  StackOptions options = StackOptions::Payorchd(
      {"--drain_delay=1s", "--drain_grace=10s"}, /*replicas=*/2);
  options.keep_ports = true;
  auto stack = Stack::Start(options);
  ASSERT_TRUE(stack.ok()) << stack.status();
  Load load(RoundRobinChannel(**stack, 2), /*threads=*/6);
  while (load.calls() < 50) absl::SleepFor(absl::Milliseconds(20));

  constexpr int kRestarts = 10;
  for (int n = 0; n < kRestarts; ++n) {
    const int replica = n % 2;
    ASSERT_TRUE((*stack)->KillPayorchd(replica, SIGTERM).ok());
    ASSERT_TRUE((*stack)->StartPayorchd(replica).ok());
    ASSERT_TRUE(WaitForHealth(**stack, replica, kReadyHealth,
                              HealthCheckResponse::SERVING, absl::Seconds(10)));
    // The round-robin channel reconnects (backoff at most 500 ms).
    absl::SleepFor(absl::Milliseconds(800));
  }
  load.Stop();
  std::printf("%d rolling restarts: %d calls, %d failed\n", kRestarts,
              load.calls(), load.failures());
  EXPECT_EQ(load.failures(), 0) << ::testing::PrintToString(load.errors());

  auto counters = (*stack)->Counters();
  ASSERT_TRUE(counters.ok());
  const auto& creates = (*counters)["creates_by_trans_id"];
  int not_once = 0;
  const std::vector<std::string> created = load.created();
  for (const std::string& trans_id : created) {
    if (creates.value(trans_id, 0) != 1) ++not_once;
  }
  int duplicates = 0;
  for (const auto& [trans_id, count] : creates.items()) {
    if (count.get<int>() > 1) ++duplicates;
  }
  std::printf("  %zu checkouts: %d not created exactly once, %d duplicated\n",
              created.size(), not_once, duplicates);
  EXPECT_GT(created.size(), 100u);
  EXPECT_EQ(not_once, 0);
  EXPECT_EQ(duplicates, 0);
}

// Redis stopped for 5 s under mixed load: queries succeed throughout,
// mutating calls fail closed with IDEMPOTENCY_STORE_UNAVAILABLE (nothing else),
// readiness stays SERVING while the mutating health service does not, and
// creates succeed again once Redis is back.
TEST(ZeroDowntimeTest, RedisOutageKeepsQueriesAndReadiness) {
  auto stack = Stack::Start(StackOptions::Payorchd({}, /*replicas=*/1));
  ASSERT_TRUE(stack.ok()) << stack.status();
  auto stub = (*stack)->Stub();
  v1::CreateCheckoutResponse before;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(
        stub->CreateCheckout(&ctx, DropInCheckout("outage-before"), &before)
            .ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> queries{0}, query_failures{0}, creates_ok{0}, fail_closed{0},
      other_failures{0};
  std::thread querier([&] {
    while (!stop.load()) {
      v1::GetSessionStatusRequest q;
      q.set_merchant_id(Stack::kMerchantId);
      q.set_session_id(before.session_id());
      v1::GetSessionStatusResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Seconds(5));
      ++queries;
      if (!stub->GetSessionStatus(&ctx, q, &resp).ok()) ++query_failures;
    }
  });
  std::thread creator([&] {
    for (int i = 0; !stop.load(); ++i) {
      v1::CreateCheckoutResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Seconds(5));
      grpc::Status st = stub->CreateCheckout(
          &ctx,
          DropInCheckout(
              absl::StrCat("outage-", i, "-", absl::ToUnixMicros(absl::Now()))),
          &resp);
      if (st.ok()) {
        ++creates_ok;
      } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE &&
                 ReasonOf(st) == "IDEMPOTENCY_STORE_UNAVAILABLE") {
        ++fail_closed;
      } else {
        ++other_failures;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_TRUE((*stack)->StopRedis().ok());
  const absl::Time back = absl::Now() + absl::Seconds(5);
  int not_ready = 0;
  bool mutating_down = false;
  while (absl::Now() < back) {
    if (HealthOf(**stack, 0, kReadyHealth) != HealthCheckResponse::SERVING) {
      ++not_ready;
    }
    mutating_down |= HealthOf(**stack, 0, kMutatingHealth) ==
                     HealthCheckResponse::NOT_SERVING;
    absl::SleepFor(absl::Milliseconds(100));
  }
  const int closed_during = fail_closed.load();
  ASSERT_TRUE((*stack)->StartRedis().ok());
  EXPECT_TRUE(WaitForHealth(**stack, 0, kMutatingHealth,
                            HealthCheckResponse::SERVING, absl::Seconds(10)));
  const int ok_at_recovery = creates_ok.load();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (creates_ok.load() < ok_at_recovery + 5 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  stop.store(true);
  querier.join();
  creator.join();
  std::printf(
      "Redis down 5 s: %d queries (%d failed), creates %d ok / %d failed "
      "closed / %d other failures, readiness not SERVING %d times\n",
      queries.load(), query_failures.load(), creates_ok.load(),
      fail_closed.load(), other_failures.load(), not_ready);
  EXPECT_EQ(query_failures.load(), 0);
  EXPECT_EQ(other_failures.load(), 0);
  EXPECT_GT(closed_during, 0);
  EXPECT_EQ(not_ready, 0);
  EXPECT_TRUE(mutating_down);
  EXPECT_GE(creates_ok.load(), ok_at_recovery + 5);
  EXPECT_THAT((*stack)->PayorchdLog(),
              ::testing::HasSubstr("/mutating NOT_SERVING"));
}

}  // namespace
}  // namespace payorch::testing
