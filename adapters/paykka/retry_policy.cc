#include "adapters/paykka/retry_policy.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "common/errors.h"

namespace payorch::paykka {
namespace {

double DefaultRandom() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

}  // namespace

RetryPolicy::RetryPolicy(RetryOptions options, RandomSource random)
    : options_(std::move(options)), random_(std::move(random)) {
  if (!random_) random_ = &DefaultRandom;
}

bool RetryPolicy::IsRetryable(const absl::Status& status) {
  return HasReason(status, Reason::kPspUnavailable) ||
         HasReason(status, Reason::kPspRateLimited) ||
         HasReason(status, Reason::kPspBadResponse);
}

std::optional<absl::Duration> RetryPolicy::NextDelay(
    int attempts_made, const absl::Status& status, absl::Time now,
    absl::Time deadline) const {
  if (!IsRetryable(status) || attempts_made >= options_.max_attempts) {
    return std::nullopt;
  }
  const double factor =
      std::pow(options_.multiplier, std::max(0, attempts_made - 1));
  absl::Duration cap =
      std::min(options_.max_backoff, options_.initial_backoff * factor);
  const double r = std::clamp(random_(), 0.0, 1.0);
  absl::Duration delay = cap * r;
  if (std::optional<absl::Duration> floor = RetryDelayOf(status)) {
    delay = std::max(delay, *floor);
  }
  if (now + delay >= deadline) return std::nullopt;
  return delay;
}

}  // namespace payorch::paykka
