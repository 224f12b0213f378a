#ifndef PAYORCH_ADAPTERS_PAYKKA_RETRY_POLICY_H_
#define PAYORCH_ADAPTERS_PAYKKA_RETRY_POLICY_H_

// When and how long to wait before repeating a PayKKa query. Only queries
// are retried (a mutating call's unknown outcome is settled by the service
// with a query by trans_id, never by sending it again here).

#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace payorch::paykka {

struct RetryOptions {
  // Attempts in total, including the first. 1 = no retries.
  int max_attempts = 3;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  double multiplier = 2.0;
};

// Exponential backoff with full jitter: the wait before attempt n+1 is
// uniform in [0, min(max_backoff, initial_backoff * multiplier^(n-1))), and
// at least the RetryInfo delay a 429 carried (Retry-After). Thread-safe if
// the random source is.
class RetryPolicy {
 public:
  // Uniform in [0, 1).
  using RandomSource = std::function<double()>;

  // `random` defaults to a thread-local Mersenne Twister.
  explicit RetryPolicy(RetryOptions options, RandomSource random = nullptr);

  // True for the transient query errors: PSP_UNAVAILABLE, PSP_RATE_LIMITED,
  // PSP_BAD_RESPONSE.
  static bool IsRetryable(const absl::Status& status);

  // The wait before the next attempt after `attempts_made` attempts, the
  // last of which failed with `status`; nullopt when the call should give
  // up: not retryable, attempts exhausted, or the next attempt would start
  // at or after `deadline`.
  std::optional<absl::Duration> NextDelay(int attempts_made,
                                          const absl::Status& status,
                                          absl::Time now,
                                          absl::Time deadline) const;

  const RetryOptions& options() const { return options_; }

 private:
  RetryOptions options_;
  RandomSource random_;
};

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_RETRY_POLICY_H_
