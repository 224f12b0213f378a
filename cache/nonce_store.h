#ifndef PAYORCH_CACHE_NONCE_STORE_H_
#define PAYORCH_CACHE_NONCE_STORE_H_

// Webhook nonces seen by any replica, so that a captured, validly signed
// notification cannot be replayed to another replica (or to the same one).
// Redis: SET payorch:nonce:{<scope>}:<nonce> 1 NX PX <ttl>, the ttl being
// the signature's timestamp window (a nonce older than that is refused by
// the timestamp check anyway). In memory (--redis_url=memory): one process.

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache/redis_client.h"
#include "common/event_loop.h"

namespace payorch::cache {

class NonceStore {
 public:
  // true: first time `nonce` is seen in `scope` within `ttl`; false: a
  // replay. kUnavailable when the store cannot tell (callers fail closed).
  using Done = absl::AnyInvocable<void(absl::StatusOr<bool>) &&>;
  virtual ~NonceStore() = default;
  virtual void Claim(const std::string& scope, const std::string& nonce,
                     absl::Duration ttl, Done done) = 0;
};

class RedisNonceStore : public NonceStore {
 public:
  explicit RedisNonceStore(std::shared_ptr<RedisClient> client)
      : client_(std::move(client)) {}
  void Claim(const std::string& scope, const std::string& nonce,
             absl::Duration ttl, Done done) override;

 private:
  std::shared_ptr<RedisClient> client_;
};

// One process only; at most `capacity` nonces (the oldest expiry goes first
// when full, expired ones are dropped as they are met).
class InMemoryNonceStore : public NonceStore {
 public:
  explicit InMemoryNonceStore(const Clock* clock = &RealClock::Get(),
                              size_t capacity = 100000)
      : clock_(clock), capacity_(capacity) {}
  void Claim(const std::string& scope, const std::string& nonce,
             absl::Duration ttl, Done done) override;

 private:
  const Clock* clock_;
  size_t capacity_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> expiry_ ABSL_GUARDED_BY(mu_);
};

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_NONCE_STORE_H_
