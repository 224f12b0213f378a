#include "cache/nonce_store.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace payorch::cache {

void RedisNonceStore::Claim(const std::string& scope, const std::string& nonce,
                            absl::Duration ttl, Done done) {
  std::string key = absl::StrCat("payorch:nonce:{", scope, "}:", nonce);
  int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(ttl));
  client_->Command(
      {"SET", std::move(key), "1", "NX", "PX", absl::StrCat(ms)},
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return std::move(done)(reply.status());
        if (reply->is_error()) {
          return std::move(done)(absl::UnavailableError(reply->str));
        }
        // "OK" when set, nil when the key already existed.
        std::move(done)(reply->type == RedisReply::Type::kStatus);
      });
}

void InMemoryNonceStore::Claim(const std::string& scope,
                               const std::string& nonce, absl::Duration ttl,
                               Done done) {
  std::string key = absl::StrCat(scope, "|", nonce);
  absl::Time now = clock_->Now();
  bool first = false;
  {
    absl::MutexLock lock(&mu_);
    if (expiry_.size() >= capacity_) {
      // Drop the expired, then the soonest to expire, until there is room.
      absl::erase_if(expiry_, [now](const auto& e) { return e.second <= now; });
      while (expiry_.size() >= capacity_) {
        auto oldest = std::min_element(
            expiry_.begin(), expiry_.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
        expiry_.erase(oldest);
      }
    }
    auto [it, inserted] = expiry_.try_emplace(key, now + ttl);
    if (!inserted && it->second <= now) {
      it->second = now + ttl;
      inserted = true;
    }
    first = inserted;
  }
  std::move(done)(first);
}

}  // namespace payorch::cache
