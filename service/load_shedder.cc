#include "service/load_shedder.h"

#include <algorithm>

#include "common/errors.h"

namespace payorch::service {

bool LoadShedder::TakeToken(const std::string& merchant_id) {
  if (options_.merchant_rate <= 0) return true;
  auto it = buckets_.find(merchant_id);
  if (it == buckets_.end()) {
    const std::string& key =
        buckets_.size() < options_.max_buckets ? merchant_id : std::string();
    it = buckets_
             .try_emplace(key, Bucket{options_.merchant_burst, clock_->Now()})
             .first;
  }
  Bucket& b = it->second;
  absl::Time now = clock_->Now();
  b.tokens = std::min(options_.merchant_burst,
                      b.tokens + absl::ToDoubleSeconds(now - b.refilled) *
                                     options_.merchant_rate);
  b.refilled = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

absl::Status LoadShedder::Admit(const std::string& merchant_id) {
  absl::MutexLock lock(&mu_);
  if (options_.max_in_flight > 0 && in_flight_ >= options_.max_in_flight) {
    return WithRetryDelay(
        MakeError(Reason::kOverloaded, "too many calls in flight",
                  {{"limit", "max_in_flight"}}),
        options_.retry_delay);
  }
  if (!TakeToken(merchant_id)) {
    absl::Duration wait =
        std::max(options_.retry_delay,
                 absl::Seconds(1.0 / std::max(options_.merchant_rate, 1e-3)));
    return WithRetryDelay(
        MakeError(Reason::kOverloaded, "merchant call rate over its limit",
                  {{"limit", "merchant_rate"}}),
        wait);
  }
  ++in_flight_;
  return absl::OkStatus();
}

void LoadShedder::Release() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

int64_t LoadShedder::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

}  // namespace payorch::service
