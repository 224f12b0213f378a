#include "adapters/paykka/retry_policy.h"

#include "common/errors.h"
#include "gtest/gtest.h"

namespace payorch::paykka {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1767225600);
const absl::Time kFar = kNow + absl::Hours(1);

absl::Status Unavailable() { return MakeError(Reason::kPspUnavailable, "x"); }

RetryOptions Options() {
  RetryOptions o;
  o.max_attempts = 5;
  o.initial_backoff = absl::Milliseconds(100);
  o.max_backoff = absl::Milliseconds(500);
  o.multiplier = 2.0;
  return o;
}

TEST(RetryPolicyTest, FullJitterScalesTheExponentialCap) {
  double r = 0.5;
  RetryPolicy policy(Options(), [&r] { return r; });
  EXPECT_EQ(policy.NextDelay(1, Unavailable(), kNow, kFar),
            absl::Milliseconds(50));
  EXPECT_EQ(policy.NextDelay(2, Unavailable(), kNow, kFar),
            absl::Milliseconds(100));
  EXPECT_EQ(policy.NextDelay(3, Unavailable(), kNow, kFar),
            absl::Milliseconds(200));
  // Capped at max_backoff.
  EXPECT_EQ(policy.NextDelay(4, Unavailable(), kNow, kFar),
            absl::Milliseconds(250));
  r = 0.0;
  EXPECT_EQ(policy.NextDelay(3, Unavailable(), kNow, kFar),
            absl::ZeroDuration());
  r = 0.999;
  EXPECT_LT(*policy.NextDelay(4, Unavailable(), kNow, kFar),
            absl::Milliseconds(500));
}

TEST(RetryPolicyTest, StopsAfterMaxAttempts) {
  RetryPolicy policy(Options(), [] { return 0.5; });
  EXPECT_TRUE(policy.NextDelay(4, Unavailable(), kNow, kFar).has_value());
  EXPECT_FALSE(policy.NextDelay(5, Unavailable(), kNow, kFar).has_value());
}

TEST(RetryPolicyTest, NeverPastTheDeadline) {
  RetryPolicy policy(Options(), [] { return 1.0; });
  // Attempt 1 failed; the next wait would be 100 ms.
  EXPECT_FALSE(
      policy.NextDelay(1, Unavailable(), kNow, kNow + absl::Milliseconds(100))
          .has_value());
  EXPECT_TRUE(
      policy.NextDelay(1, Unavailable(), kNow, kNow + absl::Milliseconds(101))
          .has_value());
}

TEST(RetryPolicyTest, OnlyTransientQueryErrorsAreRetried) {
  RetryPolicy policy(Options(), [] { return 0.5; });
  for (Reason r : {Reason::kPspUnavailable, Reason::kPspRateLimited,
                   Reason::kPspBadResponse}) {
    EXPECT_TRUE(policy.NextDelay(1, MakeError(r, "x"), kNow, kFar).has_value())
        << ReasonName(r);
  }
  for (Reason r : {Reason::kPspOutcomeUnknown, Reason::kPspRejected,
                   Reason::kPspAuthFailed, Reason::kOrderNotFound,
                   Reason::kDeadlineExceeded}) {
    EXPECT_FALSE(policy.NextDelay(1, MakeError(r, "x"), kNow, kFar).has_value())
        << ReasonName(r);
  }
  EXPECT_FALSE(policy.NextDelay(1, absl::UnavailableError("plain"), kNow, kFar)
                   .has_value());
}

TEST(RetryPolicyTest, RateLimitWaitsAtLeastRetryAfter) {
  RetryPolicy policy(Options(), [] { return 0.5; });
  absl::Status limited =
      WithRetryDelay(MakeError(Reason::kPspRateLimited, "x"), absl::Seconds(2));
  EXPECT_EQ(policy.NextDelay(1, limited, kNow, kFar), absl::Seconds(2));
  // ... unless the deadline comes first.
  EXPECT_FALSE(
      policy.NextDelay(1, limited, kNow, kNow + absl::Seconds(1)).has_value());
}

}  // namespace
}  // namespace payorch::paykka
