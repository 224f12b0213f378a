#include "cache/in_memory_idempotency_store.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"

namespace payorch::cache {
namespace {

// Expired records are erased when touched, and all of them every this many
// operations, so an idle key does not stay in memory forever.
constexpr uint64_t kSweepEvery = 1024;

absl::Duration RetentionOr(absl::Duration retention, absl::Duration fallback) {
  return retention > absl::ZeroDuration() ? retention : fallback;
}

}  // namespace

InMemoryIdempotencyStore::InMemoryIdempotencyStore(
    const Clock& clock, InMemoryIdempotencyStoreOptions options)
    : clock_(clock), options_(std::move(options)) {}

InMemoryIdempotencyStore::Record* InMemoryIdempotencyStore::FindLive(
    const std::string& key, absl::Time now) {
  auto it = records_.find(key);
  if (it == records_.end()) return nullptr;
  if (now >= it->second.expires_at) {
    records_.erase(it);
    return nullptr;
  }
  return &it->second;
}

void InMemoryIdempotencyStore::MaybeSweep(absl::Time now) {
  if (++ops_since_sweep_ < kSweepEvery) return;
  ops_since_sweep_ = 0;
  absl::erase_if(records_,
                 [now](const auto& kv) { return now >= kv.second.expires_at; });
}

absl::Status InMemoryIdempotencyStore::OwnerMismatch(const char* op) const {
  return absl::FailedPreconditionError(absl::StrCat(
      op,
      ": the caller no longer holds the idempotency record (its lease "
      "expired and another attempt took over, or it was released)"));
}

void InMemoryIdempotencyStore::Begin(
    const IdempotencyKey& key, const std::string& fingerprint,
    absl::Duration lease,
    absl::AnyInvocable<void(absl::StatusOr<Claim>) &&> done) {
  Claim claim;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    MaybeSweep(now);
    const std::string redis_key = key.RedisKey();
    Record* record = FindLive(redis_key, now);
    if (record != nullptr && record->fingerprint != fingerprint) {
      claim.outcome = Claim::Outcome::kMismatch;
    } else if (record != nullptr && record->state == State::kCompleted) {
      claim.outcome = Claim::Outcome::kCompleted;
      claim.stored = record->outcome;
    } else if (record != nullptr && record->state == State::kInFlight &&
               record->lease_until > now) {
      claim.outcome = Claim::Outcome::kInProgress;
      claim.retry_after = record->lease_until - now;
    } else {
      // Absent, UNKNOWN, or in flight with an expired lease: take it.
      claim.outcome = Claim::Outcome::kAcquired;
      claim.reconcile = record != nullptr;
      claim.owner_token = RandomHex(16);
      Record& r = records_[redis_key];
      r.state = State::kInFlight;
      r.fingerprint = fingerprint;
      r.owner = claim.owner_token;
      r.lease_until = now + lease;
      r.expires_at = now + options_.retention;
      r.outcome.clear();
    }
  }
  std::move(done)(std::move(claim));
}

void InMemoryIdempotencyStore::Complete(
    const IdempotencyKey& key, const std::string& owner,
    const std::string& outcome, absl::Duration retention,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    Record* record = FindLive(key.RedisKey(), now);
    if (record != nullptr && record->owner == owner &&
        record->state == State::kInFlight) {
      record->state = State::kCompleted;
      record->outcome = outcome;
      record->expires_at = now + RetentionOr(retention, options_.retention);
    } else if (record != nullptr && record->owner == owner &&
               record->state == State::kCompleted &&
               record->outcome == outcome) {
      // A retry of a Complete() that already took effect.
    } else {
      status = OwnerMismatch("Complete");
    }
  }
  std::move(done)(std::move(status));
}

void InMemoryIdempotencyStore::MarkUnknown(
    const IdempotencyKey& key, const std::string& owner,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    Record* record = FindLive(key.RedisKey(), now);
    if (record != nullptr && record->owner == owner &&
        record->state == State::kInFlight) {
      record->state = State::kUnknown;
      record->expires_at = now + options_.retention;
    } else if (record != nullptr && record->owner == owner &&
               record->state == State::kUnknown) {
      // A retry of a MarkUnknown() that already took effect.
    } else {
      status = OwnerMismatch("MarkUnknown");
    }
  }
  std::move(done)(std::move(status));
}

void InMemoryIdempotencyStore::Release(
    const IdempotencyKey& key, const std::string& owner,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    const std::string redis_key = key.RedisKey();
    Record* record = FindLive(redis_key, now);
    if (record == nullptr) {
      // Already gone (a retried Release, or the record expired): nothing is
      // held, which is what the caller wants.
    } else if (record->owner == owner && record->state == State::kInFlight) {
      records_.erase(redis_key);
    } else {
      status = OwnerMismatch("Release");
    }
  }
  std::move(done)(std::move(status));
}

size_t InMemoryIdempotencyStore::size() const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  size_t n = 0;
  for (const auto& kv : records_) n += now < kv.second.expires_at ? 1 : 0;
  return n;
}

absl::Duration InMemoryIdempotencyStore::TimeToLive(
    const IdempotencyKey& key) const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  auto it = records_.find(key.RedisKey());
  if (it == records_.end() || now >= it->second.expires_at) {
    return absl::ZeroDuration();
  }
  return it->second.expires_at - now;
}

}  // namespace payorch::cache
