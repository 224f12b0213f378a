// payorch on a real 6-node Redis Cluster under load from concurrent callers
// over 2 payorchd replicas and the real sandbox: slots move
// (redis-cli --cluster reshard), and a primary is SIGKILLed so its replica is
// promoted. Every caller retries documented retryable errors; at the end each
// trans_id has exactly one create at the sandbox, and each caller's final
// answer is the session PayKKa (the sandbox) has for its trans_id.

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cache/idempotency_store.h"
#include "gtest/gtest.h"
#include "tests/integration/stack.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;

bool Retryable(const grpc::Status& st) {
  const std::string reason = ReasonOf(st);
  return (st.error_code() == grpc::StatusCode::UNAVAILABLE &&
          (reason == "IDEMPOTENCY_STORE_UNAVAILABLE" ||
           reason == "PSP_OUTCOME_UNKNOWN")) ||
         (st.error_code() == grpc::StatusCode::ABORTED &&
          reason == "REQUEST_IN_PROGRESS");
}

// Callers creating checkouts with fresh trans_ids on alternating replicas,
// each retried until it succeeds (or 30 s), then replayed on the other
// replica.
class Callers {
 public:
  Callers(Stack* stack, int threads) : stack_(stack) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t] { Run(t); });
    }
  }
  ~Callers() { Stop(); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  int calls() const { return calls_.load(); }
  int retryable() const { return retryable_.load(); }
  int failures() const { return failures_.load(); }

  // trans_id -> the session the caller ended up with.
  std::vector<std::pair<std::string, std::string>> answers() {
    absl::MutexLock lock(&mu_);
    return answers_;
  }
  std::vector<std::string> errors() {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

 private:
  grpc::Status CreateUntilAnswered(const v1::CreateCheckoutRequest& req,
                                   int replica,
                                   v1::CreateCheckoutResponse* resp) {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    for (;;) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Seconds(10));
      ++calls_;
      grpc::Status st = stack_->Stub(replica)->CreateCheckout(&ctx, req, resp);
      if (st.ok() || !Retryable(st) || absl::Now() > give_up) return st;
      ++retryable_;
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  void Fail(const std::string& what, const grpc::Status& st) {
    ++failures_;
    absl::MutexLock lock(&mu_);
    if (errors_.size() < 5) {
      errors_.push_back(absl::StrCat(what, ": ", st.error_code(), " ",
                                     ReasonOf(st), " ", st.error_message()));
    }
  }

  void Run(int t) {
    for (int i = 0; !stop_.load(); ++i) {
      v1::CreateCheckoutRequest req =
          DropInCheckout(NewTransId(absl::StrCat("load", t, "-", i)));
      v1::CreateCheckoutResponse first, replay;
      grpc::Status st = CreateUntilAnswered(req, i % 2, &first);
      if (!st.ok()) {
        Fail("create", st);
        continue;
      }
      st = CreateUntilAnswered(req, (i + 1) % 2, &replay);
      if (!st.ok()) {
        Fail("replay", st);
      } else if (replay.session_id() != first.session_id()) {
        Fail("replay answered another session", st);
      }
      absl::MutexLock lock(&mu_);
      answers_.emplace_back(req.trans_id(), first.session_id());
    }
  }

  Stack* const stack_;
  std::atomic<bool> stop_{false};
  std::atomic<int> calls_{0}, retryable_{0}, failures_{0};
  absl::Mutex mu_;
  std::vector<std::pair<std::string, std::string>> answers_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

// Exactly one create per trans_id at the sandbox, and the caller's session
// is the one PayKKa has for that trans_id.
void ExpectOneCreateEachMatchingTheSandbox(Stack& stack, Callers& callers) {
  auto counters = stack.Counters();
  ASSERT_TRUE(counters.ok());
  const auto& creates = (*counters)["creates_by_trans_id"];
  int duplicates = 0, mismatches = 0;
  for (const auto& [trans_id, session] : callers.answers()) {
    if (creates.value(trans_id, 0) != 1) ++duplicates;
    v1::GetSessionStatusRequest q;
    q.set_merchant_id(Stack::kMerchantId);
    q.set_trans_id(trans_id);
    v1::GetSessionStatusResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    if (!stack.Stub()->GetSessionStatus(&ctx, q, &resp).ok() ||
        resp.session_id() != session) {
      ++mismatches;
    }
  }
  std::printf(
      "  %zu trans_ids: %d not created exactly once, %d answers "
      "differing from the sandbox\n",
      callers.answers().size(), duplicates, mismatches);
  EXPECT_GT(callers.answers().size(), 20u);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(mismatches, 0);
}

std::unique_ptr<Stack> ClusterStack() {
  StackOptions options = StackOptions::Payorchd(
      {"--lease=3s", "--paykka_timeout=2s"}, /*replicas=*/2);
  options.redis_cluster = true;
  auto stack = Stack::Start(options);
  EXPECT_TRUE(stack.ok()) << stack.status();
  return stack.ok() ? *std::move(stack) : nullptr;
}

TEST(RedisClusterStackTest, ReshardingUnderLoad) {
  auto stack = ClusterStack();
  ASSERT_NE(stack, nullptr);
  RedisCluster& cluster = *stack->redis_cluster();
  Callers callers(stack.get(), 4);
  while (callers.calls() < 50) absl::SleepFor(absl::Milliseconds(20));
  absl::Status moved = cluster.Reshard(0, 1, 2000);
  ASSERT_TRUE(moved.ok()) << moved;
  moved = cluster.Reshard(1, 2, 1000);
  ASSERT_TRUE(moved.ok()) << moved;
  const int at_end = callers.calls();
  while (callers.calls() < at_end + 50) absl::SleepFor(absl::Milliseconds(20));
  callers.Stop();
  std::printf("reshard under load: %d calls, %d retryable errors, %d others\n",
              callers.calls(), callers.retryable(), callers.failures());
  EXPECT_EQ(callers.failures(), 0)
      << ::testing::PrintToString(callers.errors());
  ExpectOneCreateEachMatchingTheSandbox(*stack, callers);
}

TEST(RedisClusterStackTest, FailoverUnderLoad) {
  auto stack = ClusterStack();
  ASSERT_NE(stack, nullptr);
  RedisCluster& cluster = *stack->redis_cluster();
  // trans_ids whose records live on node 0's shard.
  std::vector<std::string> probes;
  while (probes.size() < 100) {
    std::string id = NewTransId("probe");
    auto owner = cluster.PrimaryForKey(absl::StrCat(
        "payorch:idem:checkout:{", Stack::kMerchantId, ":", id, "}"));
    if (owner.ok() && *owner == 0) probes.push_back(id);
  }
  auto replica = cluster.ReplicaOf(0);
  ASSERT_TRUE(replica.ok()) << replica.status();
  Callers callers(stack.get(), 4);
  while (callers.calls() < 50) absl::SleepFor(absl::Milliseconds(20));

  const absl::Time killed = absl::Now();
  ASSERT_TRUE(cluster.node(0).Stop(SIGKILL).ok());
  absl::Time promoted = absl::InfiniteFuture();
  while (absl::Now() < killed + absl::Seconds(15)) {
    auto owner = cluster.PrimaryForKey(absl::StrCat(
        "payorch:idem:checkout:{", Stack::kMerchantId, ":", probes[0], "}"));
    if (owner.ok() && *owner == *replica) {
      promoted = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_LT(promoted, absl::InfiniteFuture()) << "no failover";
  absl::Time recovered = absl::InfiniteFuture();
  for (size_t i = 1; i < probes.size(); ++i) {
    v1::CreateCheckoutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(5));
    if (stack->Stub(i % 2)
            ->CreateCheckout(&ctx, DropInCheckout(probes[i]), &resp)
            .ok()) {
      recovered = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  const int at_recovery = callers.calls();
  while (callers.calls() < at_recovery + 50) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  callers.Stop();
  std::printf(
      "failover under load: replica promoted %.2f s after SIGKILL; payorchd "
      "created on that shard %.2f s after the promotion; %d calls, %d "
      "retryable errors, %d others\n",
      absl::ToDoubleSeconds(promoted - killed),
      absl::ToDoubleSeconds(recovered - promoted), callers.calls(),
      callers.retryable(), callers.failures());
  EXPECT_LE(recovered - promoted, absl::Seconds(2));
  EXPECT_EQ(callers.failures(), 0)
      << ::testing::PrintToString(callers.errors());
  ExpectOneCreateEachMatchingTheSandbox(*stack, callers);
}

// A shard with neither primary nor replica: exactly the creates whose record
// lives there fail closed (nothing reaches the sandbox); every other create
// is served. The unsettled-index entry is on the record's own slot
// (cache/README.md "Unsettled index"), so no other key can fail a call.
TEST(RedisClusterStackTest, AWholeShardDownFailsOnlyItsTransIds) {
  auto stack = ClusterStack();
  ASSERT_NE(stack, nullptr);
  RedisCluster& cluster = *stack->redis_cluster();
  // 30 trans_ids drawn at random (not chosen by where anything lives),
  // split by the shard of their record.
  std::vector<std::string> down, up;
  for (int i = 0; i < 30; ++i) {
    std::string id = NewTransId("shard");
    const cache::IdempotencyKey key{"checkout", Stack::kMerchantId, id};
    auto owner = cluster.PrimaryForKey(key.RedisKey());
    ASSERT_TRUE(owner.ok()) << owner.status();
    (*owner == 1 ? down : up).push_back(std::move(id));
  }
  ASSERT_FALSE(down.empty());  // (2/3)^30 odds against
  ASSERT_FALSE(up.empty());
  auto replica = cluster.ReplicaOf(1);
  ASSERT_TRUE(replica.ok()) << replica.status();
  ASSERT_TRUE(cluster.node(*replica).Stop(SIGKILL).ok());
  ASSERT_TRUE(cluster.node(1).Stop(SIGKILL).ok());
  // Until the Cluster marks the shard failed, the other shards may still
  // answer CLUSTERDOWN for a moment: wait for its verdict.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  for (;;) {
    auto info = cluster.node(0).Command({"CLUSTER", "INFO"});
    if (info.ok() && info->find("cluster_state:ok") != std::string::npos &&
        info->find("cluster_slots_fail:0\r") == std::string::npos) {
      break;
    }
    ASSERT_LT(absl::Now(), deadline) << "shard never marked failed";
    absl::SleepFor(absl::Milliseconds(50));
  }
  for (const std::string& id : up) {
    v1::CreateCheckoutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status st =
        stack->Stub()->CreateCheckout(&ctx, DropInCheckout(id), &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  for (const std::string& id : down) {
    v1::CreateCheckoutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status st =
        stack->Stub()->CreateCheckout(&ctx, DropInCheckout(id), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(ReasonOf(st), "IDEMPOTENCY_STORE_UNAVAILABLE");
  }
  std::printf(
      "whole shard down: %zu of 30 random creates had their record on the "
      "dead shard (%.0f %%) and failed closed; the other %zu were served\n",
      down.size(), 100.0 * static_cast<double>(down.size()) / 30, up.size());
  auto counters = stack->Counters();
  ASSERT_TRUE(counters.ok());
  for (const std::string& id : down) {
    EXPECT_EQ((*counters)["creates_by_trans_id"].value(id, 0), 0) << id;
  }
}

}  // namespace
}  // namespace payorch::testing
