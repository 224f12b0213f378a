#ifndef PAYORCH_SERVICE_EVENT_STREAM_H_
#define PAYORCH_SERVICE_EVENT_STREAM_H_

// Webhooks become events, and events reach watchers (README "Events").
//
// EventRecorder: a verified PayKKa notification is a trigger. It queries the
// order (Query Transaction: PayKKa's authoritative state) and appends one
// MerchantEvent to the merchant's log (cache/event_log.h). The append is
// idempotent across replicas and retries: an order whose state did not
// change since its last event gets no new event, and a query answer older
// than the order's last event (a lower status rank) is dropped. The webhook
// is acknowledged only once the append succeeded.
//
// EventHub: per process, follows the logs of the merchants that have
// watchers (one cache::EventTail, one dedicated Redis connection per
// primary) and hands each new event to the watchers it concerns (an index
// by order_id / session_id / trans_id for WatchOrder, every event for
// WatchMerchantEvents). Loop-confined: every method except the stream
// counters runs on loop().

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/paykka/paykka_client.h"
#include "adapters/paykka/webhook_input.h"
#include "cache/event_log.h"
#include "common/event_loop.h"
#include "payorch/v1/payorch.pb.h"
#include "service/payment_service.h"

namespace payorch::service {

using EventPtr = std::shared_ptr<const v1::MerchantEvent>;

// SUCCESS, FAILURE, CANCELED, REFUNDED: WatchOrder ends after one.
bool IsFinalStatus(v1::OrderStatus status);
// The index keys an event is found under: "o:<order_id>", "s:<session_id>",
// "t:<trans_id>" (the non-empty ones).
std::vector<std::string> MatchKeys(const v1::Order& order);
// What the order's state is, for de-duplication (status, error, balances).
std::string OrderFingerprint(const v1::Order& order);
// The event of a stored entry (resume_token = its ID); null if unreadable.
EventPtr DecodeEvent(const cache::StoredEvent& entry);

class EventRecorder {
 public:
  // All must outlive the recorder.
  EventRecorder(paykka::PaykkaClient* client,
                const MerchantDirectory* merchants, cache::EventLog* log,
                const Clock* clock, absl::Duration query_timeout);
  // Query, then append. OK also for a duplicate or stale trigger, and for
  // an order PayKKa does not know (nothing to record); otherwise the error
  // (PayKKa or Redis): the caller must not acknowledge.
  void Record(const paykka::NotificationFields& n,
              absl::AnyInvocable<void(absl::Status) &&> done);

 private:
  paykka::PaykkaClient* client_;
  const MerchantDirectory* merchants_;
  cache::EventLog* log_;
  const Clock* clock_;
  const absl::Duration query_timeout_;
};

// A watcher, as the hub sees it. Loop thread only.
class EventSubscriber {
 public:
  virtual ~EventSubscriber() = default;
  // New events of the merchant (those it concerns, for an indexed one), in
  // log order.
  virtual void OnLive(const std::vector<EventPtr>& events) = 0;
  // About once a second.
  virtual void OnTick(absl::Time now) = 0;
};

struct EventHubOptions {
  // A stream whose reader takes no message for this long is ended with
  // CONSUMER_TOO_SLOW.
  absl::Duration slow_consumer_timeout = absl::Seconds(30);
  // Events read from the log at once by a catching-up stream, and held at
  // most per stream: the memory bound.
  int page = 64;
  // Open streams per process; beyond, OVERLOADED.
  int max_streams = 20000;
  cache::EventTailOptions tail;
};

class EventHub {
 public:
  // `blocking` must be dedicated to the hub and run on `loop`. `log` and
  // `loop` must outlive the hub.
  EventHub(EventLoop* loop, cache::EventLog* log,
           std::shared_ptr<cache::RedisClient> blocking,
           const MerchantDirectory* merchants, EventHubOptions options);
  ~EventHub();

  EventLoop* loop() const { return loop_; }
  cache::EventLog* log() const { return log_; }
  const EventHubOptions& options() const { return options_; }
  const MerchantDirectory& merchants() const { return *merchants_; }

  // Any thread: counts an open stream; false when max_streams are open.
  bool TryOpen();
  void Close();
  int open_streams() const;

  // Loop thread. `key` "" receives every event of the merchant; else the
  // events with that MatchKeys() key. Follows the merchant's log after
  // `from` when it is not followed yet.
  void Add(const std::string& merchant, const std::string& key,
           cache::StreamId from, EventSubscriber* subscriber);
  void Remove(const std::string& merchant, const std::string& key,
              EventSubscriber* subscriber);
  // The last ID handed out (or the start) of a followed merchant's log.
  std::optional<cache::StreamId> Position(const std::string& merchant) const;

 private:
  struct Watchers {
    absl::flat_hash_set<EventSubscriber*> all;
    absl::flat_hash_map<std::string, absl::flat_hash_set<EventSubscriber*>>
        by_key;
    int count = 0;
  };
  void OnEntries(const std::string& merchant,
                 const std::vector<cache::StoredEvent>& entries);
  void Tick();

  EventLoop* const loop_;
  cache::EventLog* const log_;
  const MerchantDirectory* const merchants_;
  const EventHubOptions options_;
  std::unique_ptr<cache::EventTail> tail_;
  absl::flat_hash_map<std::string, Watchers> watchers_;
  absl::flat_hash_set<EventSubscriber*> everyone_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::atomic<int> open_{0};
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_EVENT_STREAM_H_
