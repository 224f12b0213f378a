#ifndef PAYORCH_TESTS_SERVICE_FAKE_PAYKKA_CLIENT_H_
#define PAYORCH_TESTS_SERVICE_FAKE_PAYKKA_CLIENT_H_

// A PaykkaClient for service tests: a tiny in-memory PayKKa that keeps the
// sessions and orders it created (so queries by trans_id find them), counts
// every call, records each call's deadline, can be scripted to fail the next
// call of an operation before or after "committing", and can hold calls
// pending to simulate requests in flight. Callbacks run inline unless held.
// Thread-safe.

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "adapters/paykka/paykka_client.h"
#include "cache/idempotency_store.h"
#include "common/errors.h"

namespace payorch::testing {

class FakePaykkaClient : public paykka::PaykkaClient {
 public:
  enum class Op {
    kCreateSession,
    kQuerySession,
    kQueryTransaction,
    kInitiate,
    kRefund,
    kQueryRefund,
    kCapture,
    kVoid,
    kCancelRecurring,
  };
  // kBeforeCommit: PayKKa keeps nothing and answers `error`.
  // kAfterCommit: PayKKa creates the object, then `error` reaches payorch
  // (e.g. a timeout after the request was processed). Queries only fail.
  enum class When { kBeforeCommit, kAfterCommit };

  // The next call of `op` fails with `error`.
  void FailNext(Op op, absl::Status error, When when = When::kBeforeCommit) {
    absl::MutexLock lock(&mu_);
    failures_[op].push_back({std::move(error), when});
  }
  // The next InitiateRecurring is declined: order status FAILURE.
  void DeclineNext(std::string error_code, std::string description) {
    absl::MutexLock lock(&mu_);
    declines_.push_back({std::move(error_code), std::move(description)});
  }
  // Calls of `op` stay pending (their results computed) until ReleaseHeld().
  void Hold(Op op) {
    absl::MutexLock lock(&mu_);
    held_ops_[op] = true;
  }
  // Stops holding and completes every held call, oldest first.
  void ReleaseHeld() {
    std::vector<absl::AnyInvocable<void() &&>> held;
    {
      absl::MutexLock lock(&mu_);
      held_ops_.clear();
      held.swap(held_);
    }
    for (auto& fn : held) std::move(fn)();
  }
  // Makes PayKKa hold a session for `trans_id` (e.g. expired) or order.
  void PutSession(v1::GetSessionStatusResponse session) {
    absl::MutexLock lock(&mu_);
    sessions_[session.trans_id()] = std::move(session);
  }
  void PutOrder(v1::Order order) {
    absl::MutexLock lock(&mu_);
    orders_[order.trans_id()] = std::move(order);
  }

  // How PayKKa refuses a create whose trans_id it already holds (as a
  // session or an order): PSP_REJECTED with this ret_code and ret_msg;
  // `listed`: the code is one of the merchant's duplicate_trans_id_codes
  // (the adapter marks the refusal, paykka::IsDuplicateTransIdRefusal).
  void SetDuplicateRefusal(std::string ret_code, std::string ret_msg,
                           bool listed = false) {
    absl::MutexLock lock(&mu_);
    duplicate_ = {std::move(ret_code), std::move(ret_msg)};
    duplicate_listed_ = listed;
  }
  // Queries do not see objects under `trans_id` (yet): PayKKa committed it
  // but it is not visible to queries, or is still being processed.
  void HideFromQueries(std::string trans_id) {
    absl::MutexLock lock(&mu_);
    hidden_[std::move(trans_id)] = true;
  }
  void Reveal(const std::string& trans_id) {
    absl::MutexLock lock(&mu_);
    hidden_.erase(trans_id);
  }

  int calls(Op op) const {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
  }
  int total_calls() const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& [op, c] : calls_) n += c;
    return n;
  }
  absl::Time last_deadline(Op op) const {
    absl::MutexLock lock(&mu_);
    auto it = deadlines_.find(op);
    return it == deadlines_.end() ? absl::InfinitePast() : it->second;
  }
  int held_count() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(held_.size());
  }
  // The lookups QuerySession / QueryTransaction received, in order.
  std::vector<std::string> lookups() const {
    absl::MutexLock lock(&mu_);
    return lookups_;
  }

  void CreateSession(
      const paykka::MerchantConfig& merchant,
      const v1::CreateCheckoutRequest& request, absl::Time deadline,
      paykka::Callback<v1::CreateCheckoutResponse> done) override {
    absl::StatusOr<v1::CreateCheckoutResponse> result;
    absl::MutexLock lock(&mu_);
    Failure failure = Start(Op::kCreateSession, deadline);
    if (failure.error.ok() || failure.when == When::kAfterCommit) {
      if (Taken(request.trans_id())) {
        return Finish(Op::kCreateSession, std::move(done),
                      absl::StatusOr<v1::CreateCheckoutResponse>(Duplicate()));
      }
      v1::GetSessionStatusResponse s;
      s.set_session_id(absl::StrCat("CS", ++next_id_));
      s.set_trans_id(request.trans_id());
      s.set_merchant_id(request.merchant_id());
      s.set_status(v1::SESSION_STATUS_PROCESSING);
      s.set_status_text("PROCESSING");
      s.set_session_url("https://pay.example/" + s.session_id());
      s.set_amount(request.amount());
      s.set_currency(request.currency());
      s.mutable_expire_time()->set_seconds(1767229200);
      sessions_[request.trans_id()] = s;
      v1::CreateCheckoutResponse r;
      r.set_session_id(s.session_id());
      r.set_client_key(merchant.client_key);
      r.set_session_url(s.session_url());
      *r.mutable_expire_time() = s.expire_time();
      r.set_status(s.status());
      r.set_status_text(s.status_text());
      r.set_merchant_id(s.merchant_id());
      r.set_trans_id(s.trans_id());
      result = std::move(r);
    }
    if (!failure.error.ok()) result = failure.error;
    Finish(Op::kCreateSession, std::move(done), std::move(result));
  }

  void QuerySession(
      const paykka::MerchantConfig& merchant, paykka::SessionLookup lookup,
      absl::Time deadline,
      paykka::Callback<v1::GetSessionStatusResponse> done) override {
    absl::StatusOr<v1::GetSessionStatusResponse> result =
        MakeError(Reason::kSessionNotFound, "the session does not exist",
                  {{"psp_ret_code", "206011"}});
    absl::MutexLock lock(&mu_);
    Failure failure = Start(Op::kQuerySession, deadline);
    bool by_trans = lookup.kind == paykka::SessionLookup::Kind::kTransId;
    lookups_.push_back(absl::StrCat(
        "session:", by_trans ? "trans_id=" : "session_id=", lookup.value));
    for (const auto& [trans_id, s] : sessions_) {
      if (hidden_.count(trans_id) != 0) continue;
      if ((by_trans && trans_id == lookup.value) ||
          (!by_trans && s.session_id() == lookup.value)) {
        result = s;
      }
    }
    if (!failure.error.ok()) result = failure.error;
    Finish(Op::kQuerySession, std::move(done), std::move(result));
  }

  void QueryTransaction(const paykka::MerchantConfig& merchant,
                        paykka::OrderLookup lookup, absl::Time deadline,
                        paykka::Callback<v1::Order> done) override {
    absl::StatusOr<v1::Order> result =
        MakeError(Reason::kOrderNotFound, "the order doesn't exist",
                  {{"psp_ret_code", "206024"}});
    absl::MutexLock lock(&mu_);
    Failure failure = Start(Op::kQueryTransaction, deadline);
    const char* kinds[] = {"order_id=", "session_id=", "trans_id="};
    lookups_.push_back(absl::StrCat(
        "order:", kinds[static_cast<int>(lookup.kind)], lookup.value));
    for (const auto& [trans_id, o] : orders_) {
      if (hidden_.count(trans_id) != 0) continue;
      if ((lookup.kind == paykka::OrderLookup::Kind::kTransId &&
           trans_id == lookup.value) ||
          (lookup.kind == paykka::OrderLookup::Kind::kOrderId &&
           o.order_id() == lookup.value) ||
          (lookup.kind == paykka::OrderLookup::Kind::kSessionId &&
           !o.session_id().empty() && o.session_id() == lookup.value)) {
        result = o;
      }
    }
    if (!failure.error.ok()) result = failure.error;
    Finish(Op::kQueryTransaction, std::move(done), std::move(result));
  }

  void InitiateRecurring(const paykka::MerchantConfig& merchant,
                         const v1::ChargeRecurringRequest& request,
                         absl::Time deadline,
                         paykka::Callback<v1::Order> done) override {
    absl::StatusOr<v1::Order> result;
    absl::MutexLock lock(&mu_);
    Failure failure = Start(Op::kInitiate, deadline);
    if (failure.error.ok() || failure.when == When::kAfterCommit) {
      if (Taken(request.trans_id())) {
        return Finish(Op::kInitiate, std::move(done),
                      absl::StatusOr<v1::Order>(Duplicate()));
      }
      v1::Order o;
      o.set_merchant_id(request.merchant_id());
      o.set_trans_id(request.trans_id());
      o.set_order_id(absl::StrCat("GW", ++next_id_));
      o.set_amount(request.amount());
      o.set_currency(request.currency());
      o.set_payment_type("RECURRING");
      o.set_token(request.payment().token());
      o.set_recurring_agreement_id(request.recurring_agreement_id());
      o.set_shopper_reference(request.payment().shopper_reference());
      if (!declines_.empty()) {
        o.set_status(v1::ORDER_STATUS_FAILURE);
        o.set_status_text("FAILURE");
        o.set_error_code(declines_.front().first);
        o.set_error_description(declines_.front().second);
        declines_.pop_front();
      } else {
        o.set_status(v1::ORDER_STATUS_SUCCESS);
        o.set_status_text("SUCCESS");
        o.set_error_code("0000");
      }
      orders_[request.trans_id()] = o;
      result = std::move(o);
    }
    if (!failure.error.ok()) result = failure.error;
    Finish(Op::kInitiate, std::move(done), std::move(result));
  }

  // Refund: PayKKa creates the refund (status PROCESSING, or REVIEWING when
  // set) and takes the amount off the order's able_to_refund_amount; a
  // refund_trans_id it holds is refused like a duplicate trans_id.
  void SetRefundStatus(std::string status) {
    absl::MutexLock lock(&mu_);
    refund_status_ = std::move(status);
  }
  void Refund(const paykka::MerchantConfig&, const v1::RefundRequest& request,
              absl::Time deadline, paykka::Callback<v1::Refund> done) override {
    absl::StatusOr<v1::Refund> result;
    absl::MutexLock lock(&mu_);
    Failure failure = Start(Op::kRefund, deadline);
    if (failure.error.ok() || failure.when == When::kAfterCommit) {
      if (refunds_.count(request.refund_trans_id()) != 0) {
        return Finish(Op::kRefund, std::move(done),
                      absl::StatusOr<v1::Refund>(Duplicate()));
      }
      v1::Refund r;
      r.set_merchant_id(request.merchant_id());
      r.set_refund_trans_id(request.refund_trans_id());
      r.set_refund_order_id(absl::StrCat("RG", ++next_id_));
      r.set_order_id(request.order_id());
      r.set_amount(request.amount());
      r.set_currency(request.currency());
      r.set_status_text(refund_status_);
      r.set_status(refund_status_ == "REVIEWING"
                       ? v1::REFUND_STATUS_REVIEWING
                       : v1::REFUND_STATUS_PROCESSING);
      if (v1::Order* o = OrderById(request.order_id())) {
        v1::Balances* b = o->mutable_balances();
        b->set_able_to_refund_amount(b->able_to_refund_amount() -
                                     request.amount());
        b->set_refunded_amount(b->refunded_amount() + request.amount());
      }
      refunds_[request.refund_trans_id()] = r;
      result = std::move(r);
    }
    if (!failure.error.ok()) result = failure.error;
    Finish(Op::kRefund, std::move(done), std::move(result));
  }
  void QueryRefund(const paykka::MerchantConfig&, paykka::RefundLookup lookup,
                   absl::Time deadline,
                   paykka::Callback<v1::Refund> done) override {
    absl::StatusOr<v1::Refund> result =
        MakeError(Reason::kOrderNotFound, "the order doesn't exist",
                  {{"psp_ret_code", "206024"}});
    absl::MutexLock lock(&mu_);
    Failure failure = Start(Op::kQueryRefund, deadline);
    for (const auto& [id, r] : refunds_) {
      if (hidden_.count(id) != 0) continue;
      if (id == lookup.value || r.refund_order_id() == lookup.value) {
        result = r;
      }
    }
    if (!failure.error.ok()) result = failure.error;
    Finish(Op::kQueryRefund, std::move(done), std::move(result));
  }
  // Capture and Void move a stored order (PutOrder) as PayKKa would.
  void Capture(const paykka::MerchantConfig&, const v1::CaptureRequest& request,
               absl::Time deadline,
               paykka::Callback<std::monostate> done) override {
    Envelope(Op::kCapture, deadline, std::move(done), [&] {
      if (v1::Order* o = OrderById(request.order_id())) {
        o->set_status(v1::ORDER_STATUS_SUCCESS);
        o->set_status_text("SUCCESS");
        v1::Balances* b = o->mutable_balances();
        b->set_captured_amount(request.amount());
        b->set_able_to_capture_amount(0);
        b->set_able_to_void_amount(0);
        b->set_able_to_refund_amount(request.amount());
      }
    });
  }
  void Void(const paykka::MerchantConfig&, const v1::VoidRequest& request,
            absl::Time deadline,
            paykka::Callback<std::monostate> done) override {
    Envelope(Op::kVoid, deadline, std::move(done), [&] {
      if (v1::Order* o = OrderById(request.order_id())) {
        o->set_status(v1::ORDER_STATUS_CANCELED);
        o->set_status_text("CANCELED");
        v1::Balances* b = o->mutable_balances();
        b->set_voided_amount(b->able_to_void_amount());
        b->set_able_to_void_amount(0);
        b->set_able_to_capture_amount(0);
      }
    });
  }
  void CancelRecurring(const paykka::MerchantConfig&,
                       const v1::CancelRecurringRequest&, absl::Time deadline,
                       paykka::Callback<std::monostate> done) override {
    Envelope(Op::kCancelRecurring, deadline, std::move(done), [] {});
  }

 private:
  v1::Order* OrderById(const std::string& order_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& [trans_id, o] : orders_) {
      if (o.order_id() == order_id) return &o;
    }
    return nullptr;
  }
  template <typename Apply>
  void Envelope(Op op, absl::Time deadline,
                paykka::Callback<std::monostate> done, Apply apply) {
    absl::StatusOr<std::monostate> result = std::monostate();
    absl::MutexLock lock(&mu_);
    Failure failure = Start(op, deadline);
    if (failure.error.ok() || failure.when == When::kAfterCommit) apply();
    if (!failure.error.ok()) result = failure.error;
    Finish(op, std::move(done), std::move(result));
  }

  bool Taken(const std::string& trans_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return sessions_.count(trans_id) != 0 || orders_.count(trans_id) != 0;
  }
  absl::Status Duplicate() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Metadata md = {{"psp_ret_code", duplicate_.first},
                   {"psp_ret_msg", duplicate_.second}};
    if (duplicate_listed_) md.emplace_back("psp_duplicate_trans_id", "true");
    return MakeError(Reason::kPspRejected, "PayKKa rejected the request", md);
  }

  struct Failure {
    absl::Status error;
    When when = When::kBeforeCommit;
  };

  Failure Start(Op op, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    calls_[op]++;
    deadlines_[op] = deadline;
    auto& queue = failures_[op];
    if (queue.empty()) return {};
    Failure f = std::move(queue.front());
    queue.pop_front();
    return f;
  }

  // Runs `done` now (after unlocking) or keeps it for ReleaseHeld().
  template <typename T>
  void Finish(Op op, paykka::Callback<T> done, absl::StatusOr<T> result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::AnyInvocable<void()&&> fn = [done = std::move(done),
                                       result = std::move(result)]() mutable {
      std::move(done)(std::move(result));
    };
    if (held_ops_[op]) {
      held_.push_back(std::move(fn));
      return;
    }
    mu_.Unlock();
    std::move(fn)();
    mu_.Lock();
  }

  mutable absl::Mutex mu_;
  std::map<Op, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<Op, absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
  std::map<Op, std::deque<Failure>> failures_ ABSL_GUARDED_BY(mu_);
  std::map<Op, bool> held_ops_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, std::string>> declines_
      ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void() &&>> held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::GetSessionStatusResponse> sessions_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Order> orders_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> hidden_ ABSL_GUARDED_BY(mu_);
  bool duplicate_listed_ ABSL_GUARDED_BY(mu_) = false;
  std::pair<std::string, std::string> duplicate_ ABSL_GUARDED_BY(mu_) = {
      "010000", "Duplicate trans_id"};
  std::vector<std::string> lookups_ ABSL_GUARDED_BY(mu_);
  int next_id_ ABSL_GUARDED_BY(mu_) = 1000;
  std::map<std::string, v1::Refund> refunds_ ABSL_GUARDED_BY(mu_);
  std::string refund_status_ ABSL_GUARDED_BY(mu_) = "PROCESSING";
};

// An IdempotencyStore whose backend is down: every call fails with
// UNAVAILABLE IDEMPOTENCY_STORE_UNAVAILABLE, as the Redis store does.
class UnavailableIdempotencyStore : public cache::IdempotencyStore {
 public:
  void Begin(
      const cache::IdempotencyKey&, const cache::BeginArgs&,
      absl::AnyInvocable<void(absl::StatusOr<cache::Claim>) &&> done) override {
    std::move(done)(Down());
  }
  void Complete(const cache::IdempotencyKey&, const std::string&,
                const std::string&, absl::Duration,
                absl::AnyInvocable<void(absl::Status) &&> done) override {
    std::move(done)(Down());
  }
  void MarkUnknown(const cache::IdempotencyKey&, const std::string&,
                   absl::Duration,
                   absl::AnyInvocable<void(absl::Status) &&> done) override {
    std::move(done)(Down());
  }
  void Release(const cache::IdempotencyKey&, const std::string&,
               absl::AnyInvocable<void(absl::Status) &&> done) override {
    std::move(done)(Down());
  }
  void Forget(const cache::IdempotencyKey&, const std::string&,
              absl::AnyInvocable<void(absl::Status) &&> done) override {
    std::move(done)(Down());
  }
  bool Healthy() const override { return false; }

 private:
  static absl::Status Down() {
    return MakeError(Reason::kIdempotencyStoreUnavailable,
                     "redis: connection refused");
  }
};

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_SERVICE_FAKE_PAYKKA_CLIENT_H_
