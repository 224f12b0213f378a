#include "cache/event_log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cache/idempotency_store.h"
#include "cache/redis_cluster.h"

namespace payorch::cache {
namespace {

// KEYS[1] stream, KEYS[2] subject state, KEYS[3] the stream's meta hash.
// ARGV: fingerprint, rank, payload, retention ms, max length, state TTL ms.
// Returns {kind, id}: 1 appended, 0 duplicate (same fingerprint as the
// last), 2 stale (lower rank). Trimming is exact, and the newest trimmed ID
// is kept in the meta hash (`trimmed`): a resume token before it has missed
// events (Redis itself does not record what trimming removed).
constexpr const char* kAppendLua = R"lua(
local cur = redis.call('HMGET', KEYS[2], 'fp', 'rank', 'id')
if cur[1] == ARGV[1] then return {0, cur[3]} end
if cur[2] and tonumber(cur[2]) > tonumber(ARGV[2]) then return {2, cur[3]} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minid = tostring(math.max(0, now - tonumber(ARGV[4])))
local old = redis.call('XREVRANGE', KEYS[1], '(' .. minid .. '-0', '-', 'COUNT', 1)
if old[1] then redis.call('HSET', KEYS[3], 'trimmed', old[1][1]) end
local id = redis.call('XADD', KEYS[1], 'MINID', minid, '*', 'e', ARGV[3])
local over = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[5])
if over > 0 then
  local gone = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)
  redis.call('HSET', KEYS[3], 'trimmed', gone[#gone][1])
  redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[5])
end
redis.call('HSET', KEYS[2], 'fp', ARGV[1], 'rank', ARGV[2], 'id', id)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {1, id}
)lua";

// KEYS[1] stream, KEYS[2] meta. Returns {last generated ID, trimmed}.
constexpr const char* kPositionLua = R"lua(
local last = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {last, redis.call('HGET', KEYS[2], 'trimmed') or '0-0'}
)lua";

absl::Status Unavailable(absl::string_view what, absl::string_view detail) {
  return absl::UnavailableError(absl::StrCat("event log ", what, ": ", detail));
}

// The reply, or kUnavailable for a failed command or an error reply.
absl::StatusOr<RedisReply> Checked(absl::StatusOr<RedisReply> reply,
                                   absl::string_view what) {
  if (!reply.ok()) return Unavailable(what, reply.status().message());
  if (reply->is_error()) return Unavailable(what, reply->str);
  return reply;
}

StreamId IdOrZero(const RedisReply& r) {
  return StreamId::Parse(r.str).value_or(StreamId{});
}

absl::StatusOr<AppendResult> ParseAppend(absl::StatusOr<RedisReply> reply) {
  auto r = Checked(std::move(reply), "append");
  if (!r.ok()) return r.status();
  if (r->type != RedisReply::Type::kArray || r->elements.size() != 2) {
    return Unavailable("append", "unexpected reply");
  }
  AppendResult out;
  switch (r->elements[0].integer) {
    case 0:
      out.kind = AppendResult::Kind::kDuplicate;
      break;
    case 2:
      out.kind = AppendResult::Kind::kStale;
      break;
    default:
      out.kind = AppendResult::Kind::kAppended;
  }
  out.id = IdOrZero(r->elements[1]);
  return out;
}

absl::StatusOr<StreamPosition> ParsePosition(absl::StatusOr<RedisReply> reply) {
  auto r = Checked(std::move(reply), "position");
  if (!r.ok()) return r.status();
  if (r->type != RedisReply::Type::kArray || r->elements.size() != 2) {
    return Unavailable("position", "unexpected reply");
  }
  return StreamPosition{IdOrZero(r->elements[0]), IdOrZero(r->elements[1])};
}

}  // namespace

std::optional<StreamId> StreamId::Parse(absl::string_view text) {
  size_t dash = text.find('-');
  if (dash == absl::string_view::npos || dash == 0 || dash + 1 == text.size()) {
    return std::nullopt;
  }
  for (char c : text) {
    if (c != '-' && (c < '0' || c > '9')) return std::nullopt;
  }
  StreamId id;
  if (!absl::SimpleAtoi(text.substr(0, dash), &id.ms) ||
      !absl::SimpleAtoi(text.substr(dash + 1), &id.seq)) {
    return std::nullopt;
  }
  return id;
}

std::string StreamId::ToString() const { return absl::StrCat(ms, "-", seq); }

std::string EventStreamKey(absl::string_view merchant_id) {
  return absl::StrCat("payorch:events:{", EscapeKeyPart(merchant_id, true),
                      "}");
}

std::string EventMetaKey(absl::string_view merchant_id) {
  return absl::StrCat("payorch:evmeta:{", EscapeKeyPart(merchant_id, true),
                      "}");
}

std::string EventStateKey(absl::string_view merchant_id,
                          absl::string_view subject) {
  return absl::StrCat("payorch:evstate:{", EscapeKeyPart(merchant_id, true),
                      "}:", subject);
}

std::vector<StoredEvent> ParseStreamEntries(const RedisReply& entries) {
  std::vector<StoredEvent> out;
  for (const RedisReply& entry : entries.elements) {
    if (entry.elements.size() != 2) continue;
    std::optional<StreamId> id = StreamId::Parse(entry.elements[0].str);
    if (!id.has_value()) continue;
    StoredEvent e{*id, ""};
    const auto& fields = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == "e") e.payload = fields[i + 1].str;
    }
    out.push_back(std::move(e));
  }
  return out;
}

EventLog::EventLog(std::shared_ptr<RedisClient> client, EventLogOptions options)
    : client_(std::move(client)), options_(options) {}

void EventLog::Append(
    const std::string& merchant_id, AppendArgs args,
    absl::AnyInvocable<void(absl::StatusOr<AppendResult>) &&> done) {
  const int64_t retention_ms =
      std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.retention));
  client_->Command(
      {"EVAL", kAppendLua, "3", EventStreamKey(merchant_id),
       EventStateKey(merchant_id, args.subject), EventMetaKey(merchant_id),
       std::move(args.fingerprint), std::to_string(args.rank),
       std::move(args.payload), std::to_string(retention_ms),
       std::to_string(options_.max_len), std::to_string(retention_ms)},
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        std::move(done)(ParseAppend(std::move(reply)));
      });
}

void EventLog::Range(
    const std::string& merchant_id, StreamId after, int count,
    absl::AnyInvocable<void(absl::StatusOr<std::vector<StoredEvent>>) &&>
        done) {
  client_->Command(
      {"XRANGE", EventStreamKey(merchant_id),
       absl::StrCat("(", after.ToString()), "+", "COUNT",
       std::to_string(std::max(1, count))},
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        auto r = Checked(std::move(reply), "range");
        if (!r.ok()) return std::move(done)(r.status());
        std::move(done)(ParseStreamEntries(*r));
      });
}

void EventLog::Position(
    const std::string& merchant_id,
    absl::AnyInvocable<void(absl::StatusOr<StreamPosition>) &&> done) {
  client_->Command(
      {"EVAL", kPositionLua, "2", EventStreamKey(merchant_id),
       EventMetaKey(merchant_id)},
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        std::move(done)(ParsePosition(std::move(reply)));
      });
}

EventTail::EventTail(std::shared_ptr<RedisClient> client, EventLoop* loop,
                     OnEntries on_entries, EventTailOptions options)
    : client_(std::move(client)),
      loop_(loop),
      on_entries_(std::move(on_entries)),
      options_(options) {}

EventTail::~EventTail() { *alive_ = false; }

void EventTail::Follow(const std::string& merchant_id, StreamId from) {
  if (streams_.contains(merchant_id)) return;
  int slot = options_.group_by_slot ? KeySlot(EventStreamKey(merchant_id)) : 0;
  streams_[merchant_id] = Stream{from, slot};
  Read(slot);
}

void EventTail::Unfollow(const std::string& merchant_id) {
  streams_.erase(merchant_id);
}

std::optional<StreamId> EventTail::Position(
    const std::string& merchant_id) const {
  auto it = streams_.find(merchant_id);
  if (it == streams_.end()) return std::nullopt;
  return it->second.position;
}

void EventTail::Read(int slot) {
  if (reading_[slot]) return;
  std::vector<std::string> keys, ids;
  for (const auto& [merchant, stream] : streams_) {
    if (stream.slot != slot) continue;
    keys.push_back(EventStreamKey(merchant));
    ids.push_back(stream.position.ToString());
  }
  if (keys.empty()) return;
  reading_[slot] = true;
  std::vector<std::string> args = {
      "XREAD",
      "COUNT",
      std::to_string(options_.count),
      "BLOCK",
      std::to_string(absl::ToInt64Milliseconds(options_.block)),
      "STREAMS"};
  std::string route = keys.front();
  for (std::string& k : keys) args.push_back(std::move(k));
  for (std::string& id : ids) args.push_back(std::move(id));
  client_->CommandForKey(
      std::move(route), std::move(args),
      [this, slot, alive = alive_](absl::StatusOr<RedisReply> reply) {
        if (*alive) OnRead(slot, std::move(reply));
      });
}

void EventTail::OnRead(int slot, absl::StatusOr<RedisReply> reply) {
  reading_[slot] = false;
  if (!reply.ok() || reply->is_error()) {
    loop_->RunAfter(options_.retry_delay, [this, slot, alive = alive_] {
      if (*alive) Read(slot);
    });
    return;
  }
  // nil: nothing new within `block`. Else [[key, entries]...]. Delivered
  // after the walk: a listener may follow or unfollow streams.
  std::vector<std::pair<std::string, std::vector<StoredEvent>>> batches;
  for (const RedisReply& per_key : reply->elements) {
    if (per_key.elements.size() != 2) continue;
    for (auto& [merchant, stream] : streams_) {
      if (EventStreamKey(merchant) != per_key.elements[0].str) continue;
      std::vector<StoredEvent> entries;
      for (StoredEvent& e : ParseStreamEntries(per_key.elements[1])) {
        if (stream.position < e.id) entries.push_back(std::move(e));
      }
      if (entries.empty()) break;
      stream.position = entries.back().id;
      batches.emplace_back(merchant, std::move(entries));
      break;
    }
  }
  for (const auto& [merchant, entries] : batches)
    on_entries_(merchant, entries);
  Read(slot);
}

}  // namespace payorch::cache
