#ifndef PAYORCH_CACHE_REDIS_IDEMPOTENCY_STORE_H_
#define PAYORCH_CACHE_REDIS_IDEMPOTENCY_STORE_H_

// The production IdempotencyStore: one Redis hash per (family, merchant_id,
// trans_id), changed only by Lua scripts so every state transition is atomic
// and takes one round trip. Record layout, states, scripts, retention and
// failure behaviour: cache/README.md.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache/idempotency_store.h"
#include "cache/redis_client.h"
#include "common/event_loop.h"

namespace payorch::cache {

struct RedisIdempotencyStoreOptions {
  // Where Redis is (redis:// or redis+cluster://), timeouts, backoff, health
  // probe: cache/redis_client.h. Per command, 500 ms absorbs a fork or a slow
  // network and still fails a call closed long before a caller's deadline.
  RedisClientOptions client;
  // Key TTL of a claimed, unknown or completed record (Complete() may pass
  // its own; zero or negative there means this one).
  absl::Duration retention = kDefaultRecordRetention;
  // After Begin() claims a record, replicas that must confirm the claim
  // before it is reported (bounded loss on failover; cache/README.md). Not
  // confirmed in time: the claim is released and Begin() fails UNAVAILABLE.
  ReplicationWait replication;
  // RetryInfo attached to IDEMPOTENCY_STORE_UNAVAILABLE errors.
  absl::Duration unavailable_retry_delay = absl::Seconds(1);
};

// Thread-safe. Callbacks always run on the EventLoop thread; keep them short.
// A call made on that thread that fails at once (Redis not connected) runs
// its callback before returning. Errors: UNAVAILABLE with
// reason IDEMPOTENCY_STORE_UNAVAILABLE and a RetryInfo delay when Redis is
// unreachable, times out or is not writable (LOADING, READONLY, OOM...);
// note that a timed-out Complete() may still have been applied. INTERNAL for
// an unexpected Redis answer (e.g. a foreign value under our key).
class RedisIdempotencyStore : public IdempotencyStore {
 public:
  // Connects in the background: Create() succeeds while Redis is down
  // (Healthy() is false until it is reachable). kInvalidArgument for a bad
  // URL or option. `loop` must outlive the store.
  static absl::StatusOr<std::unique_ptr<RedisIdempotencyStore>> Create(
      EventLoop* loop, RedisIdempotencyStoreOptions options);

  // Over a client shared with other Redis users; `options.client` is not
  // used. Callbacks never use the
  // store itself, so it may be destroyed with commands in flight (they then
  // complete, or fail with UNAVAILABLE when the client goes).
  RedisIdempotencyStore(std::shared_ptr<RedisClient> client,
                        RedisIdempotencyStoreOptions options);

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
  bool Healthy() const override;

  // The Redis connection, for other Redis users (cache/unsettled_index.h).
  std::shared_ptr<RedisClient> client() const;

  // A Lua script and its SHA-1 (redis_idempotency_store.cc).
  struct Script;
  using WaitIf = bool (*)(const RedisReply&);

 private:
  // EVALSHA `script` on `keys` (one hash slot) with `args`; on NOSCRIPT
  // (Redis restarted, a failover or resharding to a node that never ran it,
  // SCRIPT FLUSH) sends the body once with EVAL, which also caches it on that
  // node. With `wait_if`, WAITs for options_.replication when it holds for
  // the reply.
  void Run(const Script& script, std::vector<std::string> keys,
           std::vector<std::string> args, RedisClient::Callback done,
           WaitIf wait_if = nullptr);

  std::shared_ptr<RedisClient> client_;
  const RedisIdempotencyStoreOptions options_;
};

// A Redis reply as the store's status: OK, UNAVAILABLE
// IDEMPOTENCY_STORE_UNAVAILABLE (with `retry_delay`) when Redis cannot be
// reached or cannot take writes, INTERNAL for another error reply.
absl::Status StoreErrorOf(const absl::StatusOr<RedisReply>& reply,
                          absl::Duration retry_delay);

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_REDIS_IDEMPOTENCY_STORE_H_
