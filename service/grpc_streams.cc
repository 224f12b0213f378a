#include "service/grpc_streams.h"

#include <deque>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "google/protobuf/util/time_util.h"
#include "service/grpc_status.h"

namespace payorch::service {
namespace {

constexpr size_t kMaxIdLength = 64;
constexpr size_t kMaxMerchantIdLength = 32;

// What a stream does with one event.
enum class Step { kSkip, kSend, kSendAndEnd };

template <typename Response>
using Convert = std::function<Step(const v1::MerchantEvent&, Response*)>;

void RedactStoredCard(v1::Order* order) {
  order->clear_token();
  order->clear_recurring_agreement_id();
}

// One stream's state, on the hub's loop thread. Held by its reactor (and
// by closures queued on the loop); it never touches the reactor after
// Finish().
template <typename Response>
class StreamCore : public EventSubscriber,
                   public std::enable_shared_from_this<StreamCore<Response>> {
 public:
  StreamCore(EventHub* hub, grpc::ServerWriteReactor<Response>* reactor,
             std::string merchant, std::string key, Convert<Response> convert,
             StreamEnded ended)
      : hub_(hub),
        reactor_(reactor),
        merchant_(std::move(merchant)),
        key_(std::move(key)),
        convert_(std::move(convert)),
        ended_cb_(std::move(ended)) {}

  // Registers with the hub after `from`: live (the hub hands it what comes
  // after `from`) or catching up (it reads the log from `from` first).
  // `held`: queued events wait for Release() (WatchOrder's first message).
  void Start(cache::StreamId from, bool live, bool held) {
    if (ended_) return;
    cursor_ = delivered_ = from;
    live_ = live;
    held_ = held;
    registered_ = true;
    hub_->Add(merchant_, key_, from, this);
    Pump();
  }

  // Writes `first` (then ends when `end`), and lets queued events follow.
  void SendFirst(Response first, bool end) {
    held_ = false;
    if (ended_ || writing_) return;
    Write(std::move(first), end);
  }

  void End(const absl::Status& status, bool now = false) {
    End(ToGrpcStatus(status), status, now);
  }

  void OnWriteDone(bool ok) {
    writing_ = false;
    if (!ok) {
      return End(absl::CancelledError("the caller went away"));
    }
    if (end_after_write_) return End(absl::OkStatus());
    if (end_status_.has_value()) return End(*end_status_);
    Pump();
  }

  void OnCancel() { End(absl::CancelledError("the caller cancelled")); }

  void OnLive(const std::vector<EventPtr>& events) override {
    if (ended_ || !live_) return;
    for (const EventPtr& e : events) Take(e);
    Pump();
  }

  void OnTick(absl::Time now) override {
    if (writing_ &&
        now - write_started_ > hub_->options().slow_consumer_timeout) {
      End(MakeError(Reason::kConsumerTooSlow,
                    "the stream's reader stopped taking messages; reconnect "
                    "with the last resume_token"),
          /*now=*/true);
    }
  }

  EventLoop* loop() const { return hub_->loop(); }
  bool ended() const { return ended_; }

 private:
  void Take(const EventPtr& e) {
    std::optional<cache::StreamId> id =
        cache::StreamId::Parse(e->resume_token());
    if (!id.has_value() || *id <= cursor_) return;
    cursor_ = *id;
    if (!Wants(*e)) {
      if (queue_.empty()) delivered_ = *id;
      return;
    }
    queue_.emplace_back(*id, e);
    if (static_cast<int>(queue_.size()) > hub_->options().page) {
      // Too far behind: keep nothing, re-read from the log later.
      queue_.clear();
      cursor_ = delivered_;
      live_ = false;
    }
  }

  bool Wants(const v1::MerchantEvent& e) const {
    if (key_.empty()) return true;
    for (const std::string& k : MatchKeys(e.order())) {
      if (k == key_) return true;
    }
    return false;
  }

  void Pump() {
    while (!ended_ && !writing_ && !held_) {
      if (queue_.empty()) {
        delivered_ = cursor_;
        if (!live_) ReadMore();
        return;
      }
      auto [id, event] = std::move(queue_.front());
      queue_.pop_front();
      delivered_ = id;
      Response message;
      Step step = convert_(*event, &message);
      if (step == Step::kSkip) continue;
      return Write(std::move(message), step == Step::kSendAndEnd);
    }
  }

  void ReadMore() {
    if (reading_) return;
    reading_ = true;
    hub_->log()->Range(
        merchant_, cursor_, hub_->options().page,
        [self = this->shared_from_this()](
            absl::StatusOr<std::vector<cache::StoredEvent>> r) mutable {
          EventLoop* loop = self->loop();
          loop->Post([self = std::move(self), r = std::move(r)]() mutable {
            self->OnRange(std::move(r));
          });
        });
  }

  void OnRange(absl::StatusOr<std::vector<cache::StoredEvent>> r) {
    reading_ = false;
    if (ended_) return;
    if (!r.ok()) {
      return End(MakeError(Reason::kEventLogUnavailable,
                           std::string(r.status().message())));
    }
    for (const cache::StoredEvent& entry : *r) {
      if (EventPtr e = DecodeEvent(entry)) {
        Take(e);
      } else if (cursor_ < entry.id) {
        cursor_ = entry.id;
      }
    }
    if (static_cast<int>(r->size()) < hub_->options().page) {
      // Caught up unless the hub handed out events past us meanwhile (they
      // were ignored while catching up): then read once more.
      std::optional<cache::StreamId> pos = hub_->Position(merchant_);
      if (!pos.has_value() || *pos <= cursor_ || r->empty()) {
        if (pos.has_value() && cursor_ < *pos) cursor_ = *pos;
        live_ = true;
      }
    }
    Pump();
  }

  void Write(Response message, bool end_after) {
    message_ = std::move(message);
    writing_ = true;
    end_after_write_ = end_after;
    write_started_ = absl::Now();
    reactor_->StartWrite(&message_);
  }

  void End(grpc::Status status, const absl::Status& cause, bool now) {
    if (ended_) return;
    if (writing_ && !now) {
      if (!end_status_.has_value()) end_status_ = cause;
      return;
    }
    ended_ = true;
    queue_.clear();
    if (registered_) hub_->Remove(merchant_, key_, this);
    hub_->Close();
    ended_cb_(cause);
    // Finish from a fresh turn of the loop: once it runs, gRPC may destroy
    // the reactor and with it the last reference to this core.
    loop()->Post([self = this->shared_from_this(), status = std::move(status)] {
      self->reactor_->Finish(status);
    });
  }

  EventHub* const hub_;
  grpc::ServerWriteReactor<Response>* const reactor_;
  const std::string merchant_;
  const std::string key_;
  Convert<Response> convert_;
  StreamEnded ended_cb_;
  std::deque<std::pair<cache::StreamId, EventPtr>> queue_;
  cache::StreamId cursor_;     // the last event taken (queued or skipped)
  cache::StreamId delivered_;  // everything up to here was written/skipped
  bool live_ = false;
  bool held_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool registered_ = false;
  bool ended_ = false;
  bool end_after_write_ = false;
  std::optional<absl::Status> end_status_;
  absl::Time write_started_;
  Response message_;
};

// gRPC's side of a stream: forwards its callbacks to the core's loop.
template <typename Response>
class StreamReactor : public grpc::ServerWriteReactor<Response> {
 public:
  void Attach(std::shared_ptr<StreamCore<Response>> core) {
    core_ = std::move(core);
  }
  void OnWriteDone(bool ok) override {
    core_->loop()->Post([core = core_, ok] { core->OnWriteDone(ok); });
  }
  void OnCancel() override {
    core_->loop()->Post([core = core_] { core->OnCancel(); });
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<StreamCore<Response>> core_;
};

template <typename Response>
std::pair<StreamReactor<Response>*, std::shared_ptr<StreamCore<Response>>>
MakeStream(EventHub* hub, const std::string& merchant, std::string key,
           Convert<Response> convert, StreamEnded ended) {
  auto* reactor = new StreamReactor<Response>();
  auto core = std::make_shared<StreamCore<Response>>(
      hub, reactor, merchant, std::move(key), std::move(convert),
      std::move(ended));
  reactor->Attach(core);
  return {reactor, core};
}

// Where a stream without a token starts: the hub's position in the
// merchant's log when it follows it, else the log's last ID (Redis).
template <typename Response>
void StartAtTail(std::shared_ptr<StreamCore<Response>> core, EventHub* hub,
                 const std::string& merchant, bool held,
                 std::function<void()> then) {
  hub->loop()->Post([core, hub, merchant, held, then = std::move(then)] {
    if (std::optional<cache::StreamId> pos = hub->Position(merchant)) {
      core->Start(*pos, /*live=*/true, held);
      return then();
    }
    hub->log()->Position(
        merchant, [core, hub, held,
                   then](absl::StatusOr<cache::StreamPosition> p) mutable {
          hub->loop()->Post([core, hub, held, p = std::move(p), then] {
            if (!p.ok()) {
              return core->End(MakeError(Reason::kEventLogUnavailable,
                                         std::string(p.status().message())));
            }
            core->Start(p->last, /*live=*/true, held);
            then();
          });
        });
  });
}

void MerchantField(const std::string& merchant_id,
                   std::vector<FieldViolation>* violations) {
  if (merchant_id.empty() || merchant_id.size() > kMaxMerchantIdLength) {
    violations->push_back({"merchant_id", "required, at most 32 characters"});
  }
}

// Refusals before a stream is opened: no event log, unknown merchant, too
// many streams. OK: the caller holds one of the hub's stream slots.
absl::Status Admit(EventHub* hub, const std::string& merchant_id) {
  if (hub == nullptr) {
    return MakeError(Reason::kEventLogUnavailable,
                     "payorchd runs without Redis: there is no event log");
  }
  if (hub->merchants().Find(merchant_id) == nullptr) {
    return MakeError(Reason::kMerchantNotConfigured,
                     "merchant_id is not configured");
  }
  if (!hub->TryOpen()) {
    return WithRetryDelay(
        MakeError(Reason::kOverloaded, "too many open streams"),
        absl::Seconds(1));
  }
  return absl::OkStatus();
}

// A resumed stream: the token must still be covered by the log.
template <typename Response>
void ResumeAt(std::shared_ptr<StreamCore<Response>> core, EventHub* hub,
              const std::string& merchant, cache::StreamId token) {
  hub->log()->Position(
      merchant, [core, hub, token](absl::StatusOr<cache::StreamPosition> p) {
        hub->loop()->Post([core, token, p = std::move(p)] {
          if (!p.ok()) {
            return core->End(MakeError(Reason::kEventLogUnavailable,
                                       std::string(p.status().message())));
          }
          if (token < p->trimmed || p->last < token) {
            return core->End(MakeError(
                Reason::kResumeTokenExpired,
                token < p->trimmed
                    ? "events after this token were trimmed (older than the "
                      "retention)"
                    : "the token is ahead of the log (the log was reset)",
                {{"resume_token", token.ToString()},
                 {"oldest_kept_after", p->trimmed.ToString()}}));
          }
          core->Start(token, /*live=*/false, /*held=*/false);
        });
      });
}

using OrderCore = StreamCore<v1::WatchOrderResponse>;

v1::GetOrderRequest OrderLookupOf(const v1::WatchOrderRequest& request) {
  v1::GetOrderRequest get;
  get.set_merchant_id(request.merchant_id());
  switch (request.lookup_case()) {
    case v1::WatchOrderRequest::kOrderId:
      get.set_order_id(request.order_id());
      break;
    case v1::WatchOrderRequest::kSessionId:
      get.set_session_id(request.session_id());
      break;
    default:
      get.set_trans_id(request.trans_id());
  }
  return get;
}

// After the session's expire_time: if PayKKa says it expired unpaid, the
// stream ends with SESSION_EXPIRED; a paid one brings its events; else look
// again a little later (clocks differ).
void WatchExpiry(std::weak_ptr<OrderCore> weak, PaymentService* payments,
                 v1::GetOrderRequest get, absl::Duration delay) {
  std::shared_ptr<OrderCore> core = weak.lock();
  if (core == nullptr) return;
  core->loop()->RunAfter(delay, [weak, payments, get = std::move(get)] {
    std::shared_ptr<OrderCore> core = weak.lock();
    if (core == nullptr || core->ended()) return;
    payments->GetOrder(
        get, absl::Now() + absl::Seconds(15),
        [weak, payments, get](Outcome<v1::GetOrderResponse> o) {
          std::shared_ptr<OrderCore> core = weak.lock();
          if (core == nullptr) return;
          core->loop()->Post([weak, payments, get, status = o.result.status()] {
            std::shared_ptr<OrderCore> core = weak.lock();
            if (core == nullptr || core->ended()) return;
            if (HasReason(status, Reason::kSessionExpired)) {
              return core->End(status);
            }
            if (!status.ok())
              WatchExpiry(weak, payments, get, absl::Seconds(5));
          });
        });
  });
}

void SendCurrentState(std::shared_ptr<OrderCore> core, PaymentService* payments,
                      v1::GetOrderRequest get, bool may_charge,
                      std::shared_ptr<std::string> last);

// By session (one query while unpaid): a session with an order sends the
// order's state; without one the session is the first message, and its
// expiry is watched.
void SendSession(std::shared_ptr<OrderCore> core, PaymentService* payments,
                 v1::GetOrderRequest get, absl::Status order_status,
                 bool may_charge, std::shared_ptr<std::string> last) {
  v1::GetSessionStatusRequest session;
  session.set_merchant_id(get.merchant_id());
  if (get.has_session_id()) {
    session.set_session_id(get.session_id());
  } else {
    session.set_trans_id(get.trans_id());
  }
  payments->GetSessionStatus(
      session, absl::Now() + absl::Seconds(15),
      [core, payments, get = std::move(get), may_charge, last,
       order_status = std::move(order_status)](
          Outcome<v1::GetSessionStatusResponse> s) mutable {
        core->loop()->Post([core, payments, get = std::move(get), may_charge,
                            last, order_status = std::move(order_status),
                            s = std::move(s.result)]() mutable {
          if (!s.ok()) {
            return core->End(HasReason(s.status(), Reason::kSessionNotFound)
                                 ? order_status
                                 : s.status());
          }
          if (s->status() == v1::SESSION_STATUS_EXPIRED) {
            return core->End(
                MakeError(Reason::kSessionExpired,
                          "the session expired unpaid; no order will come",
                          {{"session_id", s->session_id()}}));
          }
          if (!s->order_id().empty()) {
            v1::GetOrderRequest by_order;
            by_order.set_merchant_id(get.merchant_id());
            by_order.set_order_id(s->order_id());
            return SendCurrentState(core, payments, std::move(by_order),
                                    may_charge, last);
          }
          absl::Time expire = absl::FromUnixSeconds(s->expire_time().seconds());
          v1::WatchOrderResponse first;
          *first.mutable_session() = *std::move(s);
          core->SendFirst(std::move(first), /*end=*/false);
          WatchExpiry(core, payments, std::move(get),
                      std::max(expire - absl::Now(), absl::ZeroDuration()) +
                          absl::Seconds(1));
        });
      });
}

// The first message: the order's current state (one query).
void SendCurrentState(std::shared_ptr<OrderCore> core, PaymentService* payments,
                      v1::GetOrderRequest get, bool may_charge,
                      std::shared_ptr<std::string> last) {
  payments->GetOrder(
      get, absl::Now() + absl::Seconds(15),
      [core, payments, get, may_charge,
       last](Outcome<v1::GetOrderResponse> o) mutable {
        core->loop()->Post([core, payments, get = std::move(get), may_charge,
                            last, r = std::move(o.result)]() mutable {
          if (r.ok()) {
            *last = OrderFingerprint(r->order());
            v1::WatchOrderResponse first;
            *first.mutable_order() = std::move(*r->mutable_order());
            if (!may_charge) RedactStoredCard(first.mutable_order());
            bool end = IsFinalStatus(first.order().status());
            return core->SendFirst(std::move(first), end);
          }
          if (HasReason(r.status(), Reason::kOrderNotFound) &&
              !get.has_order_id()) {
            return SendSession(core, payments, std::move(get), r.status(),
                               may_charge, last);
          }
          core->End(r.status());
        });
      });
}

}  // namespace

absl::Status ValidateWatchOrder(const v1::WatchOrderRequest& request) {
  std::vector<FieldViolation> violations;
  MerchantField(request.merchant_id(), &violations);
  const char* field = nullptr;
  std::string value;
  switch (request.lookup_case()) {
    case v1::WatchOrderRequest::kOrderId:
      field = "order_id";
      value = request.order_id();
      break;
    case v1::WatchOrderRequest::kSessionId:
      field = "session_id";
      value = request.session_id();
      break;
    case v1::WatchOrderRequest::kTransId:
      field = "trans_id";
      value = request.trans_id();
      break;
    default:
      violations.push_back(
          {"lookup", "set one of order_id, session_id, trans_id"});
  }
  if (field != nullptr && (value.empty() || value.size() > kMaxIdLength)) {
    violations.push_back({field, "required, at most 64 characters"});
  }
  if (violations.empty()) return absl::OkStatus();
  return InvalidFields(std::move(violations));
}

absl::Status ValidateWatchMerchantEvents(
    const v1::WatchMerchantEventsRequest& request) {
  std::vector<FieldViolation> violations;
  MerchantField(request.merchant_id(), &violations);
  if (!request.resume_token().empty() &&
      !cache::StreamId::Parse(request.resume_token()).has_value()) {
    violations.push_back(
        {"resume_token", "not a resume token (\"<ms>-<seq>\" from an event)"});
  }
  if (violations.empty()) return absl::OkStatus();
  return InvalidFields(std::move(violations));
}

grpc::ServerWriteReactor<v1::MerchantEvent>* StartWatchMerchantEvents(
    EventHub* hub, const v1::WatchMerchantEventsRequest& request,
    bool may_charge, StreamEnded ended) {
  const std::string& merchant = request.merchant_id();
  if (absl::Status admitted = Admit(hub, merchant); !admitted.ok()) {
    return RefusedStream<v1::MerchantEvent>(admitted, ended);
  }
  Convert<v1::MerchantEvent> convert = [may_charge](const v1::MerchantEvent& e,
                                                    v1::MerchantEvent* out) {
    *out = e;
    if (!may_charge) RedactStoredCard(out->mutable_order());
    return Step::kSend;
  };
  auto [reactor, core] = MakeStream<v1::MerchantEvent>(
      hub, merchant, "", std::move(convert), std::move(ended));
  if (request.resume_token().empty()) {
    StartAtTail(core, hub, merchant, /*held=*/false, [] {});
  } else {
    ResumeAt(core, hub, merchant,
             *cache::StreamId::Parse(request.resume_token()));
  }
  return reactor;
}

grpc::ServerWriteReactor<v1::WatchOrderResponse>* StartWatchOrder(
    EventHub* hub, PaymentService* payments,
    const v1::WatchOrderRequest& request, bool may_charge, StreamEnded ended) {
  const std::string& merchant = request.merchant_id();
  if (absl::Status admitted = Admit(hub, merchant); !admitted.ok()) {
    return RefusedStream<v1::WatchOrderResponse>(admitted, ended);
  }
  v1::GetOrderRequest get = OrderLookupOf(request);
  std::string key = get.has_order_id()     ? "o:" + get.order_id()
                    : get.has_session_id() ? "s:" + get.session_id()
                                           : "t:" + get.trans_id();
  // The fingerprint of the last state sent: an event that repeats it is
  // not sent again.
  auto last = std::make_shared<std::string>();
  Convert<v1::WatchOrderResponse> convert = [may_charge, last](
                                                const v1::MerchantEvent& e,
                                                v1::WatchOrderResponse* out) {
    std::string fp = OrderFingerprint(e.order());
    if (fp == *last) return Step::kSkip;
    *last = std::move(fp);
    *out->mutable_order() = e.order();
    if (!may_charge) RedactStoredCard(out->mutable_order());
    out->set_resume_token(e.resume_token());
    return IsFinalStatus(e.order().status()) ? Step::kSendAndEnd : Step::kSend;
  };
  auto [reactor, core] = MakeStream<v1::WatchOrderResponse>(
      hub, merchant, std::move(key), std::move(convert), std::move(ended));
  // Registered first, then queried: a change after the query is an event
  // the stream holds until the first message is out.
  StartAtTail(core, hub, merchant, /*held=*/true,
              [core = core, payments, get = std::move(get), may_charge, last] {
                if (get.has_session_id()) {
                  return SendSession(
                      core, payments, get,
                      MakeError(Reason::kOrderNotFound, "no order yet"),
                      may_charge, last);
                }
                SendCurrentState(core, payments, get, may_charge, last);
              });
  return reactor;
}

}  // namespace payorch::service
