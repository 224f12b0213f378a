#include "cache/in_memory_idempotency_store.h"

#include <algorithm>
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

Claim InMemoryIdempotencyStore::BeginLocked(const IdempotencyKey& key,
                                            const BeginArgs& args,
                                            absl::Time now) {
  Claim claim;
  for (const std::string& family : args.other_families) {
    IdempotencyKey other{family, key.merchant_id, key.trans_id};
    if (FindLive(other.RedisKey(), now) != nullptr) {
      claim.outcome = Claim::Outcome::kOtherFamily;
      return claim;
    }
  }
  const std::string redis_key = key.RedisKey();
  Record* record = FindLive(redis_key, now);
  const std::string owner = args.owner.empty() ? RandomHex(16) : args.owner;
  bool unsettled = false;
  if (record != nullptr) {
    if (record->fingerprint != args.fingerprint) {
      claim.outcome = Claim::Outcome::kMismatch;
      return claim;
    }
    if (record->state == State::kCompleted) {
      claim.outcome = Claim::Outcome::kCompleted;
      claim.stored = record->outcome;
      return claim;
    }
    if (record->state == State::kInFlight && record->owner == owner) {
      unsettled = record->unsettled;  // a retried Begin of this claim
    } else if (record->state == State::kInFlight && record->lease_until > now) {
      claim.outcome = Claim::Outcome::kInProgress;
      claim.retry_after = record->lease_until - now;
      return claim;
    } else {
      unsettled = true;  // UNKNOWN, or in flight with an expired lease
    }
  }
  Record& r = records_[redis_key];
  claim.outcome = Claim::Outcome::kAcquired;
  claim.reconcile = unsettled;
  claim.owner_token = owner;
  claim.quiet_left = std::max(absl::ZeroDuration(), r.quiet_until - now);
  r.state = State::kInFlight;
  r.fingerprint = args.fingerprint;
  r.owner = owner;
  r.lease_until = now + args.lease;
  r.expires_at = now + options_.retention;
  r.unsettled = unsettled;
  if (!args.request.empty()) r.request = args.request;
  r.outcome.clear();
  return claim;
}

void InMemoryIdempotencyStore::Begin(
    const IdempotencyKey& key, const BeginArgs& args,
    absl::AnyInvocable<void(absl::StatusOr<Claim>) &&> done) {
  Claim claim;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    MaybeSweep(now);
    claim = BeginLocked(key, args, now);
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
      record->unsettled = false;
      record->quiet_until = absl::InfinitePast();
      record->request.clear();
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
    const IdempotencyKey& key, const std::string& owner, absl::Duration quiet,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    Record* record = FindLive(key.RedisKey(), now);
    if (record != nullptr && record->owner == owner &&
        record->state == State::kInFlight) {
      record->state = State::kUnknown;
      record->unsettled = false;
      record->quiet_until = std::max(record->quiet_until, now + quiet);
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
    } else if (record->owner == owner && record->state == State::kInFlight &&
               record->unsettled) {
      // Only PayKKa's answer settles an unknown outcome: back to UNKNOWN.
      record->state = State::kUnknown;
      record->unsettled = false;
    } else if (record->owner == owner && record->state == State::kInFlight) {
      records_.erase(redis_key);
    } else if (record->owner == owner && record->state == State::kUnknown) {
      // A retry of a Release() that already put it back.
    } else {
      status = OwnerMismatch("Release");
    }
  }
  std::move(done)(std::move(status));
}

void InMemoryIdempotencyStore::Forget(
    const IdempotencyKey& key, const std::string& owner,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    const std::string redis_key = key.RedisKey();
    Record* record = FindLive(redis_key, clock_.Now());
    if (record != nullptr && record->owner == owner &&
        record->state == State::kInFlight) {
      records_.erase(redis_key);
    } else if (record != nullptr) {
      status = OwnerMismatch("Forget");
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
