#ifndef PAYORCH_SERVICE_LOAD_SHEDDER_H_
#define PAYORCH_SERVICE_LOAD_SHEDDER_H_

// Admission at the gRPC edge, before any Redis or PayKKa work: a cap on
// calls in flight in the process and a token bucket per merchant. A refused
// call gets RESOURCE_EXHAUSTED / OVERLOADED with RetryInfo, so overload ends
// in fast refusals instead of growing queues and an OOM kill.

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/event_loop.h"

namespace payorch::service {

struct LoadShedderOptions {
  int64_t max_in_flight = 20000;  // 0: no cap
  double merchant_rate = 0;       // calls per second per merchant; 0: off
  double merchant_burst = 1000;   // bucket size
  absl::Duration retry_delay = absl::Milliseconds(200);
  // Distinct merchant ids with a bucket of their own; ids beyond share one
  // (merchant_id is caller input: the map must not grow with it).
  size_t max_buckets = 4096;
};

class LoadShedder {
 public:
  explicit LoadShedder(LoadShedderOptions options,
                       const Clock* clock = &RealClock::Get())
      : options_(options), clock_(clock) {}

  // OK: the call is admitted and must be Release()d when it finishes.
  // OVERLOADED (+ RetryInfo) otherwise; nothing to release.
  absl::Status Admit(const std::string& merchant_id);
  void Release();
  int64_t in_flight() const;

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time refilled;
  };
  bool TakeToken(const std::string& merchant_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LoadShedderOptions options_;
  const Clock* clock_;
  mutable absl::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_LOAD_SHEDDER_H_
