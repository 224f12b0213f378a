#ifndef PAYORCH_CACHE_IN_MEMORY_IDEMPOTENCY_STORE_H_
#define PAYORCH_CACHE_IN_MEMORY_IDEMPOTENCY_STORE_H_

// An IdempotencyStore in process memory: for unit tests and the
// single-process quick start only. It is not shared between replicas and is
// lost on restart, so it does NOT keep docs/architecture.md's promise across
// processes; payorchd says so at start. Same state machine as
// RedisIdempotencyStore (cache/README.md), with leases and retention read from
// an injected Clock.

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache/idempotency_store.h"
#include "common/event_loop.h"

namespace payorch::cache {

struct InMemoryIdempotencyStoreOptions {
  // How long a claimed, unknown or completed record lives when Complete() is
  // given no positive retention (and for claims and MarkUnknown()).
  absl::Duration retention = kDefaultRecordRetention;
};

// Thread-safe. Callbacks run inline, on the calling thread, before the method
// returns (never while the store's lock is held). Never fails with
// UNAVAILABLE; Healthy() is always true.
class InMemoryIdempotencyStore : public IdempotencyStore {
 public:
  // `clock` must outlive the store.
  explicit InMemoryIdempotencyStore(
      const Clock& clock, InMemoryIdempotencyStoreOptions options = {});

  using IdempotencyStore::Begin;
  using IdempotencyStore::MarkUnknown;
  void Begin(const IdempotencyKey& key, const BeginArgs& args,
             absl::AnyInvocable<void(absl::StatusOr<Claim>) &&> done) override;
  void Complete(const IdempotencyKey& key, const std::string& owner,
                const std::string& outcome, absl::Duration retention,
                absl::AnyInvocable<void(absl::Status) &&> done) override;
  void MarkUnknown(const IdempotencyKey& key, const std::string& owner,
                   absl::Duration quiet,
                   absl::AnyInvocable<void(absl::Status) &&> done) override;
  void Release(const IdempotencyKey& key, const std::string& owner,
               absl::AnyInvocable<void(absl::Status) &&> done) override;
  void Forget(const IdempotencyKey& key, const std::string& owner,
              absl::AnyInvocable<void(absl::Status) &&> done) override;
  bool Healthy() const override { return true; }

  // Test hooks: the number of live records, and a record's remaining
  // retention (ZeroDuration when absent or expired).
  size_t size() const;
  absl::Duration TimeToLive(const IdempotencyKey& key) const;

 private:
  enum class State { kInFlight, kCompleted, kUnknown };
  struct Record {
    State state = State::kInFlight;
    std::string fingerprint;
    std::string owner;
    absl::Time lease_until;
    absl::Time expires_at;
    // A claim over an UNKNOWN record or an expired lease (Release reverts).
    bool unsettled = false;
    absl::Time quiet_until = absl::InfinitePast();
    std::string request;
    std::string outcome;
  };

  // Begin()'s decision, under the lock.
  Claim BeginLocked(const IdempotencyKey& key, const BeginArgs& args,
                    absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The live record under `key`, erasing it first if it has expired.
  Record* FindLive(const std::string& key, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeSweep(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status OwnerMismatch(const char* op) const;

  const Clock& clock_;
  const InMemoryIdempotencyStoreOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Record> records_ ABSL_GUARDED_BY(mu_);
  uint64_t ops_since_sweep_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_IN_MEMORY_IDEMPOTENCY_STORE_H_
