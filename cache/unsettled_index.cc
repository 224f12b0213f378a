#include "cache/unsettled_index.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "cache/redis_cluster.h"
#include "cache/redis_idempotency_store.h"
#include "common/errors.h"

namespace payorch::cache {
namespace {

// Each script touches the two keys of one index only (one Cluster slot).
// Times are Redis server time (TIME), like the records' leases. Entries are
// added by the store's Begin script (cache/redis_idempotency_store.cc).

constexpr absl::string_view kPrefix = "payorch:unsettled:";
constexpr absl::string_view kSinceSuffix = ":since";

// KEYS: entries, since. ARGV: offset, limit, retention ms.
// Drops entries older than the retention (at most 1000 per call) and members
// without bytes, then -> {now ms, total, field, added ms, bytes, ...}.
constexpr const char* kScanLua = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now - tonumber(ARGV[3])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, 1000)
for _, f in ipairs(old) do
  redis.call('HDEL', KEYS[1], f)
  redis.call('ZREM', KEYS[2], f)
end
local first = tonumber(ARGV[1])
local r = redis.call('ZRANGE', KEYS[2], first, first + tonumber(ARGV[2]) - 1,
                     'WITHSCORES')
local out = {now, 0}
for i = 1, #r, 2 do
  local v = redis.call('HGET', KEYS[1], r[i])
  if v then
    out[#out + 1] = r[i]
    out[#out + 1] = r[i + 1]
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[2], r[i])
  end
end
out[2] = redis.call('ZCARD', KEYS[2])
return out
)lua";

// KEYS: entries, since. ARGV: field, bytes. -> 1 removed, 0 changed/absent.
constexpr const char* kRemoveLua = R"lua(
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
)lua";

void AppendPart(std::string& out, absl::string_view part) {
  absl::StrAppend(&out, part.size(), ":", part);
}

// Reads one "<len>:<bytes>" part at `pos`.
bool ReadPart(absl::string_view in, size_t& pos, std::string& part) {
  size_t colon = in.find(':', pos);
  size_t len = 0;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(in.substr(pos, colon - pos), &len) ||
      len > in.size() - colon - 1) {
    return false;
  }
  part = std::string(in.substr(colon + 1, len));
  pos = colon + 1 + len;
  return true;
}

absl::Status Unexpected(const char* what) {
  return MakeError(Reason::kInternal,
                   absl::StrCat("unsettled index: unexpected ", what));
}

absl::StatusOr<UnsettledPage> ParsePage(const RedisReply& reply) {
  const auto& e = reply.elements;
  if (reply.type != RedisReply::Type::kArray || e.size() < 2 ||
      (e.size() - 2) % 3 != 0 || e[0].type != RedisReply::Type::kInteger ||
      e[1].type != RedisReply::Type::kInteger) {
    return Unexpected("Scan reply");
  }
  UnsettledPage page;
  page.now = absl::FromUnixMillis(e[0].integer);
  page.total = e[1].integer;
  for (size_t i = 2; i < e.size(); i += 3) {
    double added_ms = 0;
    if (!absl::SimpleAtod(e[i + 1].str, &added_ms)) return Unexpected("score");
    absl::StatusOr<UnsettledEntry> entry = DecodeUnsettledEntry(e[i + 2].str);
    if (!entry.ok()) return entry.status();
    entry->field = e[i].str;
    entry->stored = e[i + 2].str;
    entry->added = absl::FromUnixMillis(static_cast<int64_t>(added_ms));
    page.entries.push_back(*std::move(entry));
  }
  return page;
}

// A List() in progress: the primaries (one slot each), the one being
// scanned and its cursor, what was found.
struct Listing {
  std::vector<int> slots;
  size_t next = 0;
  std::string cursor = "0";
  std::string count;
  absl::Duration retry_delay;
  std::set<std::string> names;
  int failed = 0;
  absl::Status last_error;
  absl::AnyInvocable<void(absl::StatusOr<UnsettledIndexes>) &&> done;
};

void Finish(Listing& l) {
  UnsettledIndexes out;
  out.primaries = static_cast<int>(l.slots.size());
  out.failed = l.failed;
  out.names.assign(l.names.begin(), l.names.end());
  if (l.slots.empty()) {
    l.last_error =
        WithRetryDelay(MakeError(Reason::kIdempotencyStoreUnavailable,
                                 "unsettled index: no Redis primary known"),
                       l.retry_delay);
  }
  if (out.failed == out.primaries) return std::move(l.done)(l.last_error);
  std::move(l.done)(std::move(out));
}

// Reads one SCAN reply into `l`: false when it is not one.
bool TakeScanReply(const RedisReply& reply, Listing& l) {
  const auto& e = reply.elements;
  if (reply.type != RedisReply::Type::kArray || e.size() != 2 ||
      e[0].type != RedisReply::Type::kString ||
      e[1].type != RedisReply::Type::kArray) {
    return false;
  }
  for (const RedisReply& key : e[1].elements) {
    absl::string_view name(key.str);
    if (!absl::ConsumeSuffix(&name, kSinceSuffix)) continue;
    l.names.insert(std::string(name));
  }
  l.cursor = e[0].str;
  return true;
}

// SCANs the primaries one after the other, each to the end of its cursor.
void ScanStep(std::weak_ptr<RedisClient> weak, std::shared_ptr<Listing> l) {
  std::shared_ptr<RedisClient> client = weak.lock();
  if (client == nullptr) {
    l->failed = static_cast<int>(l->slots.size());
    l->last_error = absl::UnavailableError("Redis client is shut down");
  }
  if (client == nullptr || l->next >= l->slots.size()) return Finish(*l);
  std::string route =
      absl::StrCat(kPrefix, "{", SlotTag(l->slots[l->next]), "}");
  client->CommandForKey(
      std::move(route),
      {"SCAN", l->cursor, "MATCH", absl::StrCat(kPrefix, "*", kSinceSuffix),
       "COUNT", l->count},
      [weak, l](absl::StatusOr<RedisReply> reply) {
        absl::Status s = StoreErrorOf(reply, l->retry_delay);
        if (s.ok() && !TakeScanReply(*reply, *l)) s = Unexpected("SCAN reply");
        if (!s.ok()) {
          ++l->failed;
          l->last_error = std::move(s);
          l->cursor = "0";
        }
        if (l->cursor == "0") ++l->next;
        ScanStep(weak, l);
      });
}

}  // namespace

std::string UnsettledIndexName(const IdempotencyKey& key) {
  return absl::StrCat(kPrefix, "{", SlotTag(KeySlot(key.RedisKey())), "}");
}

std::string UnsettledEntriesKey(absl::string_view index) {
  return absl::StrCat(index, ":entries");
}

std::string UnsettledSinceKey(absl::string_view index) {
  return absl::StrCat(index, kSinceSuffix);
}

std::string EncodeUnsettledEntry(const UnsettledEntry& entry,
                                 const std::string& nonce) {
  std::string out = "u1;";
  for (absl::string_view part :
       {absl::string_view(entry.key.family),
        absl::string_view(entry.key.merchant_id),
        absl::string_view(entry.key.trans_id),
        absl::string_view(entry.fingerprint), absl::string_view(entry.request),
        absl::string_view(nonce)}) {
    AppendPart(out, part);
  }
  return out;
}

absl::StatusOr<UnsettledEntry> DecodeUnsettledEntry(const std::string& bytes) {
  absl::string_view in(bytes);
  if (in.substr(0, 3) != "u1;") return Unexpected("entry version");
  size_t pos = 3;
  UnsettledEntry e;
  std::string nonce;
  for (std::string* part : {&e.key.family, &e.key.merchant_id, &e.key.trans_id,
                            &e.fingerprint, &e.request, &nonce}) {
    if (!ReadPart(in, pos, *part)) return Unexpected("entry encoding");
  }
  if (pos != in.size()) return Unexpected("entry encoding");
  return e;
}

UnsettledIndex::UnsettledIndex(std::shared_ptr<RedisClient> client,
                               UnsettledIndexOptions options)
    : client_(std::move(client)), options_(std::move(options)) {}

void UnsettledIndex::Eval(const char* script, const std::string& index,
                          std::vector<std::string> args,
                          RedisClient::Callback done) {
  // EVAL (not EVALSHA): the scripts are short, and there is no NOSCRIPT
  // round trip after a Redis restart.
  std::vector<std::string> command = {"EVAL", script, "2",
                                      UnsettledEntriesKey(index),
                                      UnsettledSinceKey(index)};
  for (std::string& a : args) command.push_back(std::move(a));
  client_->Command(std::move(command), std::move(done));
}

void UnsettledIndex::List(
    absl::AnyInvocable<void(absl::StatusOr<UnsettledIndexes>) &&> done) {
  auto listing = std::make_shared<Listing>();
  listing->count = std::to_string(std::max(1, options_.scan_count));
  listing->retry_delay = options_.unavailable_retry_delay;
  listing->done = std::move(done);
  client_->PrimarySlots([weak = std::weak_ptr<RedisClient>(client_),
                         listing](std::vector<int> slots) mutable {
    listing->slots = std::move(slots);
    ScanStep(std::move(weak), std::move(listing));
  });
}

void UnsettledIndex::Scan(
    const std::string& index, int64_t offset, int limit,
    absl::AnyInvocable<void(absl::StatusOr<UnsettledPage>) &&> done) {
  const int64_t retention_ms =
      std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.retention));
  Eval(kScanLua, index,
       {std::to_string(offset), std::to_string(std::max(1, limit)),
        std::to_string(retention_ms)},
       [delay = options_.unavailable_retry_delay,
        done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
         if (absl::Status s = StoreErrorOf(reply, delay); !s.ok()) {
           return std::move(done)(std::move(s));
         }
         std::move(done)(ParsePage(*reply));
       });
}

void UnsettledIndex::Remove(
    const UnsettledEntry& scanned,
    absl::AnyInvocable<void(absl::StatusOr<bool>) &&> done) {
  Eval(kRemoveLua, UnsettledIndexName(scanned.key),
       {scanned.field, scanned.stored},
       [delay = options_.unavailable_retry_delay,
        done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
         if (absl::Status s = StoreErrorOf(reply, delay); !s.ok()) {
           return std::move(done)(std::move(s));
         }
         if (reply->type != RedisReply::Type::kInteger) {
           return std::move(done)(Unexpected("Remove reply"));
         }
         std::move(done)(reply->integer == 1);
       });
}

}  // namespace payorch::cache
