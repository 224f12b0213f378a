#ifndef PAYORCH_CACHE_EVENT_LOG_H_
#define PAYORCH_CACHE_EVENT_LOG_H_

// The per-merchant event log: one Redis Stream per merchant
// (cache/README.md "Event log").
//
// - `payorch:events:{<merchant_id>}`: the stream. Each entry has one field,
//   `e`, the event's bytes (the service's serialized message). Its ID is
//   the event's resume token.
// - `payorch:evmeta:{<merchant_id>}`: `trimmed`, the newest ID trimmed away
//   (by age, `retention`, or length, `max_len`; both exact).
// - `payorch:evstate:{<merchant_id>}:<subject>`: per subject (an order), the
//   fingerprint, rank and ID of the last event appended for it; it makes an
//   append idempotent across replicas and retries.
// The hash tag is the merchant, so a merchant's keys share one Cluster slot
// and each append (a Lua script) is atomic and one round trip.
//
// EventTail follows many streams for one process over ONE dedicated
// connection per Redis primary (XREAD BLOCK holds its connection), with one
// XREAD per Cluster slot (single node: one XREAD for every stream). No
// thread per stream: everything runs on the client's EventLoop thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cache/redis_client.h"
#include "common/event_loop.h"

namespace payorch::cache {

inline constexpr absl::Duration kDefaultEventRetention = absl::Hours(24 * 7);

// A stream entry ID, "<ms>-<seq>".
struct StreamId {
  uint64_t ms = 0;
  uint64_t seq = 0;

  // "<ms>-<seq>" with both parts decimal; nullopt otherwise.
  static std::optional<StreamId> Parse(absl::string_view text);
  std::string ToString() const;
  friend bool operator<(const StreamId& a, const StreamId& b) {
    return a.ms != b.ms ? a.ms < b.ms : a.seq < b.seq;
  }
  friend bool operator==(const StreamId& a, const StreamId& b) {
    return a.ms == b.ms && a.seq == b.seq;
  }
  friend bool operator<=(const StreamId& a, const StreamId& b) {
    return !(b < a);
  }
};

std::string EventStreamKey(absl::string_view merchant_id);
std::string EventMetaKey(absl::string_view merchant_id);
std::string EventStateKey(absl::string_view merchant_id,
                          absl::string_view subject);

struct StoredEvent {
  StreamId id;
  std::string payload;
};

struct EventLogOptions {
  // Entries older than this are trimmed at the next append.
  absl::Duration retention = kDefaultEventRetention;
  // And at most this many per merchant.
  int64_t max_len = 1000000;
};

struct AppendArgs {
  // What the event is about (an order id); its state key.
  std::string subject;
  // The event's content that matters: an append whose fingerprint equals
  // the subject's last one is a duplicate (nothing appended).
  std::string fingerprint;
  // Progress of the subject (e.g. status order): an append with a lower
  // rank than the subject's last one is stale (nothing appended).
  int64_t rank = 0;
  std::string payload;
};

struct AppendResult {
  enum class Kind { kAppended, kDuplicate, kStale };
  Kind kind = Kind::kAppended;
  // The new entry's ID, or the subject's last one.
  StreamId id;
};

// Where a stream stands: the last ID it ever generated and the newest ID
// trimmed away; 0-0 when none.
struct StreamPosition {
  StreamId last;
  StreamId trimmed;
};

// Thread-safe; callbacks run on the client's loop thread. Redis failures
// are kUnavailable (the append may or may not have happened: retry it, it is
// idempotent).
class EventLog {
 public:
  EventLog(std::shared_ptr<RedisClient> client, EventLogOptions options);

  void Append(const std::string& merchant_id, AppendArgs args,
              absl::AnyInvocable<void(absl::StatusOr<AppendResult>) &&> done);
  // Up to `count` entries with IDs after `after`, oldest first.
  void Range(
      const std::string& merchant_id, StreamId after, int count,
      absl::AnyInvocable<void(absl::StatusOr<std::vector<StoredEvent>>) &&>
          done);
  void Position(
      const std::string& merchant_id,
      absl::AnyInvocable<void(absl::StatusOr<StreamPosition>) &&> done);

  const EventLogOptions& options() const { return options_; }

 private:
  std::shared_ptr<RedisClient> client_;
  const EventLogOptions options_;
};

struct EventTailOptions {
  // How long one XREAD waits for new entries. A stream followed meanwhile
  // is read from the next XREAD on.
  absl::Duration block = absl::Milliseconds(250);
  int count = 256;  // entries per stream per XREAD
  // Redis Cluster: one XREAD per slot (a command's keys must share one).
  // Single node: one XREAD for every stream.
  bool group_by_slot = false;
  // After an error, wait this long before reading again.
  absl::Duration retry_delay = absl::Milliseconds(200);
};

// Follows streams over `client`, which must be dedicated to it (its own
// connections; command_timeout above `block`). Every method must be called
// on `loop`'s thread, the client's loop; `on_entries` runs there.
class EventTail {
 public:
  using OnEntries = std::function<void(const std::string& merchant_id,
                                       const std::vector<StoredEvent>&)>;

  EventTail(std::shared_ptr<RedisClient> client, EventLoop* loop,
            OnEntries on_entries, EventTailOptions options = {});
  ~EventTail();

  // Starts following `merchant_id` after `from` (no-op when followed).
  void Follow(const std::string& merchant_id, StreamId from);
  void Unfollow(const std::string& merchant_id);
  // The last ID delivered (or the start) of a followed stream.
  std::optional<StreamId> Position(const std::string& merchant_id) const;

 private:
  struct Stream {
    StreamId position;
    int slot = 0;
  };
  void Read(int slot);
  void OnRead(int slot, absl::StatusOr<RedisReply> reply);

  std::shared_ptr<RedisClient> client_;
  EventLoop* loop_;
  OnEntries on_entries_;
  const EventTailOptions options_;
  absl::flat_hash_map<std::string, Stream> streams_;  // by merchant
  absl::flat_hash_map<int, bool> reading_;            // slot -> XREAD out
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The entries of an XRANGE / XREAD stream reply ([[id, [field, value...]]...]).
std::vector<StoredEvent> ParseStreamEntries(const RedisReply& entries);

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_EVENT_LOG_H_
