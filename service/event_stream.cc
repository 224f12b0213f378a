#include "service/event_stream.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/notification.h"
#include "common/errors.h"
#include "google/protobuf/util/time_util.h"

namespace payorch::service {
namespace {

// Progress of an order, so that a late query answer cannot move its event
// stream backwards: the status' place in the lifecycle, then the amount
// refunded.
int64_t StatusRank(v1::OrderStatus status) {
  switch (status) {
    case v1::ORDER_STATUS_PROCESSING:
      return 1;
    case v1::ORDER_STATUS_AUTHORIZED:
      return 2;
    case v1::ORDER_STATUS_SUCCESS:
    case v1::ORDER_STATUS_FAILURE:
      return 3;
    case v1::ORDER_STATUS_PARTIALLY_REFUNDED:
    case v1::ORDER_STATUS_PARTIALLY_REVERSED:
      return 4;
    case v1::ORDER_STATUS_REFUNDED:
    case v1::ORDER_STATUS_CANCELED:
      return 5;
    default:
      return 0;
  }
}

int64_t OrderRank(const v1::Order& order) {
  constexpr int64_t kAmountSpan = int64_t{1} << 40;
  int64_t refunded = std::clamp<int64_t>(order.balances().refunded_amount(), 0,
                                         kAmountSpan - 1);
  return StatusRank(order.status()) * kAmountSpan + refunded;
}

}  // namespace

bool IsFinalStatus(v1::OrderStatus status) {
  return status == v1::ORDER_STATUS_SUCCESS ||
         status == v1::ORDER_STATUS_FAILURE ||
         status == v1::ORDER_STATUS_CANCELED ||
         status == v1::ORDER_STATUS_REFUNDED;
}

std::vector<std::string> MatchKeys(const v1::Order& order) {
  std::vector<std::string> keys;
  if (!order.order_id().empty()) keys.push_back("o:" + order.order_id());
  if (!order.session_id().empty()) keys.push_back("s:" + order.session_id());
  if (!order.trans_id().empty()) keys.push_back("t:" + order.trans_id());
  return keys;
}

std::string OrderFingerprint(const v1::Order& order) {
  return absl::StrCat(order.status_text(), "|", order.error_code(), "|",
                      order.authentication_url(), "|",
                      order.balances().SerializeAsString());
}

EventPtr DecodeEvent(const cache::StoredEvent& entry) {
  auto event = std::make_shared<v1::MerchantEvent>();
  if (!event->ParseFromString(entry.payload)) return nullptr;
  event->set_resume_token(entry.id.ToString());
  return event;
}

EventRecorder::EventRecorder(paykka::PaykkaClient* client,
                             const MerchantDirectory* merchants,
                             cache::EventLog* log, const Clock* clock,
                             absl::Duration query_timeout)
    : client_(client),
      merchants_(merchants),
      log_(log),
      clock_(clock),
      query_timeout_(query_timeout) {}

void EventRecorder::Record(const paykka::NotificationFields& n,
                           absl::AnyInvocable<void(absl::Status) &&> done) {
  std::shared_ptr<const paykka::MerchantConfig> merchant =
      merchants_->Find(n.merchant_id);
  if (merchant == nullptr) {
    return std::move(done)(MakeError(Reason::kMerchantNotConfigured,
                                     "merchant_id is not configured"));
  }
  if (n.order_id.empty() && n.trans_id.empty()) {
    // Nothing to query: no event, and nothing PayKKa could retry into one.
    return std::move(done)(absl::OkStatus());
  }
  paykka::OrderLookup lookup =
      n.order_id.empty()
          ? paykka::OrderLookup{paykka::OrderLookup::Kind::kTransId, n.trans_id}
          : paykka::OrderLookup{paykka::OrderLookup::Kind::kOrderId,
                                n.order_id};
  v1::EventType type = paykka::NotifyEventType(n.notify_type);
  client_->QueryTransaction(
      *merchant, std::move(lookup), clock_->Now() + query_timeout_,
      [this, merchant = n.merchant_id, type, notify_type = n.notify_type,
       notified = n.status,
       done = std::move(done)](absl::StatusOr<v1::Order> order) mutable {
        if (!order.ok()) {
          // PayKKa does not know the order: there is nothing to record, and
          // a retry would not change that.
          if (HasReason(order.status(), Reason::kOrderNotFound)) {
            return std::move(done)(absl::OkStatus());
          }
          return std::move(done)(order.status());
        }
        v1::MerchantEvent event;
        event.set_type(type);
        event.set_notify_type(notify_type);
        *event.mutable_time() =
            google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
                absl::ToUnixNanos(clock_->Now()));
        cache::AppendArgs args;
        args.subject = order->order_id().empty() ? "t:" + order->trans_id()
                                                 : order->order_id();
        // A refund notification is an event even when the order's state
        // did not move (e.g. a refund under review): its status counts.
        args.fingerprint = absl::StrCat(
            type, "|", type == v1::EVENT_TYPE_REFUND ? notified : "", "|",
            OrderFingerprint(*order));
        args.rank = OrderRank(*order);
        *event.mutable_order() = *std::move(order);
        args.payload = event.SerializeAsString();
        log_->Append(merchant, std::move(args),
                     [done = std::move(done)](
                         absl::StatusOr<cache::AppendResult> r) mutable {
                       std::move(done)(r.status());
                     });
      });
}

EventHub::EventHub(EventLoop* loop, cache::EventLog* log,
                   std::shared_ptr<cache::RedisClient> blocking,
                   const MerchantDirectory* merchants, EventHubOptions options)
    : loop_(loop), log_(log), merchants_(merchants), options_(options) {
  tail_ = std::make_unique<cache::EventTail>(
      std::move(blocking), loop,
      [this](const std::string& merchant,
             const std::vector<cache::StoredEvent>& entries) {
        OnEntries(merchant, entries);
      },
      options_.tail);
  loop_->Post([this, alive = alive_] {
    if (*alive) Tick();
  });
}

EventHub::~EventHub() { *alive_ = false; }

bool EventHub::TryOpen() {
  if (open_.fetch_add(1) >= options_.max_streams) {
    open_.fetch_sub(1);
    return false;
  }
  return true;
}

void EventHub::Close() { open_.fetch_sub(1); }

int EventHub::open_streams() const { return open_.load(); }

void EventHub::Add(const std::string& merchant, const std::string& key,
                   cache::StreamId from, EventSubscriber* subscriber) {
  Watchers& w = watchers_[merchant];
  if (key.empty()) {
    w.all.insert(subscriber);
  } else {
    w.by_key[key].insert(subscriber);
  }
  ++w.count;
  everyone_.insert(subscriber);
  tail_->Follow(merchant, from);
}

void EventHub::Remove(const std::string& merchant, const std::string& key,
                      EventSubscriber* subscriber) {
  everyone_.erase(subscriber);
  auto it = watchers_.find(merchant);
  if (it == watchers_.end()) return;
  Watchers& w = it->second;
  if (key.empty()) {
    w.all.erase(subscriber);
  } else if (auto k = w.by_key.find(key); k != w.by_key.end()) {
    k->second.erase(subscriber);
    if (k->second.empty()) w.by_key.erase(k);
  }
  if (--w.count > 0) return;
  watchers_.erase(it);
  tail_->Unfollow(merchant);
}

std::optional<cache::StreamId> EventHub::Position(
    const std::string& merchant) const {
  return tail_->Position(merchant);
}

void EventHub::OnEntries(const std::string& merchant,
                         const std::vector<cache::StoredEvent>& entries) {
  auto it = watchers_.find(merchant);
  if (it == watchers_.end()) return;
  std::vector<EventPtr> events;
  absl::flat_hash_map<EventSubscriber*, std::vector<EventPtr>> indexed;
  for (const cache::StoredEvent& entry : entries) {
    EventPtr e = DecodeEvent(entry);
    if (e == nullptr) continue;
    events.push_back(e);
    for (const std::string& key : MatchKeys(e->order())) {
      auto k = it->second.by_key.find(key);
      if (k == it->second.by_key.end()) continue;
      for (EventSubscriber* s : k->second) {
        std::vector<EventPtr>& mine = indexed[s];
        if (mine.empty() || mine.back() != e) mine.push_back(e);
      }
    }
  }
  // A subscriber may remove itself (and others of its merchant) while it
  // is told: walk copies, and tell only those still registered.
  std::vector<EventSubscriber*> all(it->second.all.begin(),
                                    it->second.all.end());
  for (EventSubscriber* s : all) {
    if (everyone_.contains(s)) s->OnLive(events);
  }
  for (auto& [s, mine] : indexed) {
    if (everyone_.contains(s)) s->OnLive(mine);
  }
}

void EventHub::Tick() {
  absl::Time now = absl::Now();
  std::vector<EventSubscriber*> all(everyone_.begin(), everyone_.end());
  for (EventSubscriber* s : all) {
    if (everyone_.contains(s)) s->OnTick(now);
  }
  loop_->RunAfter(absl::Seconds(1), [this, alive = alive_] {
    if (*alive) Tick();
  });
}

}  // namespace payorch::service
