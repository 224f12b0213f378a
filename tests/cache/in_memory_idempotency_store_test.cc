#include "cache/in_memory_idempotency_store.h"

#include "common/event_loop.h"
#include "gtest/gtest.h"
#include "tests/cache/idempotency_store_conformance.h"

namespace payorch::cache {
namespace {

// The in-memory store on a FakeClock: time moves only when a test says so.
class InMemoryEnv {
 public:
  InMemoryEnv() : store_(clock_, {.retention = absl::Hours(48)}) {}
  IdempotencyStore& store() { return store_; }
  absl::Duration lease() const { return absl::Seconds(30); }
  void Advance(absl::Duration d) { clock_.Advance(d); }
  absl::Duration TimeToLive(const IdempotencyKey& key) const {
    return store_.TimeToLive(key);
  }
  absl::Duration retention() const { return absl::Hours(48); }
  absl::Duration short_retention() const { return absl::Minutes(5); }
  absl::Duration real_lease_wait() const { return absl::ZeroDuration(); }
  FakeClock& clock() { return clock_; }
  InMemoryIdempotencyStore& in_memory() { return store_; }

 private:
  FakeClock clock_;
  InMemoryIdempotencyStore store_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, IdempotencyStoreConformanceTest,
                               InMemoryEnv);

TEST(InMemoryIdempotencyStoreTest, LeaseBoundaryIsExact) {
  InMemoryEnv env;
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(env.store(), key, "fp", absl::Seconds(10));
  ASSERT_TRUE(first.ok());
  env.Advance(absl::Seconds(4));
  auto during = BeginSync(env.store(), key, "fp", absl::Seconds(10));
  ASSERT_TRUE(during.ok());
  EXPECT_EQ(during->outcome, Claim::Outcome::kInProgress);
  EXPECT_EQ(during->retry_after, absl::Seconds(6));
  env.Advance(absl::Seconds(6));
  auto after = BeginSync(env.store(), key, "fp", absl::Seconds(10));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->outcome, Claim::Outcome::kAcquired);
  EXPECT_TRUE(after->reconcile);
}

TEST(InMemoryIdempotencyStoreTest, ExpiredRecordsDisappear) {
  InMemoryEnv env;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        BeginSync(env.store(), FreshKey(), "fp", absl::Seconds(1)).ok());
  }
  EXPECT_EQ(env.in_memory().size(), 10u);
  env.Advance(absl::Hours(49));
  EXPECT_EQ(env.in_memory().size(), 0u);
}

TEST(InMemoryIdempotencyStoreTest, IsAlwaysHealthy) {
  InMemoryEnv env;
  EXPECT_TRUE(env.store().Healthy());
}

TEST(IdempotencyKeyTest, RedisKeyHasTheHashTag) {
  const IdempotencyKey key{"checkout", "M100", "order-1"};
  EXPECT_EQ(key.RedisKey(), "payorch:idem:checkout:{M100:order-1}");
  const IdempotencyKey charge{"charge", "M100", "order-1"};
  EXPECT_EQ(charge.RedisKey(), "payorch:idem:charge:{M100:order-1}");
}

TEST(IdempotencyKeyTest, SeparatorsAndBracesAreEscaped) {
  EXPECT_NE((IdempotencyKey{"checkout", "a:b", "c"}).RedisKey(),
            (IdempotencyKey{"checkout", "a", "b:c"}).RedisKey());
  EXPECT_EQ((IdempotencyKey{"checkout", "a", "b:c"}).RedisKey(),
            "payorch:idem:checkout:{a:b:c}");
  // A brace in an id cannot end the hash tag early.
  EXPECT_EQ((IdempotencyKey{"checkout", "m}", "{t%"}).RedisKey(),
            "payorch:idem:checkout:{m%7D:%7Bt%25}");
}

}  // namespace
}  // namespace payorch::cache
