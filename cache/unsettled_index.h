#ifndef PAYORCH_CACHE_UNSETTLED_INDEX_H_
#define PAYORCH_CACHE_UNSETTLED_INDEX_H_

// The index of idempotency records that may be unsettled (UNKNOWN, or
// INFLIGHT with a lease that may expire unanswered), for the background
// reconciler (service/reconciler.h). cache/README.md "Unsettled index".
//
// Redis Cluster forbids one script touching a record key (hash tag
// {merchant_id:trans_id}) and a global key, so the index is separate: a fixed
// number of buckets, each a pair of keys on its own slot
// (payorch:unsettled:{<n>}:entries, a hash, and :since, a sorted set).
// The service adds an entry BEFORE it claims a record (Begin), so the index
// over-approximates the unsettled records; the reconciler removes an entry
// once it has seen its record settled. An entry carries everything the
// reconciler needs to settle the record on its own: family, merchant,
// trans_id, the fingerprint and the request.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache/idempotency_store.h"
#include "cache/redis_client.h"

namespace payorch::cache {

struct UnsettledEntry {
  IdempotencyKey key;
  std::string fingerprint;  // as given to IdempotencyStore::Begin()
  std::string request;      // the serialized API request (opaque here)

  // Set by Scan(): the hash field (record key plus a digest of the
  // fingerprint, so requests that differ have separate entries), the stored
  // bytes (Remove() compares them, so an entry re-added meanwhile stays) and
  // when it was (last) added, in Redis server time.
  std::string field;
  std::string stored;
  absl::Time added;
};

struct UnsettledIndexOptions {
  // Number of buckets (slots). Fixed for a deployment: changing it strands
  // the entries of the buckets that disappear.
  int buckets = 16;
  // Per-entry retention: an entry is dropped by Redis after this long even
  // if nobody removed it (longer than the record's retention is pointless).
  absl::Duration retention = kDefaultRecordRetention;
  absl::Duration unavailable_retry_delay = absl::Seconds(1);
};

// One page of a bucket, oldest entries first.
struct UnsettledPage {
  absl::Time now;     // Redis server time when the page was read
  int64_t total = 0;  // entries in the bucket
  std::vector<UnsettledEntry> entries;
};

// Thread-safe; callbacks run on the Redis client's loop thread. Errors are
// the store's: UNAVAILABLE IDEMPOTENCY_STORE_UNAVAILABLE when Redis cannot be
// reached, INTERNAL for an unexpected reply.
class UnsettledIndex {
 public:
  UnsettledIndex(std::shared_ptr<RedisClient> client,
                 UnsettledIndexOptions options = {});

  int buckets() const { return options_.buckets; }
  // The bucket of a record key (stable: a hash of the key).
  int BucketOf(const IdempotencyKey& key) const;

  // Adds or refreshes the entry (key, fingerprint, request); `added` becomes
  // Redis's current time.
  void Add(const UnsettledEntry& entry,
           absl::AnyInvocable<void(absl::Status) &&> done);

  // Up to `limit` entries of `bucket`, skipping the `offset` oldest.
  void Scan(int bucket, int64_t offset, int limit,
            absl::AnyInvocable<void(absl::StatusOr<UnsettledPage>) &&> done);

  // Removes a scanned entry unless it was re-added since (its stored bytes
  // changed). true when removed.
  void Remove(const UnsettledEntry& scanned,
              absl::AnyInvocable<void(absl::StatusOr<bool>) &&> done);

 private:
  void Eval(const char* script, int bucket, std::vector<std::string> args,
            RedisClient::Callback done);

  std::shared_ptr<RedisClient> client_;
  const UnsettledIndexOptions options_;
};

// The entry's stored bytes and back (exposed for tests). Decode() fails with
// INTERNAL on anything Encode() did not produce.
std::string EncodeUnsettledEntry(const UnsettledEntry& entry,
                                 const std::string& nonce);
absl::StatusOr<UnsettledEntry> DecodeUnsettledEntry(const std::string& bytes);

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_UNSETTLED_INDEX_H_
