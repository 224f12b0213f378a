#include "cache/redis_idempotency_store.h"

#include <openssl/evp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "cache/unsettled_index.h"
#include "common/crypto.h"
#include "common/errors.h"

namespace payorch::cache {

struct RedisIdempotencyStore::Script {
  const char* name;
  std::string body;
  std::string sha1;
};

namespace {

// The record: one hash per key (cache/README.md).
//   state           INFLIGHT | COMPLETED | UNKNOWN
//   fp              the request fingerprint
//   owner           the current (or last) holder's token
//   lease_until_ms  INFLIGHT only: lease deadline, Redis server time, ms
//   unsettled       INFLIGHT only: '1' when the claim took over an UNKNOWN
//                   record or an expired lease (Release reverts to UNKNOWN)
//   quiet_until_ms  UNKNOWN (and its takeovers): no create before this
//   req             the canonical request while unsettled (reconciler)
//   outcome         COMPLETED only: the stored bytes
// The key's TTL is the retention. Times come from redis.call('TIME') so all
// replicas measure leases on one clock, whatever their own skew. (Redis 7
// replicates scripts by their effects, so reading TIME before writing is
// allowed and replicas see plain HSET/PEXPIRE.) Every key a script touches
// carries the same hash tag, so each script runs on one Cluster slot.
//
// The unsettled index (cache/unsettled_index.h) is kept by the same scripts:
// KEYS[2] (hash: record key -> entry) and KEYS[3] (sorted set: record key ->
// time added, ms) are tagged with a tag of the record's own slot, so a claim
// adds its entry and settling the record removes it in the same atomic step.

// KEYS[1] record, KEYS[2..3] its index keys, KEYS[4..] the same trans_id
// under the other families; ARGV: fingerprint, owner, lease ms, retention ms,
// request, index entry, '1' to keep an existing entry and its time (a
// reconciler's claim, which sends nothing new to PayKKa).
// -> {'ACQUIRED', 0|1 (reconcile), quiet ms left} | {'COMPLETED', outcome} |
//    {'INPROGRESS', ms left} | {'MISMATCH'} | {'OTHERFAMILY'}
constexpr absl::string_view kBeginLua = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 4, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {'OTHERFAMILY'} end
end
local r = redis.call('HMGET', KEYS[1], 'state', 'fp', 'lease_until_ms',
                     'outcome', 'owner', 'unsettled', 'quiet_until_ms')
local state = r[1]
local unsettled = 0
if state then
  if r[2] ~= ARGV[1] then return {'MISMATCH'} end
  if state == 'COMPLETED' then return {'COMPLETED', r[4]} end
  if state == 'INFLIGHT' and r[5] == ARGV[2] then
    unsettled = tonumber(r[6]) or 0
  else
    if state == 'INFLIGHT' then
      local left = tonumber(r[3]) - now
      if left > 0 then return {'INPROGRESS', left} end
    end
    unsettled = 1
  end
end
local quiet = math.max(0, (tonumber(r[7]) or 0) - now)
redis.call('HSET', KEYS[1], 'state', 'INFLIGHT', 'fp', ARGV[1], 'owner', ARGV[2],
           'lease_until_ms', tostring(now + tonumber(ARGV[3])),
           'unsettled', tostring(unsettled))
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'req', ARGV[5]) end
redis.call('HDEL', KEYS[1], 'outcome')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[7] == '1' then
  redis.call('HSETNX', KEYS[2], KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[3], 'NX', now, KEYS[1])
else
  redis.call('HSET', KEYS[2], KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[3], now, KEYS[1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {'ACQUIRED', unsettled, quiet}
)lua";

// KEYS[1] record, KEYS[2..3] its index keys; ARGV: owner, outcome,
// retention ms. -> 1 done, 0 not owner.
// A retry by the same owner with the same bytes is a success.
constexpr absl::string_view kCompleteLua = R"lua(
local r = redis.call('HMGET', KEYS[1], 'state', 'owner', 'outcome')
if r[2] ~= ARGV[1] then return 0 end
if r[1] == 'INFLIGHT' then
  redis.call('HSET', KEYS[1], 'state', 'COMPLETED', 'outcome', ARGV[2])
  redis.call('HDEL', KEYS[1], 'lease_until_ms', 'unsettled', 'quiet_until_ms',
             'req')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[2], KEYS[1])
  redis.call('ZREM', KEYS[3], KEYS[1])
  return 1
end
if r[1] == 'COMPLETED' and r[3] == ARGV[2] then return 1 end
return 0
)lua";

// KEYS[1] record, KEYS[2..3] its index keys (kept: still unsettled); ARGV:
// owner, retention ms, quiet ms. -> 1 done, 0 not owner.
constexpr absl::string_view kMarkUnknownLua = R"lua(
local r = redis.call('HMGET', KEYS[1], 'state', 'owner', 'quiet_until_ms')
if r[2] ~= ARGV[1] then return 0 end
if r[1] == 'INFLIGHT' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local quiet = math.max(tonumber(r[3]) or 0, now + tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'state', 'UNKNOWN', 'quiet_until_ms',
             tostring(quiet))
  redis.call('HDEL', KEYS[1], 'lease_until_ms', 'unsettled')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if r[1] == 'UNKNOWN' then return 1 end
return 0
)lua";

// KEYS[1] record, KEYS[2..3] its index keys; ARGV: owner. -> 1 released or
// already absent, 0 not owner. An unsettled claim goes back to UNKNOWN
// (quiet period kept, entry kept); a fresh one is deleted with its entry.
constexpr absl::string_view kReleaseLua = R"lua(
local r = redis.call('HMGET', KEYS[1], 'state', 'owner', 'unsettled')
if not r[1] then return 1 end
if r[2] ~= ARGV[1] then return 0 end
if r[1] == 'UNKNOWN' then return 1 end
if r[1] ~= 'INFLIGHT' then return 0 end
if r[3] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'UNKNOWN')
  redis.call('HDEL', KEYS[1], 'lease_until_ms', 'unsettled')
  return 1
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
return 1
)lua";

// KEYS[1] record, KEYS[2..3] its index keys; ARGV: owner. -> 1 deleted (with
// its entry) or already absent, 0 not owner.
constexpr absl::string_view kForgetLua = R"lua(
local r = redis.call('HMGET', KEYS[1], 'state', 'owner')
if r[1] and (r[1] ~= 'INFLIGHT' or r[2] ~= ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
return 1
)lua";

std::string Sha1Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

const RedisIdempotencyStore::Script& MakeScript(
    RedisIdempotencyStore::Script& s, const char* name,
    absl::string_view body) {
  s.name = name;
  s.body = std::string(body);
  s.sha1 = Sha1Hex(body);
  return s;
}

const RedisIdempotencyStore::Script& BeginScript() {
  static RedisIdempotencyStore::Script s;
  static const auto& ref = MakeScript(s, "begin", kBeginLua);
  return ref;
}
const RedisIdempotencyStore::Script& CompleteScript() {
  static RedisIdempotencyStore::Script s;
  static const auto& ref = MakeScript(s, "complete", kCompleteLua);
  return ref;
}
const RedisIdempotencyStore::Script& MarkUnknownScript() {
  static RedisIdempotencyStore::Script s;
  static const auto& ref = MakeScript(s, "mark_unknown", kMarkUnknownLua);
  return ref;
}
const RedisIdempotencyStore::Script& ReleaseScript() {
  static RedisIdempotencyStore::Script s;
  static const auto& ref = MakeScript(s, "release", kReleaseLua);
  return ref;
}

const RedisIdempotencyStore::Script& ForgetScript() {
  static RedisIdempotencyStore::Script s;
  static const auto& ref = MakeScript(s, "forget", kForgetLua);
  return ref;
}

std::string Millis(absl::Duration d) {
  return std::to_string(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

// Error replies that mean "Redis cannot take writes right now" rather than
// "payorch sent something wrong": fail closed with UNAVAILABLE.
bool IsTransientRedisError(absl::string_view message) {
  for (absl::string_view prefix :
       {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN",
        "NOAUTH", "OOM", "MISCONF", "NOREPLICAS"}) {
    if (absl::StartsWith(message, prefix)) return true;
  }
  return false;
}

// Maps a transport failure or an error reply to the store's vocabulary.
absl::Status ToStoreError(const absl::StatusOr<RedisReply>& reply,
                          absl::Duration retry_delay) {
  if (reply.ok() && !reply->is_error()) return absl::OkStatus();
  if (!reply.ok() || IsTransientRedisError(reply->str)) {
    const std::string detail =
        reply.ok() ? reply->str : std::string(reply.status().message());
    return WithRetryDelay(
        MakeError(Reason::kIdempotencyStoreUnavailable,
                  absl::StrCat("idempotency store unavailable: ", detail)),
        retry_delay);
  }
  return MakeError(Reason::kInternal,
                   absl::StrCat("idempotency store error: ", reply->str));
}

// The answer of the owner-checked scripts: 1 done, 0 not the owner.
absl::Status OwnerCheck(const absl::StatusOr<RedisReply>& reply, const char* op,
                        absl::Duration retry_delay) {
  if (absl::Status s = ToStoreError(reply, retry_delay); !s.ok()) return s;
  if (reply->type != RedisReply::Type::kInteger) {
    return MakeError(
        Reason::kInternal,
        absl::StrCat("idempotency store: unexpected ", op, " reply"));
  }
  if (reply->integer == 1) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      op,
      ": the caller no longer holds the idempotency record (its lease "
      "expired and another attempt took over, or it was released)"));
}

// Begin's replies after which the claim must be replicated before use.
bool IsAcquired(const RedisReply& reply) {
  return reply.type == RedisReply::Type::kArray && !reply.elements.empty() &&
         reply.elements[0].str == "ACQUIRED";
}

// The keys of every script: the record and its unsettled-index keys.
std::vector<std::string> RecordKeys(const IdempotencyKey& key) {
  const std::string index = UnsettledIndexName(key);
  return {key.RedisKey(), UnsettledEntriesKey(index), UnsettledSinceKey(index)};
}

// Best effort, answer ignored: Release's script by its body (a rare path).
void ReleaseQuietly(const std::weak_ptr<RedisClient>& weak_client,
                    const IdempotencyKey& key, const std::string& owner) {
  if (std::shared_ptr<RedisClient> client = weak_client.lock()) {
    std::vector<std::string> command = {"EVAL", ReleaseScript().body, "3"};
    for (std::string& k : RecordKeys(key)) command.push_back(std::move(k));
    command.push_back(owner);
    client->Command(std::move(command), [](absl::StatusOr<RedisReply>) {});
  }
}

// Begin's reply as a Claim (`owner`: the token Begin sent).
absl::StatusOr<Claim> ParseBeginReply(
    const absl::StatusOr<RedisReply>& reply, const std::string& owner,
    absl::Duration delay, const std::weak_ptr<RedisClient>& weak_client,
    const IdempotencyKey& key) {
  if (!reply.ok()) {
    // The claim may exist (e.g. written but not confirmed by a
    // replica): release it, so that a retry need not wait for the
    // lease. Nothing was sent to PayKKa under it.
    ReleaseQuietly(weak_client, key, owner);
  }
  if (absl::Status s = ToStoreError(reply, delay); !s.ok()) {
    return s;
  }
  const auto& e = reply->elements;
  const auto bad = [&] {
    return MakeError(Reason::kInternal,
                     "idempotency store: unexpected Begin reply");
  };
  if (reply->type != RedisReply::Type::kArray || e.empty() ||
      e[0].type != RedisReply::Type::kString) {
    return bad();
  }
  Claim claim;
  const std::string& tag = e[0].str;
  if (tag == "ACQUIRED" && e.size() == 3 &&
      e[1].type == RedisReply::Type::kInteger &&
      e[2].type == RedisReply::Type::kInteger) {
    claim.outcome = Claim::Outcome::kAcquired;
    claim.owner_token = owner;
    claim.reconcile = e[1].integer != 0;
    claim.quiet_left = absl::Milliseconds(e[2].integer);
  } else if (tag == "COMPLETED" && e.size() == 2 &&
             e[1].type == RedisReply::Type::kString) {
    claim.outcome = Claim::Outcome::kCompleted;
    claim.stored = e[1].str;
  } else if (tag == "INPROGRESS" && e.size() == 2 &&
             e[1].type == RedisReply::Type::kInteger) {
    claim.outcome = Claim::Outcome::kInProgress;
    claim.retry_after = absl::Milliseconds(e[1].integer);
  } else if (tag == "MISMATCH") {
    claim.outcome = Claim::Outcome::kMismatch;
  } else if (tag == "OTHERFAMILY") {
    claim.outcome = Claim::Outcome::kOtherFamily;
  } else {
    return bad();
  }
  return claim;
}

}  // namespace

absl::Status StoreErrorOf(const absl::StatusOr<RedisReply>& reply,
                          absl::Duration retry_delay) {
  return ToStoreError(reply, retry_delay);
}

absl::StatusOr<std::unique_ptr<RedisIdempotencyStore>>
RedisIdempotencyStore::Create(EventLoop* loop,
                              RedisIdempotencyStoreOptions options) {
  if (options.retention <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("retention must be positive");
  }
  if (options.replication.replicas < -1) {
    return absl::InvalidArgumentError(
        "replication.replicas must be -1 (auto), 0 (no WAIT) or more");
  }
  if (options.replication.replicas != 0 &&
      (options.replication.timeout <= absl::ZeroDuration() ||
       options.replication.timeout >= options.client.command_timeout)) {
    return absl::InvalidArgumentError(
        "replication.timeout must be positive and below command_timeout");
  }
  auto client = RedisClient::Create(loop, options.client);
  if (!client.ok()) return client.status();
  return std::make_unique<RedisIdempotencyStore>(
      std::shared_ptr<RedisClient>(*std::move(client)), std::move(options));
}

RedisIdempotencyStore::RedisIdempotencyStore(
    std::shared_ptr<RedisClient> client, RedisIdempotencyStoreOptions options)
    : client_(std::move(client)), options_(std::move(options)) {}

bool RedisIdempotencyStore::Healthy() const { return client_->Healthy(); }

std::shared_ptr<RedisClient> RedisIdempotencyStore::client() const {
  return client_;
}

void RedisIdempotencyStore::Run(const Script& script,
                                std::vector<std::string> keys,
                                std::vector<std::string> args,
                                RedisClient::Callback done, WaitIf wait_if) {
  std::vector<std::string> command = {"EVALSHA", script.sha1,
                                      std::to_string(keys.size())};
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  // A weak reference: a callback must never be what destroys the client
  // (that would free hiredis's context from inside its own callback).
  auto on_reply = [weak_client = std::weak_ptr<RedisClient>(client_), &script,
                   keys = std::move(keys), args = std::move(args), wait_if,
                   wait = options_.replication, done = std::move(done)](
                      absl::StatusOr<RedisReply> reply) mutable {
    if (!reply.ok() || !reply->is_error() ||
        !absl::StartsWith(reply->str, "NOSCRIPT")) {
      std::move(done)(std::move(reply));
      return;
    }
    std::shared_ptr<RedisClient> client = weak_client.lock();
    if (client == nullptr) {
      std::move(done)(absl::UnavailableError("Redis client is shut down"));
      return;
    }
    // NOSCRIPT means nothing ran: sending the body is safe, and caches
    // it for the next EVALSHA.
    std::vector<std::string> eval = {"EVAL", script.body,
                                     std::to_string(keys.size())};
    for (std::string& k : keys) eval.push_back(std::move(k));
    for (std::string& a : args) eval.push_back(std::move(a));
    if (wait_if == nullptr) {
      client->Command(std::move(eval), std::move(done));
    } else {
      client->CommandThenWait(std::move(eval), wait, wait_if, std::move(done));
    }
  };
  if (wait_if == nullptr) {
    client_->Command(std::move(command), std::move(on_reply));
  } else {
    client_->CommandThenWait(std::move(command), options_.replication, wait_if,
                             std::move(on_reply));
  }
}

void RedisIdempotencyStore::Begin(
    const IdempotencyKey& key, const BeginArgs& begin,
    absl::AnyInvocable<void(absl::StatusOr<Claim>) &&> done) {
  std::string owner = begin.owner.empty() ? RandomHex(16) : begin.owner;
  std::vector<std::string> keys = RecordKeys(key);
  for (const std::string& family : begin.other_families) {
    keys.push_back(
        IdempotencyKey{family, key.merchant_id, key.trans_id}.RedisKey());
  }
  UnsettledEntry entry;
  entry.key = key;
  entry.fingerprint = begin.fingerprint;
  entry.request = begin.request;
  std::vector<std::string> args = {begin.fingerprint,
                                   owner,
                                   Millis(begin.lease),
                                   Millis(options_.retention),
                                   begin.request,
                                   EncodeUnsettledEntry(entry, RandomHex(8)),
                                   begin.settling ? "1" : "0"};
  // While its slot migrates, a script over the record and the (absent)
  // other-family key is TRYAGAIN until the record moved too. Then the claim
  // is made on the record and its index keys alone (EVAL, routed by ASK):
  // the cross-family check is skipped for that claim, and adoption's kind
  // check at PayKKa still tells the families apart.
  std::vector<std::string> single = {"EVAL", BeginScript().body, "3"};
  single.insert(single.end(), keys.begin(), keys.begin() + 3);
  if (keys.size() > 3) single.insert(single.end(), args.begin(), args.end());
  Run(
      BeginScript(), std::move(keys), std::move(args),
      [delay = options_.unavailable_retry_delay, owner = std::move(owner),
       weak_client = std::weak_ptr<RedisClient>(client_), key,
       single = std::move(single), wait = options_.replication,
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        std::shared_ptr<RedisClient> client = weak_client.lock();
        if (single.size() > 6 && client != nullptr && reply.ok() &&
            reply->is_error() && absl::StartsWith(reply->str, "TRYAGAIN")) {
          return client->CommandThenWait(
              std::move(single), wait, &IsAcquired,
              [delay, owner = std::move(owner), weak_client,
               key = std::move(key), done = std::move(done)](
                  absl::StatusOr<RedisReply> again) mutable {
                std::move(done)(
                    ParseBeginReply(again, owner, delay, weak_client, key));
              });
        }
        std::move(done)(ParseBeginReply(reply, owner, delay, weak_client, key));
      },
      &IsAcquired);
}

void RedisIdempotencyStore::Complete(
    const IdempotencyKey& key, const std::string& owner,
    const std::string& outcome, absl::Duration retention,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  if (retention <= absl::ZeroDuration()) retention = options_.retention;
  Run(CompleteScript(), RecordKeys(key), {owner, outcome, Millis(retention)},
      [delay = options_.unavailable_retry_delay,
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        std::move(done)(OwnerCheck(reply, "Complete", delay));
      });
}

void RedisIdempotencyStore::MarkUnknown(
    const IdempotencyKey& key, const std::string& owner, absl::Duration quiet,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  const int64_t quiet_ms =
      std::max<int64_t>(0, absl::ToInt64Milliseconds(quiet));
  Run(MarkUnknownScript(), RecordKeys(key),
      {owner, Millis(options_.retention), std::to_string(quiet_ms)},
      [delay = options_.unavailable_retry_delay,
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        std::move(done)(OwnerCheck(reply, "MarkUnknown", delay));
      });
}

void RedisIdempotencyStore::Release(
    const IdempotencyKey& key, const std::string& owner,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  Run(ReleaseScript(), RecordKeys(key), {owner},
      [delay = options_.unavailable_retry_delay,
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        std::move(done)(OwnerCheck(reply, "Release", delay));
      });
}

void RedisIdempotencyStore::Forget(
    const IdempotencyKey& key, const std::string& owner,
    absl::AnyInvocable<void(absl::Status) &&> done) {
  Run(ForgetScript(), RecordKeys(key), {owner},
      [delay = options_.unavailable_retry_delay,
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        std::move(done)(OwnerCheck(reply, "Forget", delay));
      });
}

}  // namespace payorch::cache
