#ifndef PAYORCH_CACHE_UNSETTLED_INDEX_H_
#define PAYORCH_CACHE_UNSETTLED_INDEX_H_

// The index of idempotency records that may be unsettled (UNKNOWN, or
// INFLIGHT with a lease that may expire unanswered), for the background
// reconciler (service/reconciler.h). cache/README.md "Unsettled index".
//
// One index per Redis Cluster slot, on that slot: a record whose key
// (IdempotencyKey::RedisKey()) has slot S is indexed under
// payorch:unsettled:{<SlotTag(S)>} (UnsettledIndexName()), a pair of keys
// (:entries, a hash record key -> entry, and :since, a sorted set record key
// -> time added). Being on the record's slot, it is kept by the store's own
// scripts (cache/redis_idempotency_store.cc), atomically and with no extra
// round trip: Begin adds the entry when it claims, MarkUnknown and a Release
// back to UNKNOWN keep it, Complete, Forget and a Release that deletes
// remove it. An entry carries everything the reconciler needs to settle the
// record on its own: family, merchant, trans_id, the fingerprint and the
// request.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cache/idempotency_store.h"
#include "cache/redis_client.h"

namespace payorch::cache {

struct UnsettledEntry {
  IdempotencyKey key;
  std::string fingerprint;  // as given to IdempotencyStore::Begin()
  std::string request;      // the serialized API request (opaque here)

  // Set by Scan(): the hash field (the record key), the stored bytes
  // (Remove() compares them, so an entry re-added meanwhile stays) and when
  // it was (last) added by a caller's claim, in Redis server time.
  std::string field;
  std::string stored;
  absl::Time added;
};

// The index a record belongs to: "payorch:unsettled:{<tag>}", the tag being
// SlotTag() of the record key's slot. Its two keys:
std::string UnsettledIndexName(const IdempotencyKey& key);
std::string UnsettledEntriesKey(absl::string_view index);  // <index>:entries
std::string UnsettledSinceKey(absl::string_view index);    // <index>:since

struct UnsettledIndexOptions {
  // Per-entry retention: Scan() drops entries older than this (their records
  // have expired too).
  absl::Duration retention = kDefaultRecordRetention;
  absl::Duration unavailable_retry_delay = absl::Seconds(1);
  // Keys examined per SCAN call by List().
  int scan_count = 1000;
};

// One page of an index, oldest entries first.
struct UnsettledPage {
  absl::Time now;     // Redis server time when the page was read
  int64_t total = 0;  // entries in the index
  std::vector<UnsettledEntry> entries;
};

// The indexes found by List().
struct UnsettledIndexes {
  std::vector<std::string> names;  // UnsettledIndexName() values, sorted
  int primaries = 0;               // primaries asked
  int failed = 0;                  // of which could not be scanned
};

// Thread-safe; callbacks run on the Redis client's loop thread. Errors are
// the store's: UNAVAILABLE IDEMPOTENCY_STORE_UNAVAILABLE when Redis cannot be
// reached, INTERNAL for an unexpected reply. Entries are written by the
// store (RedisIdempotencyStore), never here.
class UnsettledIndex {
 public:
  UnsettledIndex(std::shared_ptr<RedisClient> client,
                 UnsettledIndexOptions options = {});

  // The non-empty indexes: SCAN MATCH payorch:unsettled:*:since on every
  // primary (single node: the one node). A primary that cannot be scanned
  // is counted in `failed` (its records cannot be settled meanwhile anyway);
  // UNAVAILABLE only when no primary could be scanned.
  void List(absl::AnyInvocable<void(absl::StatusOr<UnsettledIndexes>) &&> done);

  // Up to `limit` entries of `index`, skipping the `offset` oldest.
  void Scan(const std::string& index, int64_t offset, int limit,
            absl::AnyInvocable<void(absl::StatusOr<UnsettledPage>) &&> done);

  // Removes a scanned entry unless it was re-added since (its stored bytes
  // changed). true when removed.
  void Remove(const UnsettledEntry& scanned,
              absl::AnyInvocable<void(absl::StatusOr<bool>) &&> done);

 private:
  void Eval(const char* script, const std::string& index,
            std::vector<std::string> args, RedisClient::Callback done);

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
