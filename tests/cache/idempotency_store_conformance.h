#ifndef PAYORCH_TESTS_CACHE_IDEMPOTENCY_STORE_CONFORMANCE_H_
#define PAYORCH_TESTS_CACHE_IDEMPOTENCY_STORE_CONFORMANCE_H_

// The IdempotencyStore contract (cache/README.md), as a type-parameterized
// suite. Each test binary instantiates it with an environment type `Env`:
//
//   struct Env {
//     IdempotencyStore& store();
//     absl::Duration lease();            // a short lease for the tests
//     void Advance(absl::Duration d);    // FakeClock: move; real time: no-op
//     absl::Duration TimeToLive(const IdempotencyKey& key);  // 0 when absent
//     absl::Duration retention();        // the store's configured retention
//     absl::Duration short_retention();  // a retention a test can outwait
//     absl::Duration real_lease_wait();  // real time for a lease to lapse
//   };                                   //   (zero with a FakeClock)
//
// Waiting is by polling with a bounded deadline, never a fixed sleep: with a
// FakeClock the first poll already sees the answer.

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cache/idempotency_store.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace payorch::cache {

inline absl::StatusOr<Claim> BeginSync(IdempotencyStore& store,
                                       const IdempotencyKey& key,
                                       const std::string& fingerprint,
                                       absl::Duration lease) {
  absl::Notification done;
  absl::StatusOr<Claim> result;
  store.Begin(key, fingerprint, lease, [&](absl::StatusOr<Claim> claim) {
    result = std::move(claim);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(10))) {
    return absl::DeadlineExceededError("Begin callback never ran");
  }
  return result;
}

inline absl::Status CompleteSync(IdempotencyStore& store,
                                 const IdempotencyKey& key,
                                 const std::string& owner,
                                 const std::string& outcome,
                                 absl::Duration retention) {
  absl::Notification done;
  absl::Status result;
  store.Complete(key, owner, outcome, retention, [&](absl::Status s) {
    result = std::move(s);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(10))) {
    return absl::DeadlineExceededError("Complete callback never ran");
  }
  return result;
}

inline absl::Status MarkUnknownSync(IdempotencyStore& store,
                                    const IdempotencyKey& key,
                                    const std::string& owner) {
  absl::Notification done;
  absl::Status result;
  store.MarkUnknown(key, owner, [&](absl::Status s) {
    result = std::move(s);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(10))) {
    return absl::DeadlineExceededError("MarkUnknown callback never ran");
  }
  return result;
}

inline absl::Status ReleaseSync(IdempotencyStore& store,
                                const IdempotencyKey& key,
                                const std::string& owner) {
  absl::Notification done;
  absl::Status result;
  store.Release(key, owner, [&](absl::Status s) {
    result = std::move(s);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(10))) {
    return absl::DeadlineExceededError("Release callback never ran");
  }
  return result;
}

// A key no other test (or earlier run against the same server) uses.
inline IdempotencyKey FreshKey(const std::string& family = "checkout",
                               const std::string& merchant = "m1") {
  return IdempotencyKey{family, merchant, "t-" + RandomHex(8)};
}

// Bytes a text-based store would mangle: NUL, 0xFF, CR/LF, a Lua-ish quote.
inline std::string BinaryOutcome() {
  std::string s("resp\0onse\xff\xfe\r\n'\"\\", 15);
  s += std::string(1, '\0');
  return s;
}

template <typename Env>
class IdempotencyStoreConformanceTest : public ::testing::Test {
 protected:
  IdempotencyStore& store() { return env_.store(); }

  // Begin, polling (bounded) until the answer is no longer kInProgress: the
  // lease has expired by the store's own clock.
  absl::StatusOr<Claim> BeginAfterLeaseExpiry(const IdempotencyKey& key,
                                              const std::string& fp) {
    env_.Advance(env_.lease() + absl::Milliseconds(1));
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (;;) {
      absl::StatusOr<Claim> claim = BeginSync(store(), key, fp, env_.lease());
      if (!claim.ok() || claim->outcome != Claim::Outcome::kInProgress ||
          absl::Now() > deadline) {
        return claim;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  Env env_;
};

TYPED_TEST_SUITE_P(IdempotencyStoreConformanceTest);

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             FirstBeginAcquiresWithoutReconcile) {
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(claim.ok()) << claim.status();
  EXPECT_EQ(claim->outcome, Claim::Outcome::kAcquired);
  EXPECT_FALSE(claim->reconcile);
  EXPECT_EQ(claim->owner_token.size(), 32u);
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             SecondBeginWithSameKeyWhileInFlightIsInProgress) {
  const IdempotencyKey key = FreshKey();
  const absl::Duration lease = this->env_.lease();
  auto first = BeginSync(this->store(), key, "fp", lease);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->outcome, Claim::Outcome::kAcquired);
  auto second = BeginSync(this->store(), key, "fp", lease);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->outcome, Claim::Outcome::kInProgress);
  EXPECT_GT(second->retry_after, absl::ZeroDuration());
  EXPECT_LE(second->retry_after, lease);
  EXPECT_TRUE(second->owner_token.empty());
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             DifferentFingerprintIsMismatchInFlightAndAfterCompletion) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp-a", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->outcome, Claim::Outcome::kAcquired);

  auto in_flight = BeginSync(this->store(), key, "fp-b", this->env_.lease());
  ASSERT_TRUE(in_flight.ok()) << in_flight.status();
  EXPECT_EQ(in_flight->outcome, Claim::Outcome::kMismatch);

  ASSERT_TRUE(CompleteSync(this->store(), key, first->owner_token, "out",
                           absl::Hours(1))
                  .ok());
  auto completed = BeginSync(this->store(), key, "fp-b", this->env_.lease());
  ASSERT_TRUE(completed.ok()) << completed.status();
  EXPECT_EQ(completed->outcome, Claim::Outcome::kMismatch);
  EXPECT_TRUE(completed->stored.empty());
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             DifferentFingerprintIsMismatchAfterUnknown) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp-a", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(MarkUnknownSync(this->store(), key, first->owner_token).ok());
  auto other = BeginSync(this->store(), key, "fp-b", this->env_.lease());
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->outcome, Claim::Outcome::kMismatch);
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             CompletedRecordReplaysByteIdenticalOutcome) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string outcome = BinaryOutcome();
  ASSERT_TRUE(CompleteSync(this->store(), key, first->owner_token, outcome,
                           absl::Hours(1))
                  .ok());
  for (int i = 0; i < 2; ++i) {
    auto replay = BeginSync(this->store(), key, "fp", this->env_.lease());
    ASSERT_TRUE(replay.ok()) << replay.status();
    EXPECT_EQ(replay->outcome, Claim::Outcome::kCompleted);
    EXPECT_EQ(replay->stored, outcome);
    EXPECT_EQ(replay->stored.size(), 16u);
  }
}

TYPED_TEST_P(IdempotencyStoreConformanceTest, EmptyOutcomeIsStored) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(
      CompleteSync(this->store(), key, first->owner_token, "", absl::Hours(1))
          .ok());
  auto replay = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->outcome, Claim::Outcome::kCompleted);
  EXPECT_EQ(replay->stored, "");
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             MarkUnknownThenBeginAcquiresWithReconcile) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(MarkUnknownSync(this->store(), key, first->owner_token).ok());
  // Retrying MarkUnknown (e.g. after a timeout) is harmless.
  EXPECT_TRUE(MarkUnknownSync(this->store(), key, first->owner_token).ok());
  auto retry = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->outcome, Claim::Outcome::kAcquired);
  EXPECT_TRUE(retry->reconcile);
  EXPECT_NE(retry->owner_token, first->owner_token);
  // The retry now holds a live lease: a concurrent duplicate waits.
  auto dup = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(dup.ok()) << dup.status();
  EXPECT_EQ(dup->outcome, Claim::Outcome::kInProgress);
  // The old owner can no longer touch the record.
  EXPECT_EQ(MarkUnknownSync(this->store(), key, first->owner_token).code(),
            absl::StatusCode::kFailedPrecondition);
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             ExpiredLeaseIsTakenOverAndOldOwnerIsFenced) {
  const IdempotencyKey key = FreshKey();
  auto old_claim = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(old_claim.ok()) << old_claim.status();
  ASSERT_EQ(old_claim->outcome, Claim::Outcome::kAcquired);

  auto new_claim = this->BeginAfterLeaseExpiry(key, "fp");
  ASSERT_TRUE(new_claim.ok()) << new_claim.status();
  ASSERT_EQ(new_claim->outcome, Claim::Outcome::kAcquired);
  EXPECT_TRUE(new_claim->reconcile);
  EXPECT_NE(new_claim->owner_token, old_claim->owner_token);

  // The slow old holder wakes up: none of its writes may land.
  EXPECT_EQ(CompleteSync(this->store(), key, old_claim->owner_token, "old",
                         absl::Hours(1))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MarkUnknownSync(this->store(), key, old_claim->owner_token).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReleaseSync(this->store(), key, old_claim->owner_token).code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(CompleteSync(this->store(), key, new_claim->owner_token, "new",
                           absl::Hours(1))
                  .ok());
  EXPECT_EQ(CompleteSync(this->store(), key, old_claim->owner_token, "old",
                         absl::Hours(1))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReleaseSync(this->store(), key, old_claim->owner_token).code(),
            absl::StatusCode::kFailedPrecondition);
  auto replay = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->outcome, Claim::Outcome::kCompleted);
  EXPECT_EQ(replay->stored, "new");
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             HolderWithExpiredLeaseAndNoSuccessorMayStillComplete) {
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(claim.ok()) << claim.status();
  this->env_.Advance(this->env_.lease() * 2);
  absl::SleepFor(this->env_.real_lease_wait());
  ASSERT_TRUE(CompleteSync(this->store(), key, claim->owner_token, "late",
                           absl::Hours(1))
                  .ok());
  auto replay = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->outcome, Claim::Outcome::kCompleted);
  EXPECT_EQ(replay->stored, "late");
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             CompleteIsIdempotentForTheSameOwnerAndBytesOnly) {
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(claim.ok()) << claim.status();
  ASSERT_TRUE(
      CompleteSync(this->store(), key, claim->owner_token, "a", absl::Hours(1))
          .ok());
  EXPECT_TRUE(
      CompleteSync(this->store(), key, claim->owner_token, "a", absl::Hours(1))
          .ok());
  EXPECT_EQ(
      CompleteSync(this->store(), key, claim->owner_token, "b", absl::Hours(1))
          .code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MarkUnknownSync(this->store(), key, claim->owner_token).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReleaseSync(this->store(), key, claim->owner_token).code(),
            absl::StatusCode::kFailedPrecondition);
  auto replay = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->stored, "a");
}

TYPED_TEST_P(IdempotencyStoreConformanceTest, WrongOwnerIsFencedWhileInFlight) {
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(claim.ok()) << claim.status();
  const std::string stranger = RandomHex(16);
  EXPECT_EQ(
      CompleteSync(this->store(), key, stranger, "x", absl::Hours(1)).code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MarkUnknownSync(this->store(), key, stranger).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReleaseSync(this->store(), key, stranger).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CompleteSync(this->store(), FreshKey(), claim->owner_token, "x",
                         absl::Hours(1))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  auto dup = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(dup.ok()) << dup.status();
  EXPECT_EQ(dup->outcome, Claim::Outcome::kInProgress);
}

TYPED_TEST_P(IdempotencyStoreConformanceTest, ReleaseThenBeginAcquiresAfresh) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp-a", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(ReleaseSync(this->store(), key, first->owner_token).ok());
  EXPECT_EQ(this->env_.TimeToLive(key), absl::ZeroDuration());
  // A retried Release of a record that is gone is not an error.
  EXPECT_TRUE(ReleaseSync(this->store(), key, first->owner_token).ok());
  // Released means "nothing happened": even another fingerprint may start.
  auto again = BeginSync(this->store(), key, "fp-b", this->env_.lease());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->outcome, Claim::Outcome::kAcquired);
  EXPECT_FALSE(again->reconcile);
  EXPECT_NE(again->owner_token, first->owner_token);
  // The first owner's token does not work on the new claim.
  EXPECT_EQ(
      CompleteSync(this->store(), key, first->owner_token, "x", absl::Hours(1))
          .code(),
      absl::StatusCode::kFailedPrecondition);
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             RetentionIsSetOnClaimAndComplete) {
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(claim.ok()) << claim.status();
  const absl::Duration retention = this->env_.retention();
  absl::Duration ttl = this->env_.TimeToLive(key);
  EXPECT_GT(ttl, retention - absl::Seconds(5));
  EXPECT_LE(ttl, retention);

  ASSERT_TRUE(CompleteSync(this->store(), key, claim->owner_token, "out",
                           absl::Hours(3))
                  .ok());
  ttl = this->env_.TimeToLive(key);
  EXPECT_GT(ttl, absl::Hours(3) - absl::Seconds(5));
  EXPECT_LE(ttl, absl::Hours(3));

  const IdempotencyKey unknown_key = FreshKey();
  auto unknown =
      BeginSync(this->store(), unknown_key, "fp", this->env_.lease());
  ASSERT_TRUE(unknown.ok()) << unknown.status();
  ASSERT_TRUE(
      MarkUnknownSync(this->store(), unknown_key, unknown->owner_token).ok());
  ttl = this->env_.TimeToLive(unknown_key);
  EXPECT_GT(ttl, retention - absl::Seconds(5));
  EXPECT_LE(ttl, retention);
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             NonPositiveRetentionOnCompleteMeansTheStoreDefault) {
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(claim.ok()) << claim.status();
  ASSERT_TRUE(CompleteSync(this->store(), key, claim->owner_token, "out",
                           absl::ZeroDuration())
                  .ok());
  const absl::Duration ttl = this->env_.TimeToLive(key);
  EXPECT_GT(ttl, this->env_.retention() - absl::Seconds(5));
  EXPECT_LE(ttl, this->env_.retention());
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             CompletedRecordVanishesAfterRetention) {
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(claim.ok()) << claim.status();
  const absl::Duration short_retention = this->env_.short_retention();
  ASSERT_TRUE(CompleteSync(this->store(), key, claim->owner_token, "out",
                           short_retention)
                  .ok());
  this->env_.Advance(short_retention);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::StatusOr<Claim> fresh;
  do {
    fresh = BeginSync(this->store(), key, "other-fp", this->env_.lease());
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    if (fresh->outcome == Claim::Outcome::kAcquired) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < deadline);
  EXPECT_EQ(fresh->outcome, Claim::Outcome::kAcquired);
  EXPECT_FALSE(fresh->reconcile);
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             KeysOfDifferentFamiliesAndMerchantsDoNotCollide) {
  const std::string trans_id = "t-" + RandomHex(8);
  const IdempotencyKey keys[] = {
      {"checkout", "m1", trans_id},
      {"charge", "m1", trans_id},
      {"checkout", "m2", trans_id},
      // Separators inside ids must not make two keys equal.
      {"checkout", "m1:x", trans_id},
      {"checkout", "m1", "x:" + trans_id},
  };
  for (const IdempotencyKey& key : keys) {
    auto claim =
        BeginSync(this->store(), key, "fp-" + key.family + key.merchant_id,
                  this->env_.lease());
    ASSERT_TRUE(claim.ok()) << claim.status();
    EXPECT_EQ(claim->outcome, Claim::Outcome::kAcquired) << key.RedisKey();
    EXPECT_FALSE(claim->reconcile) << key.RedisKey();
  }
}

inline absl::StatusOr<Claim> BeginWith(IdempotencyStore& store,
                                       const IdempotencyKey& key,
                                       const BeginArgs& args) {
  absl::Notification done;
  absl::StatusOr<Claim> result;
  store.Begin(key, args, [&](absl::StatusOr<Claim> claim) {
    result = std::move(claim);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(10))) {
    return absl::DeadlineExceededError("Begin callback never ran");
  }
  return result;
}

inline absl::Status MarkUnknownQuietSync(IdempotencyStore& store,
                                         const IdempotencyKey& key,
                                         const std::string& owner,
                                         absl::Duration quiet) {
  absl::Notification done;
  absl::Status result;
  store.MarkUnknown(key, owner, quiet, [&](absl::Status s) {
    result = std::move(s);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(10))) {
    return absl::DeadlineExceededError("MarkUnknown callback never ran");
  }
  return result;
}

// Finding 4: a claim over an UNKNOWN record that is released (the create
// was certainly not processed, or PayKKa is still quiet) leaves UNKNOWN: the
// next attempt must ask PayKKa again before creating.
TYPED_TEST_P(IdempotencyStoreConformanceTest,
             ReleaseOfAReconcilingClaimKeepsTheUnknownMarker) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(MarkUnknownSync(this->store(), key, first->owner_token).ok());
  auto second = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->outcome, Claim::Outcome::kAcquired);
  ASSERT_TRUE(second->reconcile);
  EXPECT_TRUE(ReleaseSync(this->store(), key, second->owner_token).ok());
  // A retried Release is fine too.
  EXPECT_TRUE(ReleaseSync(this->store(), key, second->owner_token).ok());
  auto third = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->outcome, Claim::Outcome::kAcquired);
  EXPECT_TRUE(third->reconcile);
  EXPECT_TRUE(CompleteSync(this->store(), key, third->owner_token, "done",
                           absl::ZeroDuration())
                  .ok());
}

TYPED_TEST_P(IdempotencyStoreConformanceTest,
             ReleaseOfATakenOverExpiredLeaseKeepsItUnsettled) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = this->BeginAfterLeaseExpiry(key, "fp");
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->outcome, Claim::Outcome::kAcquired);
  ASSERT_TRUE(second->reconcile);
  EXPECT_TRUE(ReleaseSync(this->store(), key, second->owner_token).ok());
  auto third = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->outcome, Claim::Outcome::kAcquired);
  EXPECT_TRUE(third->reconcile);
}

// Finding 6: one trans_id names one payment, whatever the RPC family.
TYPED_TEST_P(IdempotencyStoreConformanceTest,
             RecordOfAnotherFamilyIsReportedAndNothingIsClaimed) {
  const IdempotencyKey checkout = FreshKey("checkout");
  const IdempotencyKey charge{"charge", checkout.merchant_id,
                              checkout.trans_id};
  auto first = BeginSync(this->store(), checkout, "fp-c", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  BeginArgs args;
  args.fingerprint = "fp-r";
  args.lease = this->env_.lease();
  args.other_families = {"checkout"};
  auto other = BeginWith(this->store(), charge, args);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->outcome, Claim::Outcome::kOtherFamily);
  EXPECT_EQ(this->env_.TimeToLive(charge), absl::ZeroDuration());
  // Another merchant's same trans_id is not the same payment.
  const IdempotencyKey elsewhere{"charge", "m-other", checkout.trans_id};
  auto fine = BeginWith(this->store(), elsewhere, args);
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->outcome, Claim::Outcome::kAcquired);
}

// Finding 10: the owner token is the caller's, so a Begin whose reply was
// lost can be sent again and finds its own claim instead of a live lease.
TYPED_TEST_P(IdempotencyStoreConformanceTest,
             BeginRetriedWithTheSameOwnerFindsItsOwnClaim) {
  const IdempotencyKey key = FreshKey();
  BeginArgs args;
  args.fingerprint = "fp";
  args.lease = this->env_.lease();
  args.owner = RandomHex(16);
  auto first = BeginWith(this->store(), key, args);
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = BeginWith(this->store(), key, args);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->outcome, Claim::Outcome::kAcquired);
  EXPECT_EQ(again->owner_token, args.owner);
  EXPECT_FALSE(again->reconcile);
  // Another owner still sees the live lease.
  auto other = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->outcome, Claim::Outcome::kInProgress);
  // A retried Begin of a reconciling claim keeps reconcile.
  ASSERT_TRUE(MarkUnknownSync(this->store(), key, args.owner).ok());
  args.owner = RandomHex(16);
  auto takeover = BeginWith(this->store(), key, args);
  ASSERT_TRUE(takeover.ok()) << takeover.status();
  ASSERT_TRUE(takeover->reconcile);
  auto retried = BeginWith(this->store(), key, args);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->outcome, Claim::Outcome::kAcquired);
  EXPECT_TRUE(retried->reconcile);
}

// Finding 8: MarkUnknown's quiet period is reported to later claims, and
// survives a Release back to UNKNOWN.
TYPED_TEST_P(IdempotencyStoreConformanceTest,
             QuietPeriodIsReportedToLaterClaims) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(MarkUnknownQuietSync(this->store(), key, first->owner_token,
                                   absl::Seconds(60))
                  .ok());
  auto second = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(second->reconcile);
  EXPECT_GT(second->quiet_left, absl::Seconds(50));
  EXPECT_LE(second->quiet_left, absl::Seconds(60));
  ASSERT_TRUE(ReleaseSync(this->store(), key, second->owner_token).ok());
  auto third = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_GT(third->quiet_left, absl::Seconds(50));
  // A later MarkUnknown with a shorter quiet period keeps the longer one.
  ASSERT_TRUE(MarkUnknownQuietSync(this->store(), key, third->owner_token,
                                   absl::ZeroDuration())
                  .ok());
  auto fourth = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_GT(fourth->quiet_left, absl::Seconds(50));
  // No quiet period without MarkUnknown.
  auto fresh = BeginSync(this->store(), FreshKey(), "fp", this->env_.lease());
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->quiet_left, absl::ZeroDuration());
}

inline absl::Status ForgetSync(IdempotencyStore& store,
                               const IdempotencyKey& key,
                               const std::string& owner) {
  absl::Notification done;
  absl::Status result;
  store.Forget(key, owner, [&](absl::Status s) {
    result = std::move(s);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(10))) {
    return absl::DeadlineExceededError("Forget callback never ran");
  }
  return result;
}

// The reconciler's "never happened": deletes an unsettled claim too.
TYPED_TEST_P(IdempotencyStoreConformanceTest,
             ForgetDeletesAnUnsettledClaimOfItsOwnerOnly) {
  const IdempotencyKey key = FreshKey();
  auto first = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(MarkUnknownSync(this->store(), key, first->owner_token).ok());
  EXPECT_EQ(ForgetSync(this->store(), key, first->owner_token).code(),
            absl::StatusCode::kFailedPrecondition);  // UNKNOWN: not held
  auto second = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(second->reconcile);
  EXPECT_EQ(ForgetSync(this->store(), key, "someone-else").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ForgetSync(this->store(), key, second->owner_token).ok());
  EXPECT_EQ(this->env_.TimeToLive(key), absl::ZeroDuration());
  EXPECT_TRUE(ForgetSync(this->store(), key, second->owner_token).ok());
  auto third = BeginSync(this->store(), key, "fp", this->env_.lease());
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_FALSE(third->reconcile);
}

REGISTER_TYPED_TEST_SUITE_P(
    IdempotencyStoreConformanceTest, FirstBeginAcquiresWithoutReconcile,
    SecondBeginWithSameKeyWhileInFlightIsInProgress,
    DifferentFingerprintIsMismatchInFlightAndAfterCompletion,
    DifferentFingerprintIsMismatchAfterUnknown,
    CompletedRecordReplaysByteIdenticalOutcome, EmptyOutcomeIsStored,
    MarkUnknownThenBeginAcquiresWithReconcile,
    ExpiredLeaseIsTakenOverAndOldOwnerIsFenced,
    HolderWithExpiredLeaseAndNoSuccessorMayStillComplete,
    CompleteIsIdempotentForTheSameOwnerAndBytesOnly,
    WrongOwnerIsFencedWhileInFlight, ReleaseThenBeginAcquiresAfresh,
    RetentionIsSetOnClaimAndComplete,
    NonPositiveRetentionOnCompleteMeansTheStoreDefault,
    CompletedRecordVanishesAfterRetention,
    KeysOfDifferentFamiliesAndMerchantsDoNotCollide,
    ReleaseOfAReconcilingClaimKeepsTheUnknownMarker,
    ReleaseOfATakenOverExpiredLeaseKeepsItUnsettled,
    RecordOfAnotherFamilyIsReportedAndNothingIsClaimed,
    BeginRetriedWithTheSameOwnerFindsItsOwnClaim,
    QuietPeriodIsReportedToLaterClaims,
    ForgetDeletesAnUnsettledClaimOfItsOwnerOnly);

}  // namespace payorch::cache

#endif  // PAYORCH_TESTS_CACHE_IDEMPOTENCY_STORE_CONFORMANCE_H_
