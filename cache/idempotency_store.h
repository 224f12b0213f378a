#ifndef PAYORCH_CACHE_IDEMPOTENCY_STORE_H_
#define PAYORCH_CACHE_IDEMPOTENCY_STORE_H_

// The record of each (RPC family, merchant_id, trans_id): absent -> in flight
// (a lease held by one owner) -> completed (the stored response) or unknown
// (PayKKa's outcome is not known). docs/architecture.md "Idempotency on
// trans_id".

#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace payorch::cache {

// How long a record is kept after it was claimed or completed
// (docs/architecture.md: longer than PayKKa's 24 h session limit). Pass it to
// Complete() unless the deployment configures another retention.
inline constexpr absl::Duration kDefaultRecordRetention = absl::Hours(48);

struct IdempotencyKey {
  std::string family;  // RPC family: "checkout" or "charge"
  std::string merchant_id;
  std::string trans_id;

  // payorch:idem:<family>:{<merchant_id>:<trans_id>}; the hash tag keeps a
  // trans_id's keys in one Redis Cluster slot.
  std::string RedisKey() const;
};

// The answer to Begin().
struct Claim {
  enum class Outcome {
    // The caller owns the trans_id now (owner_token) and must Complete(),
    // MarkUnknown() or Release() it.
    kAcquired,
    // Already completed with the same fingerprint: replay `stored`.
    kCompleted,
    // Another owner's lease is live: answer REQUEST_IN_PROGRESS.
    kInProgress,
    // The trans_id was used with a different fingerprint: TRANS_ID_REUSED.
    kMismatch,
  };
  Outcome outcome = Outcome::kAcquired;
  std::string owner_token;  // kAcquired
  // kAcquired over an UNKNOWN record or an expired lease: the previous
  // attempt may have reached PayKKa, so ask PayKKa (by trans_id) first.
  bool reconcile = false;
  std::string stored;          // kCompleted: the bytes given to Complete()
  absl::Duration retry_after;  // kInProgress: the live lease's remaining time
};

// Thread-safe. Callbacks run exactly once, on an I/O thread; keep them short.
// Every method fails with UNAVAILABLE (reason IDEMPOTENCY_STORE_UNAVAILABLE)
// when the backing store cannot be reached; callers must then fail closed.
class IdempotencyStore {
 public:
  virtual ~IdempotencyStore() = default;

  // Atomically (one round trip): absent -> in flight with a new owner and a
  // lease of `lease`; or reports the record's state. The fingerprint is
  // compared first, so a different request is kMismatch whatever the state.
  virtual void Begin(
      const IdempotencyKey& key, const std::string& fingerprint,
      absl::Duration lease,
      absl::AnyInvocable<void(absl::StatusOr<Claim>) &&> done) = 0;

  // Stores the definitive outcome (kept `retention` from now) if `owner` still
  // holds the record. FAILED_PRECONDITION when another owner took over (this
  // holder's lease expired): the successor's record stands. The caller may
  // still answer its own caller with the result it got (the successor
  // reconciles with PayKKa to the same object), but must not retry the write.
  virtual void Complete(const IdempotencyKey& key, const std::string& owner,
                        const std::string& outcome, absl::Duration retention,
                        absl::AnyInvocable<void(absl::Status) &&> done) = 0;

  // Records that PayKKa's outcome is unknown (owner checked as in Complete).
  // The next Begin() acquires with reconcile = true.
  virtual void MarkUnknown(const IdempotencyKey& key, const std::string& owner,
                           absl::AnyInvocable<void(absl::Status) &&> done) = 0;

  // Deletes the record if `owner` holds it: nothing reached PayKKa, so a
  // retry may start afresh.
  virtual void Release(const IdempotencyKey& key, const std::string& owner,
                       absl::AnyInvocable<void(absl::Status) &&> done) = 0;

  // True while the store is reachable (readiness).
  virtual bool Healthy() const = 0;
};

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_IDEMPOTENCY_STORE_H_
